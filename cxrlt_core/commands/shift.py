"""``cxrlt shift``: the input-shift check of a checkpoint (is an image unlike the training data?).

``cxrlt shift fit`` fits it for an existing checkpoint (training does it at the end of every run);
``cxrlt shift check`` prints each image's distance and whether it is beyond the threshold. See ``cxrlt_core.shift``.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``shift fit`` and ``shift check`` (``cxrlt_core.shift`` imports torch, so it waits for the command)."""
    parser = subparsers.add_parser("shift", help="input-shift check: is an image unlike the training data?")
    sub = parser.add_subparsers(dest="shift_command", metavar="{fit,check}")
    fit = sub.add_parser("fit", help="fit the check of a checkpoint on its training images (beside the checkpoint)")
    fit.add_argument("--checkpoint", required=True, type=Path, metavar="CKPT", help="<stem>.safetensors of a run")
    fit.add_argument("--csv", required=True, type=Path, metavar="TRAIN.csv", help="the training CSV")
    fit.add_argument("--images", required=True, type=Path, metavar="DIR", help="folder the image ids are in")
    fit.add_argument("--limit", type=int, metavar="N", help="images used (default: the check's, see docs/inspect.md)")
    fit.add_argument("--quantile", type=float, help="quantile of the training distances (default: the check's)")
    fit.add_argument("--margin", type=float, help="factor on that quantile (default: the check's)")
    fit.add_argument("--no-progress", action="store_true", help="no progress bar")
    fit.set_defaults(func=run_fit)
    check = sub.add_parser("check", help="distance of each image to the training data, and the verdict")
    check.add_argument("--checkpoint", required=True, type=Path, metavar="CKPT", help="<stem>.safetensors of a run")
    check.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="image files (PNG, JPEG, DICOM)")
    check.set_defaults(func=run_check)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def _bar(total_label: str, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    bar = tqdm(desc=total_label, unit="img")

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    return update, bar


def run_fit(args: argparse.Namespace) -> int:
    from cxrlt_core.errors import InputError
    from cxrlt_core.shift import MARGIN, MAX_IMAGES, QUANTILE, ShiftModel, fit_for_checkpoint

    args.limit = MAX_IMAGES if args.limit is None else args.limit
    args.quantile = QUANTILE if args.quantile is None else args.quantile
    args.margin = MARGIN if args.margin is None else args.margin
    if not args.checkpoint.is_file():
        raise InputError(f"{args.checkpoint}: no such checkpoint")
    if args.limit < 10:
        raise InputError(f"--limit must be at least 10, got {args.limit}")
    made = _bar("training features", not args.no_progress)
    try:
        path = fit_for_checkpoint(
            args.checkpoint, args.csv, args.images, args.limit, args.quantile, args.margin, made[0] if made else None
        )
    finally:
        if made:
            made[1].close()
    fitted = ShiftModel.load(path)
    print(
        f"wrote {path}: {fitted.info['n_images']} training images, threshold {fitted.threshold:.2f} "
        f"(cross-fitted median {fitted.info['cross_fitted_median']:.2f})"
    )
    return 0


def run_check(args: argparse.Namespace) -> int:
    from cxrlt_core.errors import InputError
    from cxrlt_core.models.checkpoint import load_checkpoint
    from cxrlt_core.shift import features_of_images, load_for_checkpoint

    model, sidecar = load_checkpoint(args.checkpoint)
    fitted = load_for_checkpoint(args.checkpoint, sidecar)
    if fitted is None:
        raise InputError(f"{args.checkpoint}: no input-shift check for these weights; run `cxrlt shift fit` first")
    features = features_of_images(model, sidecar, args.images)
    print("image,distance,threshold,verdict")
    for path, result in zip(args.images, fitted.check(features)):
        verdict = "unlike the training data" if result.shifted else "like the training data"
        print(f"{path},{result.distance:.2f},{result.threshold:.2f},{verdict}")
    return 0
