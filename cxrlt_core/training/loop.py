"""The two-phase training loop of the CXR-LT 2026 Task 1 method, in one process or under torchrun (DDP).

Phase 1 trains the head with the backbone frozen (AdamW, constant rate); phase 2 fine-tunes everything with
separate backbone / head rates and weight decays, per-step linear warm-up and cosine decay to a floor, and an EMA
of the weights that validation and checkpoints use (timm ``ModelEmaV3``, created at the start of phase 2 from the
phase-1 weights, as in the winning code). Optional: stochastic weight averaging over the last phase-2 epochs
(``optim.swa``, ``torch.optim.swa_utils``) and a third phase, classifier re-training (``optim.crt``: backbone frozen,
head re-initialised, class-balanced sampling). Losses with a ``set_epoch`` method are told each epoch. AMP (bf16,
or fp16 with a gradient scaler) on CUDA, channels_last, gradient clipping; a step whose loss or gradient norm is not
finite is skipped (on every rank at once: DDP averages gradients first, so the norm is the same everywhere) and counted.

Every epoch: validation mAP (``cxrlt_core.metrics.compute_report``), ``checkpoints/last`` and, when the mAP
improves, ``checkpoints/best`` (safetensors + JSON sidecar), the resumable ``last.state.pt``, one line of
``metrics.jsonl``; ``status.json`` carries a heartbeat every few seconds. A ``STOP`` file (``runs.request_stop``) or
SIGTERM ends the run between two steps as ``stopped``; ``resume=True`` continues from the last end-of-epoch state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from timm.utils import ModelEmaV3
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel
from tqdm.auto import tqdm

from cxrlt_core import distributed as dist_utils
from cxrlt_core import runs
from cxrlt_core.atomic import write_text
from cxrlt_core.config import Recipe, resolve_path
from cxrlt_core.distributed import DistInfo
from cxrlt_core.errors import InputError
from cxrlt_core.losses import build_loss
from cxrlt_core.metrics import compute_report
from cxrlt_core.models import ModelConfig, build_model
from cxrlt_core.models.backbones import feature_channels
from cxrlt_core.models.checkpoint import (
    capture_rng_state,
    load_training_state,
    restore_rng_state,
    save_checkpoint,
    save_training_state,
)
from cxrlt_core.models.contract import InputContract, attach_contract
from cxrlt_core.models.heads import build_head
from cxrlt_core.runlock import RunLock
from cxrlt_core.shift import fit_after_training
from cxrlt_core.tracking import NullTracker, Tracker, open_tracker
from cxrlt_core.training.data import (
    TrainData,
    build_datasets,
    build_train_loader,
    build_val_loader,
    prepare_data,
    resolve_num_workers,
)
from cxrlt_core.training.schedule import ConstantSchedule, EpochWarmupCosineSchedule, WarmupCosineSchedule

ProgressCallback = Callable[[dict[str, Any]], None]
"""``progress(info)`` with ``fraction`` (0-1 of the whole run), ``epoch``, ``epochs``, ``step``, ``steps``,
``phase`` and ``loss``; called at most every ``PROGRESS_EVERY_S`` seconds and at each epoch's end, on rank 0."""

HEARTBEAT_EVERY_S = 5.0
PROGRESS_EVERY_S = 0.5
STOP_CHECK_EVERY = 10  # steps between collective stop checks under DDP (single process: every step)
STATE_VERSION = 1
LOGGER_NAME = "cxrlt.train"


@dataclasses.dataclass(frozen=True)
class EpochOutcome:
    """What one finished epoch produced: its index (0-based), phase, mean loss, steps, non-finite steps skipped,
    validation metrics, whether they improved the best, and its timing (train, epoch and step seconds)."""

    epoch: int
    phase: int
    loss: float
    steps: int
    skipped: int
    val: dict[str, Any]
    improved: bool
    timing: dict[str, float | None]


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` did."""

    run_dir: Path
    state: str
    epochs_done: int
    best_epoch: int | None
    best_map: float | None
    last_val: dict[str, Any]
    skipped_batches: int
    skipped_images: int
    early_stopped: bool = False
    seconds: float = 0.0


def train(
    recipe: Recipe,
    run_dir: str | os.PathLike[str],
    resume: bool = False,
    progress: ProgressCallback | None = None,
    workspace: str | os.PathLike[str] | None = None,
    show_progress: bool = True,
) -> TrainResult:
    """Train ``recipe`` into ``run_dir`` (made by :func:`cxrlt_core.runs.create_run`).

    Under torchrun the process group is started here (gloo on CPU, nccl on CUDA) and only rank 0 writes files.

    Args:
        recipe: the checked recipe.
        run_dir: the run folder; ``config.yaml`` is (re)written with the recipe.
        resume: continue from ``checkpoints/last.state.pt`` (a fresh start if there is none).
        progress: callback for a progress bar (see :data:`ProgressCallback`).
        workspace: what ``${workspace}`` in recipe paths means (default ``$CXRLT_WORKSPACE`` or ./workspace/demo).
        show_progress: draw tqdm bars on stderr.
    """
    info = dist_utils.init_distributed(recipe.optim.device)
    # One writer per run folder: rank 0 holds <run>/LOCK (a second trainer of the same run is refused, naming it).
    with RunLock(run_dir, "training") if info.is_main else contextlib.nullcontext():
        trainer = Trainer(recipe, Path(run_dir), info, workspace, progress, show_progress)
        try:
            return trainer.run(resume)
        finally:
            trainer.close()


class StopRequestedError(Exception):
    """Raised between steps when a stop was requested."""


class Trainer:
    """One training run; see the module docstring. Use :func:`train`."""

    def __init__(
        self,
        recipe: Recipe,
        run_dir: Path,
        info: DistInfo,
        workspace: str | os.PathLike[str] | None,
        progress: ProgressCallback | None,
        show_progress: bool,
    ):
        self.recipe = recipe
        self.run_dir = run_dir
        self.info = info
        self.device = info.device
        self.workspace = workspace
        self.progress = progress if info.is_main else None
        self.show_progress = show_progress and info.is_main
        self.is_main = info.is_main
        self.log = _make_logger(run_dir / runs.LOG_FILE if info.is_main else None, console=True)
        self._sigterm = threading.Event()
        self._old_handler: Any = None
        self._last_beat = 0.0
        self._last_progress = 0.0
        self.skipped_images: list[dict[str, Any]] = []
        self.skipped_batches = 0
        self.tracker: Tracker = NullTracker()  # opened in _run once the first epoch is known

    # ------------------------------------------------------------------------------------------------ lifecycle
    def run(self, resume: bool) -> TrainResult:
        started = time.time()
        if self.is_main:
            runs.clear_stop(self.run_dir)  # a stop request was for the previous process
            for leftover in (self.run_dir / runs.CHECKPOINT_DIR).glob(".*.tmp"):
                leftover.unlink(missing_ok=True)  # half-written files of a killed process
            write_text(self.run_dir / runs.CONFIG_FILE, _config_header(self.recipe) + self.recipe.to_yaml())
            runs.write_status(
                self.run_dir,
                "running",
                pid=os.getpid(),
                run_id=self.run_dir.name,
                recipe=self.recipe.name,
                world_size=self.info.world_size,
                device=str(self.device),
                started=started,
                error=None,
                message=None,
                early_stopped=False,
            )
        self._install_sigterm()
        try:
            result = self._run(resume, started)
        except (StopRequestedError, KeyboardInterrupt) as exc:
            result = self._result("stopped", started)
            if self.is_main:
                why = "interrupted" if isinstance(exc, KeyboardInterrupt) else "stopped on request"
                self.log.info("%s after %d epochs; resume with --resume", why, result.epochs_done)
                runs.write_status(self.run_dir, "stopped", message=f"{why}; resumable")
                self.tracker.finish("stopped")
            if isinstance(exc, KeyboardInterrupt):
                raise
            return result
        except BaseException as exc:
            if self.is_main:
                self.log.error("training failed: %s: %s", type(exc).__name__, exc)
                runs.write_status(self.run_dir, "failed", error=f"{type(exc).__name__}: {exc}")
                self.tracker.finish("failed")
            raise
        if self.is_main:
            fit_after_training(self.run_dir, self.recipe, self.workspace, self.log)  # the Inspect page's shift check
            runs.clear_stop(self.run_dir)
            runs.write_status(
                self.run_dir,
                "finished",
                progress=1.0,
                best_mAP=result.best_map,
                best_epoch=result.best_epoch,
                early_stopped=result.early_stopped,
                seconds=round(result.seconds, 1),
            )
            self.tracker.finish("finished")
        return result

    def close(self) -> None:
        if self._old_handler is not None:
            signal.signal(signal.SIGTERM, self._old_handler)
        for handler in list(self.log.handlers):
            handler.close()
            self.log.removeHandler(handler)

    def _install_sigterm(self) -> None:
        # SLURM pre-emption and `kill` send SIGTERM: finish the step, mark the run stopped (resumable)
        if threading.current_thread() is threading.main_thread():
            self._old_handler = signal.signal(signal.SIGTERM, lambda *_: self._sigterm.set())

    # ----------------------------------------------------------------------------------------------------- setup
    def _setup(self) -> None:
        r = self.recipe
        _seed_everything(r.optim.seed + self.info.rank)
        if r.optim.threads:
            torch.set_num_threads(r.optim.threads)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.set_float32_matmul_precision("high")
        self.profile = r.profile.resolve()
        self.data: TrainData = prepare_data(r.data, self.workspace, self.profile)
        d = self.data
        self.log.info(
            "data: %d train / %d val images (%s split), %d classes, %s px",
            len(d.train),
            len(d.val),
            d.split,
            len(d.classes),
            r.data.image_size,
        )
        self.model = self._build_model()
        self.amp_dtype = amp_dtype(r.optim.amp, self.device)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        self.criterion = self._build_loss().to(self.device)
        cfg = self.model_config
        self.train_set, self.val_set = build_datasets(d, r, cfg.mean, cfg.std)
        pin = self.device.type == "cuda"
        workers = resolve_num_workers(r.optim.num_workers, self.device)
        rank, world = self.info.rank, self.info.world_size
        self.train_loader, self.sampler = build_train_loader(self.train_set, r, rank, world, pin, workers)
        self.val_loader = build_val_loader(self.val_set, r, rank, world, pin, workers)
        repeats = self.sampler.repeats()
        self.log.info(
            "sampler: %s, epoch of %d samples (mean repeat %.2f, max %d), %d steps/epoch of %d per rank x %d ranks, "
            "%d loader workers",
            r.sampler.name if r.sampler.enabled else "uniform",
            int(repeats.sum()),
            float(repeats.mean()),
            int(repeats.max()),
            self.steps_per_epoch(),
            r.optim.batch_size,
            self.info.world_size,
            workers,
        )
        self.log.info(
            "model: %s + %s head, %.2fM parameters, AMP %s, device %s",
            cfg.backbone,
            cfg.head,
            sum(p.numel() for p in self.model.parameters()) / 1e6,
            self.amp_dtype or "off",
            self.device,
        )

    def _build_model(self) -> nn.Module:
        r, d = self.recipe, self.data
        fields = {
            "backbone": r.model.backbone,
            "head": r.model.head,
            "head_params": dict(r.model.head_params),
            "num_classes": len(d.classes),
            "class_names": list(d.classes),
            "label_space": d.label_space.to_dict(),
            "drop_path_rate": r.model.drop_path_rate,
            "pretrained": _resolve_weights(r.model.pretrained, self.workspace),
            "input_size": r.data.image_size,
            "channels_last": r.optim.channels_last,
            "head_init": self.profile.head_init,
            "output_stride": r.model.output_stride,
        }
        if r.model.mean is not None:
            fields["mean"] = list(r.model.mean)
        if r.model.std is not None:
            fields["std"] = list(r.model.std)
        self.model_config = ModelConfig(**fields)
        model = build_model(self.model_config, transfer=r.model.transfer).to(self.device)
        self.contract = InputContract(
            d.preprocess,
            self.model_config.mean,
            self.model_config.std,
            self.model_config.in_chans,
            tuple(d.classes),
            d.label_space.to_dict(),
            self.profile.tta_geometry,
        )
        attach_contract(model, self.contract)
        if r.optim.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if self.info.is_distributed and r.optim.sync_bn:
            if self.device.type == "cuda":
                model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            else:
                self.log.warning("sync_bn needs CUDA; BatchNorm statistics stay per process on CPU")
        return model

    def _build_loss(self) -> nn.Module:
        loss = self.recipe.loss
        return build_loss(
            loss.name, class_counts=self.data.class_counts, num_images=len(self.data.train), **dict(loss.params)
        )

    def steps_per_epoch(self) -> int:
        return len(self.train_loader)  # max_steps_per_epoch caps the sampler itself

    # ----------------------------------------------------------------------------------------------------- phases
    def _enter_phase(self, phase: int, state: dict[str, Any] | None = None) -> None:
        o = self.recipe.optim
        net = self.model
        fused = {"fused": True} if self.device.type in ("cuda", "cpu") else {}  # fused AdamW: 4x faster on CPU too
        if phase == 3:
            self._enter_crt(state)
            self.optimizer = torch.optim.AdamW(
                net.head.parameters(), lr=o.crt.lr, weight_decay=o.crt.wd, eps=o.eps, **fused
            )
            self.schedule = ConstantSchedule(self.optimizer)
            self.ema = None
        elif phase == 1:
            net.freeze_backbone(True)
            params = [p for p in net.parameters() if p.requires_grad]
            self.optimizer = torch.optim.AdamW(params, lr=o.phase1.lr, weight_decay=o.phase1.wd, eps=o.eps, **fused)
            self.schedule: ConstantSchedule | WarmupCosineSchedule | EpochWarmupCosineSchedule
            self.schedule = ConstantSchedule(self.optimizer)
            self.ema = None
        else:
            p2 = o.phase2
            net.freeze_backbone(False)
            groups = net.param_groups(
                backbone_lr=p2.backbone_lr,
                head_lr=p2.head_lr,
                backbone_wd=p2.backbone_wd,
                head_wd=p2.head_wd,
                decay_norm_and_bias=o.decay_norm_and_bias,
                layer_decay=p2.layer_decay,
            )
            self.optimizer = torch.optim.AdamW(groups, eps=o.eps, **fused)
            steps = self.steps_per_epoch()
            if self.profile.lr_step == "epoch":
                self.schedule = EpochWarmupCosineSchedule(
                    self.optimizer, epochs=p2.epochs, warmup_epochs=round(p2.warmup_epochs), floor=p2.min_lr_ratio
                )
            else:
                self.schedule = WarmupCosineSchedule(
                    self.optimizer,
                    total_steps=steps * p2.epochs,
                    warmup_steps=round(p2.warmup_epochs * steps),
                    floor=p2.min_lr_ratio,
                )
            self.ema = self._make_ema() if o.ema.enabled else None
        self.swa: nn.Module | None = None
        self.ema_updates = 0
        self.phase = phase
        self.trainable = [p for p in net.parameters() if p.requires_grad]
        if self.info.is_distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.forward_model: nn.Module = DistributedDataParallel(net, device_ids=ids)
        else:
            self.forward_model = net
        self.log.info(
            "phase %d: %d trainable tensors (%.2fM values), lr %s",
            phase,
            len(self.trainable),
            sum(p.numel() for p in self.trainable) / 1e6,
            ", ".join(f"{g['lr']:.3g}" for g in self.optimizer.param_groups),
        )

    def _make_ema(self) -> nn.Module:
        cfg = self.recipe.optim.ema
        return ModelEmaV3(self.model, decay=cfg.decay, use_warmup=cfg.warmup)

    def _enter_crt(self, state: dict[str, Any] | None) -> None:
        """Phase 3, classifier re-training: start from the weights phase 2 ended with (its EMA / SWA average when
        on), re-initialise the head, freeze the backbone and switch to the cRT sampler. On resume inside phase 3
        the loaded state already holds the re-trained head."""
        net, cfg = self.model, self.model_config
        if state is None or int(state["phase"]) != 3:
            if state is not None:  # resumed right after phase 2: its averaged weights are in the saved state
                saved = state.get("swa") or state.get("ema")
                if saved is not None:
                    net.load_state_dict({k.removeprefix("module."): v for k, v in saved.items() if k != "n_averaged"})
            elif getattr(self, "phase", 0) == 2 and self.eval_model is not net:
                net.load_state_dict(self.eval_model.state_dict())
            net.head = build_head(cfg.head, feature_channels(net.backbone), cfg.num_classes, cfg.head_params)
            net.head.to(self.device)
        net.freeze_backbone(True)
        r = self.recipe
        workers = resolve_num_workers(r.optim.num_workers, self.device)
        self.train_loader, self.sampler = build_train_loader(
            self.train_set,
            r,
            self.info.rank,
            self.info.world_size,
            self.device.type == "cuda",
            workers,
            kind=r.optim.crt.sampler,
        )
        self.log.info("cRT: head re-initialised, backbone frozen, %s sampling", r.optim.crt.sampler)

    def _average_weights(self, epoch: int) -> None:
        """SWA: add this epoch's weights (the EMA's when on) to the average during the last ``swa.epochs``."""
        swa = self.recipe.optim.swa
        last_phase2 = self.recipe.optim.phase1.epochs + self.recipe.optim.phase2.epochs
        if not swa.enabled or self.phase != 2 or epoch < last_phase2 - swa.epochs:
            return

        source = self.ema.module if self.ema is not None else self.model
        if self.swa is None:
            self.swa = AveragedModel(source, use_buffers=True)
        self.swa.update_parameters(source)

    @property
    def eval_model(self) -> nn.Module:
        """The weights validation and checkpoints use: the SWA average once it has started, else the EMA in phase 2
        when enabled, else the live model."""
        if getattr(self, "swa", None) is not None:
            return self.swa.module
        return self.ema.module if self.ema is not None else self.model

    # ------------------------------------------------------------------------------------------------------- run
    def _run(self, resume: bool, started: float) -> TrainResult:
        self._setup()
        r = self.recipe
        total = r.total_epochs
        p1 = r.optim.phase1.epochs
        state = self._load_state() if resume else None
        start = int(state["next_epoch"]) if state else 0
        self.best_map: float | None = state["best_map"] if state else None
        self.best_epoch: int | None = state["best_epoch"] if state else None
        self.stale_epochs = int(state["stale_epochs"]) if state else 0
        self.skipped_batches = int(state["skipped_batches"]) if state else 0
        self.elapsed_before = float(state["elapsed_s"]) if state else 0.0
        self.epochs_done = start
        self.last_val: dict[str, Any] = {}
        self.early_stopped = bool(state.get("early_stopped", False)) if state else False
        if self.is_main:
            runs.write_status(self.run_dir, progress=start / total, epoch=start, epochs=total)
            runs.truncate_metrics(self.run_dir, before_epoch=start + 1)  # records count epochs from 1
            if state and start and not any(r.get("epoch") == start for r in runs.read_metrics(self.run_dir)):
                runs.append_metrics(self.run_dir, json.loads(state["record"]))
            self.tracker = open_tracker(r, self.run_dir, self.workspace, first_epoch=start, log=self.log)
        if start > 0:
            self.log.info("resuming after epoch %d of %d", start, total)
        if self.early_stopped:
            start = total  # the run ended by early stopping: resuming has nothing left to train
        self.phase = 0
        for epoch in range(start, total):
            phase = 1 if epoch < p1 else 2 if epoch < p1 + r.optim.phase2.epochs else 3
            if phase != self.phase:
                self._enter_phase(phase, state)
                if state is not None and int(state["phase"]) == phase:
                    self._restore_phase_state(state)
                state = None
            t0 = time.time()
            self.schedule.start_epoch(epoch - (p1 if phase == 2 else 0))
            loss, steps, skipped, step_s = self._train_epoch(epoch, phase)
            train_s = time.time() - t0
            self._average_weights(epoch)
            val = self._validate()
            self.epochs_done = epoch + 1
            improved = self._update_best(val, epoch)
            patience = r.optim.early_stop_patience
            self.early_stopped = phase == 2 and bool(patience) and self.stale_epochs >= patience
            timing = {"train": train_s, "epoch": time.time() - t0, "step": step_s}
            self._end_epoch(EpochOutcome(epoch, phase, loss, steps, skipped, val, improved, timing), started)
            if self.early_stopped:
                self.log.info("early stop: no val mAP gain for %d epochs", self.stale_epochs)
                break
        if start >= total:
            self.log.info("nothing to do: all %d epochs were already trained", total)
        return self._result("finished", started)

    def _result(self, state: str, started: float) -> TrainResult:
        return TrainResult(
            run_dir=self.run_dir,
            state=state,
            epochs_done=getattr(self, "epochs_done", 0),
            best_epoch=getattr(self, "best_epoch", None),
            best_map=getattr(self, "best_map", None),
            last_val=getattr(self, "last_val", {}),
            skipped_batches=self.skipped_batches,
            skipped_images=len(self.skipped_images),
            early_stopped=getattr(self, "early_stopped", False),
            seconds=time.time() - started,
        )

    # ----------------------------------------------------------------------------------------------------- epoch
    def _train_epoch(self, epoch: int, phase: int) -> tuple[float, int, int, float | None]:
        """Train one epoch: (mean loss, steps, skipped steps, steady-state seconds per step).

        The steady-state time runs from the end of the first step to the end of the last, so it leaves out the
        loader's start-up (first batch) and is what a long epoch costs per step.
        """
        r = self.recipe
        self.sampler.set_epoch(epoch)
        set_data_epoch = getattr(self.train_loader.dataset, "set_epoch", None)
        if set_data_epoch is not None:
            set_data_epoch(epoch)  # augmentation reseeded per epoch: a resumed run equals an uninterrupted one
        self.forward_model.train()
        if phase == 3:
            self.model.backbone.eval()  # cRT: the frozen backbone's normalisation statistics stay as they are
        set_epoch = getattr(self.criterion, "set_epoch", None)
        if set_epoch is not None:
            set_epoch(epoch)  # losses with a schedule (LDAM-DRW's deferred re-weighting)
        steps = self.steps_per_epoch()
        loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        done = skipped = 0
        bar = tqdm(
            total=steps,
            desc=f"epoch {epoch + 1}/{r.total_epochs} (phase {phase})",
            disable=not self.show_progress,
            leave=False,
            dynamic_ncols=True,
        )
        first_done: float | None = None
        with bar:
            for batch in self.train_loader:
                self._note_failures(batch.failed, "train")
                self._check_stop(done)
                if len(batch) < 2:
                    continue  # every image of the batch failed to read (skip policy), or one left: BatchNorm needs 2
                step_loss = self._step(batch)
                done += 1
                if done == 1:
                    first_done = self._sync_time()
                if step_loss is None:
                    skipped += 1
                else:
                    loss_sum += step_loss
                bar.update(1)
                if self.is_main:
                    self._beat(epoch, done, steps, phase, loss_sum, done - skipped)
                if done % 20 == 0 and self.show_progress:
                    bar.set_postfix(loss=f"{loss_sum.item() / max(1, done - skipped):.4f}", refresh=False)
        steady = (self._sync_time() - first_done) / (done - 1) if first_done is not None and done > 1 else None
        totals = dist_utils.all_reduce_sum(
            torch.tensor([loss_sum.item(), done - skipped, skipped], dtype=torch.float64, device=self.device)
        ).tolist()
        self.skipped_batches += int(totals[2])
        mean_loss = totals[0] / totals[1] if totals[1] else float("nan")
        return mean_loss, done, int(totals[2]), steady

    def _sync_time(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def _step(self, batch: Any) -> torch.Tensor | None:
        """One optimiser step; ``None`` when the loss or gradient norm is not finite (the step is skipped)."""
        images = self._to_device(batch.images)
        targets = batch.targets.to(self.device, non_blocking=True)
        with self._autocast():
            logits = self.forward_model(images)
        loss = self.criterion(logits.float(), targets)
        if not self.info.is_distributed and not torch.isfinite(loss):
            self.optimizer.zero_grad(set_to_none=True)
            return None
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        clip = self.recipe.optim.grad_clip
        if clip:
            norm = torch.nn.utils.clip_grad_norm_(self.trainable, clip)
        else:
            norm = torch.nn.utils.get_total_norm([p.grad for p in self.trainable if p.grad is not None])
        if not bool(torch.isfinite(norm)):
            self.optimizer.zero_grad(set_to_none=True)
            if self.scaler is not None:
                self.scaler.update()
            return None
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.schedule.step()
        if self.ema is not None:
            self.ema_updates += 1
            self.ema.update(self.model, step=self.ema_updates)
        return loss.detach().to(torch.float64)

    def _to_device(self, images: torch.Tensor) -> torch.Tensor:
        """Copy a (pinned) batch as it is, asynchronously; change the memory format on the device, where it is cheap
        (``.to(device, memory_format=...)`` would permute on the host first and copy synchronously)."""
        images = images.to(self.device, non_blocking=True)
        return images.contiguous(memory_format=torch.channels_last) if self.recipe.optim.channels_last else images

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    # ------------------------------------------------------------------------------------------------ validation
    @torch.inference_mode()
    def predict(self, model: nn.Module, loader: torch.utils.data.DataLoader) -> tuple[np.ndarray, np.ndarray, float]:
        """Sigmoid scores of ``model`` over ``loader``, gathered from every rank: (indices, scores, mean loss)."""
        was_training = model.training
        model.eval()
        self.criterion.eval()  # training-only terms (logit adjustment) stay out of the validation loss
        indices, scores = [], []
        loss_sum, batches = 0.0, 0
        for batch in loader:
            self._note_failures(batch.failed, "val")
            if len(batch) == 0:
                continue
            images = self._to_device(batch.images)
            with self._autocast():
                logits = model(images).float()
            targets = batch.targets.to(self.device, non_blocking=True)
            loss_sum += float(self.criterion(logits, targets)) * len(batch)
            batches += len(batch)
            indices.append(batch.indices.numpy())
            scores.append(torch.sigmoid(logits).cpu().numpy())
        model.train(was_training)
        self.criterion.train()
        local = (
            np.concatenate(indices) if indices else np.zeros(0, np.int64),
            np.concatenate(scores) if scores else np.zeros((0, len(self.data.classes)), np.float32),
            loss_sum,
            batches,
        )
        parts = dist_utils.all_gather_object(local)
        all_idx = np.concatenate([p[0] for p in parts])
        all_scores = np.concatenate([p[1] for p in parts])
        total_loss = sum(p[2] for p in parts) / max(1, sum(p[3] for p in parts))
        order = np.argsort(all_idx, kind="stable")
        return all_idx[order], all_scores[order], total_loss

    def _validate(self) -> dict[str, Any]:
        t0 = time.time()
        indices, scores, val_loss = self.predict(self.eval_model, self.val_loader)
        if len(indices) == 0:
            raise InputError("validation produced no predictions (every validation image failed to read?)")
        report = compute_report(
            self.data.val.labels[indices], scores, list(self.data.classes), train_labels=self.data.train.labels
        )
        per_class = report.get("per_class", {})
        summary = {
            "mAP": report.get("mAP"),
            "mAUC": report.get("mAUC"),
            "mF1": report.get("mF1"),
            "mECE": report.get("mECE"),
            "loss": val_loss,
            "n_images": int(len(indices)),
            "skipped_classes": list(report.get("skipped", [])),
            "mean_of_buckets": report.get("mean_of_buckets"),
            "buckets": {k: v.get("mAP") for k, v in (report.get("buckets") or {}).items()},
            "per_class_ap": {name: values.get("ap") for name, values in per_class.items()},
            "ema": self.ema is not None,
            "seconds": round(time.time() - t0, 2),
        }
        self.last_val = summary
        return summary

    def _update_best(self, val: dict[str, Any], epoch: int) -> bool:
        value = val.get("mAP")
        value = None if value is None or not math.isfinite(value) else float(value)
        improved = value is not None and (self.best_map is None or value > self.best_map)
        if improved:
            self.best_map, self.best_epoch = value, epoch + 1
            self.stale_epochs = 0
        elif self.phase == 2:
            self.stale_epochs += 1
        return improved

    # ------------------------------------------------------------------------------------------- end of an epoch
    def _end_epoch(self, done: EpochOutcome, started: float) -> None:
        self._gather_failures()
        if not self.is_main:
            dist_utils.barrier()
            return
        sidecar = {
            "run_id": self.run_dir.name,
            "recipe": self.recipe.name,
            "epoch": done.epoch + 1,
            "epochs": self.recipe.total_epochs,
            "phase": done.phase,
            "ema": done.val["ema"],
            "metrics": {k: done.val[k] for k in ("mAP", "mAUC", "mF1", "mECE")},
            "input": self.contract,
            "profile": self.profile.to_dict(),
        }
        self._save_checkpoint("last", sidecar)
        if done.improved:
            self._save_checkpoint("best", sidecar)
        record = self._epoch_record(done)
        # the state is the commit point of an epoch; it carries the epoch's record so that a kill between the two
        # writes cannot leave a hole in metrics.jsonl (resume re-appends it)
        self._save_state(done.epoch, started, record)
        runs.append_metrics(self.run_dir, record)
        self.tracker.log_epoch(record)
        self._report_epoch(done)
        if self.progress is not None:
            self.progress(self._progress_info(done.epoch + 1, 0, 1, done.phase, done.loss))
        dist_utils.barrier()

    def _epoch_record(self, done: EpochOutcome) -> dict[str, Any]:
        """The epoch's line of ``metrics.jsonl``: losses, learning rates, validation metrics and throughput."""
        images = done.steps * self.recipe.optim.batch_size * self.info.world_size
        timing = done.timing
        return {
            "epoch": done.epoch + 1,
            "phase": done.phase,
            "train_loss": done.loss,
            "lr": [float(g["lr"]) for g in self.optimizer.param_groups],
            "steps": done.steps,
            "skipped_batches": done.skipped,
            "skipped_images": len(self.skipped_images),
            "val": done.val,
            "best": done.improved,
            "best_mAP": self.best_map,
            "train_seconds": round(timing["train"], 2),
            "epoch_seconds": round(timing["epoch"], 2),
            "step_seconds": None if timing["step"] is None else round(timing["step"], 4),
            "images_per_second": round(images / max(timing["train"], 1e-9), 2),
            "time": time.time(),
        }

    def _report_epoch(self, done: EpochOutcome) -> None:
        """The run's ``status.json`` and one log line for the finished epoch."""
        r = self.recipe
        runs.write_status(
            self.run_dir,
            epoch=done.epoch + 1,
            epochs=r.total_epochs,
            phase=done.phase,
            progress=(done.epoch + 1) / r.total_epochs,
            train_loss=done.loss,
            val_mAP=done.val["mAP"],
            best_mAP=self.best_map,
            best_epoch=self.best_epoch,
            skipped_batches=self.skipped_batches,
            skipped_images=len(self.skipped_images),
        )
        self.log.info(
            "epoch %d/%d (phase %d): train loss %.4f, val mAP %.4f (best %.4f @ %s), %d steps in %.1fs%s",
            done.epoch + 1,
            r.total_epochs,
            done.phase,
            done.loss,
            _num(done.val["mAP"]),
            _num(self.best_map),
            self.best_epoch,
            done.steps,
            done.timing["train"],
            f", {done.skipped} non-finite steps skipped" if done.skipped else "",
        )

    def _save_checkpoint(self, which: str, sidecar: dict[str, Any]) -> None:
        save_checkpoint(runs.checkpoint_path(self.run_dir, which), self.eval_model, {**sidecar, "which": which})

    def _save_state(self, epoch: int, started: float, record: dict[str, Any]) -> None:
        state = {
            "version": STATE_VERSION,
            "next_epoch": epoch + 1,
            "phase": self.phase,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "ema": self.ema.module.state_dict() if self.ema is not None else None,
            "ema_updates": self.ema_updates,
            "swa": self.swa.state_dict() if self.swa is not None else None,
            "best_map": self.best_map,
            "best_epoch": self.best_epoch,
            "stale_epochs": self.stale_epochs,
            "skipped_batches": self.skipped_batches,
            "elapsed_s": self.elapsed_before + time.time() - started,
            "rng": capture_rng_state(),
            "sampler_epoch": self.sampler.epoch,
            "recipe": self.recipe.to_yaml(),
            "record": json.dumps(record, allow_nan=True),
            "early_stopped": self.early_stopped,
        }
        save_training_state(runs.training_state_path(self.run_dir), state)

    def _load_state(self) -> dict[str, Any] | None:
        path = runs.training_state_path(self.run_dir)
        if not path.exists():
            self.log.info("no training state in %s: starting from the first epoch", path.parent)
            return None
        state = load_training_state(path)
        if int(state.get("version", 0)) != STATE_VERSION:
            raise InputError(f"{path}: training state version {state.get('version')} is not {STATE_VERSION}")
        self.model.load_state_dict(state["model"])
        restore_rng_state(state["rng"])
        return state

    def _restore_phase_state(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.module.load_state_dict(state["ema"])
            self.ema_updates = int(state.get("ema_updates", 0))
        if state.get("swa") is not None:
            self.swa = AveragedModel(self.ema.module if self.ema is not None else self.model, use_buffers=True)
            self.swa.load_state_dict(state["swa"])

    # --------------------------------------------------------------------------------------- status and stopping
    def _progress_info(self, epoch: int, step: int, steps: int, phase: int, loss: float) -> dict[str, Any]:
        """``epoch`` epochs done plus ``step`` of ``steps`` steps of the next one."""
        total = self.recipe.total_epochs
        fraction = min(1.0, (epoch + step / max(1, steps)) / total)
        if step == 0:
            message = f"epoch {epoch}/{total} done (phase {phase})"
        else:
            message = f"epoch {epoch + 1}/{total} (phase {phase}), step {step}/{steps}"
        if math.isfinite(loss):
            message += f", train loss {loss:.4f}"
        return {
            "fraction": fraction,
            "epoch": epoch,
            "epochs": total,
            "step": step,
            "steps": steps,
            "phase": phase,
            "loss": loss,
            "message": message,
        }

    def _beat(self, epoch: int, step: int, steps: int, phase: int, loss_sum: torch.Tensor, good: int) -> None:
        now = time.time()
        if self.progress is not None and now - self._last_progress >= PROGRESS_EVERY_S:
            self._last_progress = now
            self.progress(self._progress_info(epoch, step, steps, phase, loss_sum.item() / max(1, good)))
        if now - self._last_beat >= HEARTBEAT_EVERY_S:
            self._last_beat = now
            info = self._progress_info(epoch, step, steps, phase, float("nan"))
            runs.write_status(self.run_dir, progress=info["fraction"], step=step, steps=steps, phase=phase)

    def _check_stop(self, step: int) -> None:
        wanted = self._sigterm.is_set() or (self.is_main and runs.stop_requested(self.run_dir))
        if self.info.is_distributed:
            if step % STOP_CHECK_EVERY:
                return
            wanted = dist_utils.any_rank(wanted, self.device)
        if wanted:
            raise StopRequestedError()

    def _note_failures(self, failed: list[tuple[int, str]], split: str) -> None:
        for index, message in failed:
            manifest = self.data.train if split == "train" else self.data.val
            self.skipped_images.append(
                {"split": split, "index": index, "image_id": str(manifest.ids[index]), "error": message}
            )
            self.log.warning("skipped unreadable image (%s): %s", split, message)

    def _gather_failures(self) -> None:
        gathered = dist_utils.all_gather_object(self.skipped_images)
        unique = {(f["split"], f["image_id"]): f for part in gathered for f in part}
        self.skipped_images = list(unique.values())
        if self.is_main and self.skipped_images:
            frame = pd.DataFrame(self.skipped_images, columns=["split", "index", "image_id", "error"])
            write_text(self.run_dir / runs.SKIPPED_FILE, frame.to_csv(index=False))


# -------------------------------------------------------------------------------------------------------- helpers
def amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype: ``auto`` = bf16 on a GPU that supports it, else fp16; off on CPU unless asked (bf16)."""
    if mode == "off":
        return None
    if device.type != "cuda":
        if mode == "bf16":
            return torch.bfloat16
        if mode == "fp16":
            raise InputError("optim.amp=fp16 needs a CUDA GPU; use bf16 or off on CPU")
        return None
    if mode == "fp16":
        return torch.float16
    if mode == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def _resolve_weights(value: str | None, workspace: str | os.PathLike[str] | None) -> str | None:
    """``run:NAME`` becomes that run's best checkpoint in the workspace; a weights file given with a recipe
    placeholder (``${workspace}/...``) becomes a path; names stay names."""
    if value is not None and value.startswith("run:"):
        best = runs.checkpoint_path(runs.run_dir_of(workspace, value[len("run:") :]), "best")
        if not best.is_file():
            raise InputError(f"model.pretrained {value}: the run has no best checkpoint yet ({best})")
        return str(best)
    if value is None or not value.startswith("${"):
        return value

    return str(resolve_path(value, workspace))


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _num(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def _config_header(recipe: Recipe) -> str:
    return (
        f"# Resolved recipe of this run ({recipe.name}): every default filled in, overrides applied.\n"
        "# Re-run it with: cxrlt train --config <this file>\n"
    )


class _TqdmHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record))
        except Exception:
            self.handleError(record)


def _make_logger(path: Path | None, console: bool) -> logging.Logger:
    """A per-run logger: ``train.log`` and, when ``console``, the terminal (through tqdm); rank 0 only."""
    logger = logging.getLogger(f"{LOGGER_NAME}.{id(path)}.{time.time_ns()}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.FileHandler(path, encoding="utf-8")
        handler.setFormatter(fmt)
        logger.addHandler(handler)
        if console:
            stream = _TqdmHandler()
            stream.setFormatter(fmt)
            logger.addHandler(stream)
    else:
        logger.addHandler(logging.NullHandler())
    return logger
