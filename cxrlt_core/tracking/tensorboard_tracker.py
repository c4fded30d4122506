"""TensorBoard event files of a run: ``<run>/tensorboard/`` (``tensorboard --logdir <workspace>/runs``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch.utils.tensorboard import SummaryWriter

from cxrlt_core.tracking import TENSORBOARD_DIR, Tracker, epoch_metrics, update_tracking


class TensorBoardTracker(Tracker):
    """Scalars per epoch (step = epoch number) and the resolved recipe as text, with torch's ``SummaryWriter``."""

    def __init__(self, recipe: Any, run_dir: Path, first_epoch: int = 0):
        log_dir = Path(run_dir) / TENSORBOARD_DIR
        # a resumed run drops events of the epochs it trains again (steps > first_epoch)
        self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=first_epoch + 1 if first_epoch else None)
        if not first_epoch:
            self.writer.add_text("recipe", "```yaml\n" + recipe.to_yaml() + "```", global_step=0)
        update_tracking(run_dir, "tensorboard", {"log_dir": TENSORBOARD_DIR})

    def log_epoch(self, record: Mapping[str, Any]) -> None:
        step = int(record["epoch"])
        for name, value in epoch_metrics(record).items():
            self.writer.add_scalar(name, value, global_step=step)
        self.writer.flush()

    def finish(self, state: str) -> None:
        self.writer.close()
