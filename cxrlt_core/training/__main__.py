"""``python -m cxrlt_core.training`` / ``torchrun --nproc_per_node N -m cxrlt_core.training``: train a recipe."""

from __future__ import annotations

import sys

from cxrlt_core.training.entry import main

if __name__ == "__main__":
    sys.exit(main())
