"""Learning-rate schedule of phase 2: linear warm-up, then cosine decay with a floor.

The winning code's ``cosine_with_warmup_lr_lambda``, with ``s`` counting epochs there (``LambdaLR`` stepped once per
epoch, :class:`EpochWarmupCosineSchedule`, fidelity profile ``lr_step: epoch``) or optimiser steps
(:class:`WarmupCosineSchedule`, ``lr_step: step``, smooth in short runs too):

    factor(s) = (s + 1) / W                                   for s < W (warm-up epochs or steps)
    factor(s) = max(floor, ½ (1 + cos(π (s − W) / (S − W))))   otherwise (S = total epochs or steps)

and every parameter group's learning rate is its peak value × factor(s).
"""

from __future__ import annotations

import math

import torch


def warmup_cosine_factor(step: int, total_steps: int, warmup_steps: int, floor: float = 0.01) -> float:
    """The multiplier of the peak learning rate at optimiser step ``step`` (0-based)."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return max(floor, 0.5 * (1.0 + math.cos(math.pi * progress)))


class WarmupCosineSchedule:
    """Sets each group's ``lr`` to ``peak × warmup_cosine_factor(step)``; its state is one integer, ``step``.

    Args:
        optimizer: optimiser whose groups carry their peak rate in ``initial_lr`` (set here from ``lr``).
        total_steps, warmup_steps, floor: see :func:`warmup_cosine_factor`.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int, floor: float = 0.01):
        self.optimizer = optimizer
        self.total_steps = max(1, int(total_steps))
        self.warmup_steps = max(0, int(warmup_steps))
        self.floor = float(floor)
        self.step_count = 0
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.apply()

    def factor(self) -> float:
        return warmup_cosine_factor(self.step_count, self.total_steps, self.warmup_steps, self.floor)

    def apply(self) -> None:
        """Write the current step's rates into the optimiser."""
        factor = self.factor()
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * factor

    def step(self) -> None:
        """Advance one optimiser step."""
        self.step_count += 1
        self.apply()

    def start_epoch(self, epoch: int) -> None:
        """Per-step schedules ignore epoch boundaries."""

    def state_dict(self) -> dict[str, int]:
        return {"step": self.step_count, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.step_count = int(state["step"])
        self.apply()


class ConstantSchedule:
    """Phase 1: the learning rate stays at its peak (the winning code's ``LambdaLR(lambda e: 1.0)``)."""

    def __init__(self, optimizer: torch.optim.Optimizer):
        self.optimizer = optimizer
        self.step_count = 0

    def step(self) -> None:
        self.step_count += 1

    def start_epoch(self, epoch: int) -> None:
        """The rate does not change."""

    def state_dict(self) -> dict[str, int]:
        return {"step": self.step_count}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.step_count = int(state["step"])


class EpochWarmupCosineSchedule:
    """The winning code's schedule: the rate of epoch ``e`` (0-based, within the phase) is
    ``peak × warmup_cosine_factor(e, epochs, warmup_epochs, floor)`` for the whole epoch.

    ``LambdaLR`` sets epoch 0's rate when it is built and ``scheduler.step()`` runs after each epoch; here
    :meth:`start_epoch` sets the rate at the start of each epoch, which gives the same rates and survives resuming.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, epochs: int, warmup_epochs: int, floor: float = 0.01):
        self.optimizer = optimizer
        self.epochs = max(1, int(epochs))
        self.warmup_epochs = max(0, int(warmup_epochs))
        self.floor = float(floor)
        self.epoch = 0
        self.step_count = 0
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.apply()

    def factor(self) -> float:
        return warmup_cosine_factor(self.epoch, self.epochs, self.warmup_epochs, self.floor)

    def apply(self) -> None:
        factor = self.factor()
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * factor

    def start_epoch(self, epoch: int) -> None:
        """Set the rates of epoch ``epoch`` of this phase."""
        self.epoch = int(epoch)
        self.apply()

    def step(self) -> None:
        """An optimiser step does not change the rate."""
        self.step_count += 1

    def state_dict(self) -> dict[str, int]:
        return {
            "epoch": self.epoch,
            "step": self.step_count,
            "epochs": self.epochs,
            "warmup_epochs": self.warmup_epochs,
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch = int(state.get("epoch", 0))
        self.step_count = int(state.get("step", 0))
        self.apply()
