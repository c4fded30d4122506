"""One process or N under ``torchrun``: process-group set-up and the few collectives the training loop needs.

``torchrun`` (and submitit's ``TorchDistributedEnvironment``) export ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT``; :func:`init_distributed` reads them and starts the process group with
``nccl`` on CUDA and ``gloo`` on CPU (how tests run DDP). Without them every helper is a single-process no-op.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
from typing import Any

import torch
import torch.distributed as dist

from cxrlt_core.errors import InputError

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclasses.dataclass(frozen=True)
class DistInfo:
    """This process's place: rank among ``world_size`` processes, local rank on its node, device, backend."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    """Whether the process environment comes from torchrun (or another launcher that sets the same variables)."""
    return all(name in os.environ for name in TORCHRUN_VARIABLES) and int(os.environ["WORLD_SIZE"]) > 1


def pick_device(preference: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto``: CUDA (this process's local GPU) if available, else CPU; ``cuda`` without a GPU is an error."""
    if preference not in ("auto", "cpu", "cuda"):
        raise InputError(f"unknown device {preference!r}; choose auto, cpu or cuda")
    if preference == "cpu" or (preference == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise InputError("device 'cuda' requested but no CUDA GPU is available (use device=auto or cpu)")
    index = local_rank % max(1, torch.cuda.device_count())
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


def init_distributed(device: str = "auto", timeout_min: float = 30.0) -> DistInfo:
    """Start the process group when launched by torchrun, and pick this process's device.

    Returns a single-process :class:`DistInfo` otherwise (no process group).
    """
    if not launched_by_torchrun():
        return DistInfo(device=pick_device(device))
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ["LOCAL_RANK"])
    chosen = pick_device(device, local_rank)
    backend = "nccl" if chosen.type == "cuda" else "gloo"
    if not dist.is_initialized():
        kwargs: dict[str, Any] = {"backend": backend, "timeout": _dt.timedelta(minutes=timeout_min)}
        if chosen.type == "cuda":
            kwargs["device_id"] = chosen
        dist.init_process_group(**kwargs)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=chosen, backend=backend)


def cleanup_distributed() -> None:
    """Destroy the process group if this process started one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    if _active():
        dist.barrier()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` from rank ``src`` on every rank (picklable Python objects; ranks trust each other)."""
    if not _active():
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=src)
    return holder[0]


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (a one-element list in a single process)."""
    if not _active():
        return [obj]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over ranks (in place when distributed) and return it."""
    if _active():
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank if ``flag`` is true on any rank (e.g. a stop request seen by rank 0)."""
    if not _active():
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)
