"""How much the training loop adds over the model's own forward + backward pass, at the same batch size.

Pure: a fixed batch already on the device, ``loss(model(x)).backward()`` and an AdamW step, nothing else (the floor
any loop pays). Loop: ``cxrlt_core.training.train`` on real files (phase 2: reading from the decoded-image cache,
augmentation, host-to-device copies, EMA, gradient clipping, the schedule, heartbeats), timed in the steady state
of its second epoch (``step_seconds`` of metrics.jsonl); validation and checkpoint writes are not part of a step.

    .venv/bin/python benchmarks/train_overhead_bench.py --config train_jobs/demo_csra.yaml \\
        --workspace /tmp/demo_ws --steps 30

Prints both per-step times and the overhead in percent (target: <= 10 %). On a shared CPU timings are noisy: the
script interleaves repeats and reports medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch


def pure_step_seconds(recipe, num_classes: int, steps: int, with_optimizer: bool = True) -> float:
    """Median seconds of forward + loss + backward (+ AdamW step) on one fixed batch already on the device, with
    the recipe's device, AMP and memory format (the floor any training loop pays)."""
    import contextlib

    from cxrlt_core.distributed import pick_device
    from cxrlt_core.losses import build_loss
    from cxrlt_core.models import ModelConfig, build_model
    from cxrlt_core.training import amp_dtype

    device = pick_device(recipe.optim.device)
    dtype = amp_dtype(recipe.optim.amp, device)
    cfg = ModelConfig(
        backbone=recipe.model.backbone,
        head=recipe.model.head,
        head_params=dict(recipe.model.head_params),
        num_classes=num_classes,
        drop_path_rate=recipe.model.drop_path_rate,
        input_size=recipe.data.image_size,
        channels_last=recipe.optim.channels_last,
    )
    model = build_model(cfg).to(device).train()
    counts = torch.full((num_classes,), 20).numpy()
    loss_fn = build_loss(recipe.loss.name, class_counts=counts, num_images=1000, **dict(recipe.loss.params)).to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=1e-4, **({"fused": True} if device.type in ("cuda", "cpu") else {})
    )
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    size, batch = recipe.data.image_size, recipe.optim.batch_size
    x = torch.randn(batch, 3, size, size, device=device)
    if recipe.optim.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = (torch.rand(batch, num_classes, device=device) < 0.1).float()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    times = []
    for i in range(steps + 3):
        sync()
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext():
            logits = model(x)
        loss = loss_fn(logits.float(), y)
        if scaler is not None:
            scaler.scale(loss).backward()
        else:
            loss.backward()
        if with_optimizer:
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync()
        if i >= 3:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def loop_step_seconds(recipe, workspace: str | None, steps: int) -> tuple[float, int]:
    """Steady-state seconds per step of the training loop's second phase-2 epoch (from the end of its first step
    to the end of its last: data loading, host-to-device copies, clipping, EMA and bookkeeping included; the
    loader's start-up, validation and checkpoints not), and the number of classes."""
    from cxrlt_core import runs
    from cxrlt_core.training import train

    recipe.optim.phase1.epochs = 0
    recipe.optim.phase2.epochs = 2
    recipe.optim.phase2.warmup_epochs = 0
    recipe.optim.max_steps_per_epoch = steps
    recipe.optim.max_val_batches = 1
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = runs.create_run(tmp, "bench")
        train(recipe, run_dir, workspace=workspace, show_progress=False)
        records = runs.read_metrics(run_dir)
    last = records[-1]
    return last["step_seconds"], len(last["val"]["per_class_ap"])


def main() -> None:
    from cxrlt_core.config import load_recipe

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="train_jobs/demo_csra.yaml")
    parser.add_argument("--workspace", help="workspace holding the recipe's data (default $CXRLT_WORKSPACE)")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per measurement")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved repeats of both measurements")
    parser.add_argument("overrides", nargs="*", help="recipe overrides (key=value)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    loop_times, pure_times, fb_times = [], [], []
    for _ in range(args.repeats):
        recipe = load_recipe(args.config, args.overrides)
        loop_s, num_classes = loop_step_seconds(recipe, args.workspace, args.steps)
        loop_times.append(loop_s)
        pure_times.append(pure_step_seconds(load_recipe(args.config, args.overrides), num_classes, args.steps))
        fb_times.append(pure_step_seconds(load_recipe(args.config, args.overrides), num_classes, args.steps, False))
    loop_s, pure_s, fb_s = (statistics.median(v) for v in (loop_times, pure_times, fb_times))
    recipe = load_recipe(args.config, args.overrides)
    result = {
        "config": args.config,
        "backbone": recipe.model.backbone,
        "image_size": recipe.data.image_size,
        "batch_size": recipe.optim.batch_size,
        "threads": torch.get_num_threads(),
        "loop_step_s": round(loop_s, 4),
        "pure_step_s": round(pure_s, 4),
        "forward_backward_s": round(fb_s, 4),
        "overhead_vs_step_pct": round(100 * (loop_s / pure_s - 1), 1),
        "overhead_vs_forward_backward_pct": round(100 * (loop_s / fb_s - 1), 1),
        "repeats": {"loop": loop_times, "pure": pure_times, "forward_backward": fb_times},
    }
    print(
        f"{recipe.model.backbone} {recipe.data.image_size}px batch {recipe.optim.batch_size}, "
        f"device {recipe.optim.device}, AMP {recipe.optim.amp}, {torch.get_num_threads()} threads"
    )
    print(f"  pure forward+backward:          {fb_s * 1000:8.1f} ms/step")
    print(f"  pure forward+backward+AdamW:    {pure_s * 1000:8.1f} ms/step")
    print(f"  training loop (phase 2):        {loop_s * 1000:8.1f} ms/step")
    print(f"  loop overhead vs fwd+bwd+AdamW: {result['overhead_vs_step_pct']:+.1f} %")
    print(f"  loop overhead vs fwd+bwd:       {result['overhead_vs_forward_backward_pct']:+.1f} %")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
