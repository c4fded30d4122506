"""Reproduction capsules: everything a reported figure rests on, packed so that anyone can re-check it.

``cxrlt capsule make`` writes a folder (or a ``.zip`` of it) holding ``capsule.json`` (the manifest: plain JSON,
nothing is ever unpickled) and copies of the small files:

* ``predictions/<file>``: the scored predictions file, its provenance (models, weights, TTA, gating, calibration,
  image folder) in the manifest;
* ``recipes/<run>.yaml``: the resolved recipe of each checkpoint's run; ``checkpoints/<i>_<name>.json``: each
  checkpoint's sidecar;
* ``images.sha256``: one line ``<sha256>  <path>`` per image file of the predicted split (``sha256sum -c`` reads it);
* the manifest: sha256 of the predictions, label CSVs, checkpoints and sidecars, the scorer variant, the figures,
  the cxrlt and library versions and the code revision (git, when the source is a git checkout).

``cxrlt capsule check CAPSULE [--images DIR] [--rerun-inference]`` verifies every hash, re-scores the predictions
with the recorded scorer, optionally predicts the images again, and prints each figure as ``reproduced``,
``differs`` (with the tolerance) or ``cannot be checked`` (with what is missing).
"""

from __future__ import annotations

CAPSULE_KIND = "cxrlt-capsule"
CAPSULE_VERSION = 1
MANIFEST_FILE = "capsule.json"
IMAGES_FILE = "images.sha256"
REPRODUCED = "reproduced"
DIFFERS = "differs"
UNCHECKED = "cannot be checked"
STATUSES = (REPRODUCED, DIFFERS, UNCHECKED)
RESCORE_TOLERANCE = 1e-9  # the same predictions and labels through the same scorer: equal up to rounding
RERUN_PROBABILITY_TOLERANCE = 1e-4  # a new inference pass (thread counts and kernels may change the last digits)
RERUN_FIGURE_TOLERANCE = 1e-3
