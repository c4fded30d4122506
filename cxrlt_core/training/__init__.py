"""Task 1 training: the two-phase loop (single process or torchrun DDP), its schedule, data and entry points.

``train(recipe, run_dir, resume=False, progress=None)`` is the function; ``python -m cxrlt_core.training`` and
``cxrlt train`` are its command lines. Names are loaded on first use, so that importing the command-line module
does not import torch.
"""

from __future__ import annotations

from cxrlt_core.lazy import lazy_exports

_EXPORTS = {
    "TrainResult": "cxrlt_core.training.loop",
    "Trainer": "cxrlt_core.training.loop",
    "amp_dtype": "cxrlt_core.training.loop",
    "train": "cxrlt_core.training.loop",
    "WarmupCosineSchedule": "cxrlt_core.training.schedule",
    "warmup_cosine_factor": "cxrlt_core.training.schedule",
    "main": "cxrlt_core.training.entry",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
