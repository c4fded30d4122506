"""``cxrlt predict``, ``cxrlt calibrate``, ``cxrlt thresholds``: Task 1 predictions and their post-processing.

``predict`` runs checkpoints over a test CSV's images (TTA, weighted ensemble, normal gating, calibration) and streams
a predictions file with its provenance; ``calibrate`` and ``thresholds`` fit per-class calibration maps and
F1-optimal thresholds on validation predictions and their labels, each saved as a small JSON that ``predict`` takes.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from collections.abc import Iterator
from typing import Any

from cxrlt_core.registry import RegistryChoices

TTA_SETS = RegistryChoices("cxrlt_core.inference.tta:TTA_SETS")
MERGE_MODES = RegistryChoices("cxrlt_core.inference.tta:MERGE_MODES")
GATING_FORMS = RegistryChoices("cxrlt_core.inference.gating:GATING_FORMS")
CALIBRATORS = RegistryChoices("cxrlt_core.inference.calibration:CALIBRATORS")
PRECISIONS = RegistryChoices("cxrlt_core.inference.predict:PRECISIONS")
ON_ERROR = RegistryChoices("cxrlt_core.inference.loader:ON_ERROR")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``predict``, ``calibrate`` and ``thresholds``."""
    _add_predict(subparsers)
    _add_calibrate(subparsers)
    _add_thresholds(subparsers)


def _add_predict(subparsers: argparse._SubParsersAction) -> None:
    predict = subparsers.add_parser(
        "predict",
        help="Task 1 predictions: checkpoints + images -> TTA -> ensemble -> gating -> calibration -> PRED file",
        description="Predict every image of a CSV with one checkpoint or a weighted ensemble. Predictions stream to "
        "disk; their provenance (models, weights, TTA, merge, gating, calibration) goes in the parquet metadata or "
        "the CSV's .meta.json sidecar. Run under torchrun to shard the images across processes.",
    )
    predict.add_argument("--checkpoint", action="append", metavar="CKPT", help="a .safetensors checkpoint; repeat")
    predict.add_argument(
        "--ensemble",
        metavar="SPEC.yaml",
        help="an ensemble spec file (members with checkpoint, input size, weight) instead of --checkpoint/--weights",
    )
    predict.add_argument("--weights", type=float, nargs="+", metavar="W", help="one weight per checkpoint (normalised)")
    predict.add_argument("--labels", required=True, metavar="TEST.csv", help="CSV with the ImageIDs to predict")
    predict.add_argument("--images", required=True, metavar="DIR", help="folder the ImageIDs are relative to")
    predict.add_argument("--out", required=True, metavar="PRED", help="predictions .csv or .parquet to write")
    predict.add_argument(
        "--tta", default="medium", choices=TTA_SETS, metavar="SET", help="TTA views: %(choices)s (default medium)"
    )
    predict.add_argument(
        "--merge", default="mean", choices=MERGE_MODES, metavar="MODE", help="merge of a model's views: %(choices)s"
    )
    predict.add_argument(
        "--gating-alpha", type=float, default=0.5, metavar="A", help="normal gating strength, 0 = none (0.5)"
    )
    predict.add_argument(
        "--gating-form",
        default="power",
        choices=GATING_FORMS,
        metavar="FORM",
        help="%(choices)s; power: p(1-pN)^a, linear: p(1-a pN)",
    )
    predict.add_argument("--calibration", metavar="CAL.json", help="calibration from `cxrlt calibrate`")
    predict.add_argument(
        "--thresholds", metavar="THR.json", help="thresholds from `cxrlt thresholds`: also write 0/1 PRED.binary"
    )
    predict.add_argument("--batch-size", type=int, default=8, help="images per batch (default 8)")
    predict.add_argument("--num-workers", type=int, default=2, help="image decoding processes (default 2)")
    predict.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="default: cuda if any")
    predict.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        metavar="P",
        help="%(choices)s; auto: bf16 on CUDA, fp32 on CPU",
    )
    predict.add_argument(
        "--forward-batch",
        default="auto",
        metavar="N",
        help="most view-images per model call: an integer, 'all', or 'auto' (the device's measured default)",
    )
    predict.add_argument(
        "--on-error",
        default="raise",
        choices=ON_ERROR,
        metavar="POLICY",
        help="unreadable image: stop naming it (raise), or leave its row out and list it in PRED.failed.csv (skip)",
    )
    predict.add_argument("--threads", type=int, metavar="N", help="torch CPU threads (default: torch's choice)")
    predict.add_argument("--chunk-size", type=int, default=4096, help="rows per write (default 4096)")
    predict.add_argument("--cache-dir", metavar="DIR", help="cache decoded, resized images here")
    predict.add_argument("--label-space", metavar="NAME", help="label space of the CSV (default: its header)")
    predict.add_argument(
        "--study-aggregation",
        action="store_true",
        help="give every image its study's score: mean per view type, then across view types (needs StudyID)",
    )
    predict.add_argument(
        "--view-weight", action="append", default=[], metavar="VIEW=W", help="view weight for --study-aggregation"
    )
    predict.add_argument("--no-progress", action="store_true", help="no progress bar")
    predict.set_defaults(func=run_predict)


def _add_calibrate(subparsers: argparse._SubParsersAction) -> None:
    calibrate = subparsers.add_parser(
        "calibrate",
        help="fit per-class calibration (temperature, Platt, isotonic) on validation predictions",
        description="Fit one increasing map per class on labelled validation predictions (made with the same TTA, "
        "ensemble and gating as the predictions it will calibrate) and save it as JSON for `cxrlt predict "
        "--calibration`. Temperature and Platt keep AP and AUC exactly; isotonic can tie scores (see --epsilon).",
    )
    calibrate.add_argument("--pred", required=True, metavar="VAL_PRED", help="validation predictions")
    calibrate.add_argument("--labels", required=True, metavar="VAL.csv", help="labels of the same images")
    calibrate.add_argument(
        "--method", default="temperature", choices=CALIBRATORS, metavar="METHOD", help="%(choices)s (temperature)"
    )
    calibrate.add_argument("--out", required=True, metavar="CAL.json", help="calibration file to write")
    calibrate.add_argument(
        "--epsilon",
        type=float,
        default=0.0,
        help="isotonic only: mix in epsilon x the input score so the map is strictly increasing and the ranking "
        "(AP, AUC) is kept exactly (default 0: plain isotonic)",
    )
    calibrate.add_argument("--label-space", metavar="NAME", help="label space of the CSV (default: its header)")
    calibrate.set_defaults(func=run_calibrate)


def _add_thresholds(subparsers: argparse._SubParsersAction) -> None:
    thresholds = subparsers.add_parser(
        "thresholds",
        help="fit per-class F1-optimal thresholds on validation predictions",
        description="For each class, the threshold that maximises F1 on the labelled validation predictions; "
        "saved as JSON for `cxrlt predict --thresholds`.",
    )
    thresholds.add_argument("--pred", required=True, metavar="VAL_PRED", help="validation predictions")
    thresholds.add_argument("--labels", required=True, metavar="VAL.csv", help="labels of the same images")
    thresholds.add_argument("--out", required=True, metavar="THR.json", help="thresholds file to write")
    thresholds.add_argument(
        "--default", type=float, default=0.5, help="threshold of classes without validation positives (0.5)"
    )
    thresholds.add_argument("--label-space", metavar="NAME", help="label space of the CSV (default: its header)")
    thresholds.set_defaults(func=run_thresholds)


@contextlib.contextmanager
def _warnings_as_lines() -> Iterator[None]:
    """Print warnings as one ``warning: ...`` line on stderr (no file and line noise)."""
    previous = warnings.showwarning

    def show(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        print(f"warning: {message}", file=sys.stderr)

    warnings.showwarning = show
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            yield
    finally:
        warnings.showwarning = previous


def _forward_batch(value: str) -> int | str | None:
    from cxrlt_core.errors import InputError

    if value in ("auto", "all"):
        return None if value == "all" else "auto"
    try:
        number = int(value)
    except ValueError:
        raise InputError(f"--forward-batch must be an integer, 'all' or 'auto', got {value!r}") from None
    if number < 1:
        raise InputError(f"--forward-batch must be at least 1, got {number}")
    return number


def _members(args: argparse.Namespace) -> tuple[list[Any], list[float] | None]:
    """Checkpoints and weights from ``--ensemble`` or from ``--checkpoint`` / ``--weights``."""
    from cxrlt_core.errors import InputError

    if args.ensemble:
        if args.checkpoint or args.weights:
            raise InputError("--ensemble names the checkpoints and weights: leave out --checkpoint and --weights")
        from cxrlt_core.inference.ensemble_spec import load_ensemble_spec

        spec = load_ensemble_spec(args.ensemble)
        return list(spec.checkpoints), spec.weights
    if not args.checkpoint:
        raise InputError("give --checkpoint (repeat for an ensemble) or --ensemble SPEC.yaml")
    if args.weights is not None and len(args.weights) != len(args.checkpoint):
        raise InputError(f"--weights has {len(args.weights)} values for {len(args.checkpoint)} checkpoints")
    return list(args.checkpoint), args.weights


def run_predict(args: argparse.Namespace) -> int:
    """Predict, then print one summary line (and where the unreadable images are listed, if any)."""
    from cxrlt_core.data.manifest import read_manifest
    from cxrlt_core.errors import InputError
    from cxrlt_core.inference.predict import PredictOptions, predict
    from cxrlt_core.inference.study import parse_view_weights

    checkpoints, weights = _members(args)
    if args.view_weight and not args.study_aggregation:
        raise InputError("--view-weight applies to --study-aggregation only")
    options = PredictOptions(
        weights=weights,
        tta=args.tta,
        merge=args.merge,
        gating_alpha=args.gating_alpha,
        gating_form=args.gating_form,
        calibration=args.calibration,
        thresholds=args.thresholds,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        device=args.device,
        precision=args.precision,
        forward_batch=_forward_batch(args.forward_batch),
        on_error=args.on_error,
        chunk_size=args.chunk_size,
        cache_dir=args.cache_dir,
        threads=args.threads,
        show_progress=not args.no_progress,
        study_aggregation=args.study_aggregation,
        view_weights=parse_view_weights(args.view_weight),
    )
    options.check()
    manifest = read_manifest(args.labels, args.images, label_space=args.label_space, require_labels=False)
    with _warnings_as_lines():
        result = predict(checkpoints, manifest, args.out, options)
    if result.path is None:  # a torchrun rank other than 0: rank 0 reports
        return 0
    meta = result.metadata
    gating = meta["gating"]
    gated = f"gating {gating['form']} alpha={gating['alpha']:g}" if gating["applied"] else "no gating"
    calibrated = f", {meta['calibration']['method']} calibration" if meta["calibration"] else ""
    print(
        f"wrote {result.path}: {result.rows} rows x {len(meta['classes'])} classes; {len(meta['models'])} model(s), "
        f"TTA {meta['tta']['set']} ({len(meta['tta']['views'])} views, {meta['merge']}), {gated}{calibrated}; "
        f"{result.seconds:.1f} s on {meta['device']}"
    )
    if result.binary_file is not None:
        print(f"wrote {result.binary_file}: 0/1 decisions at the per-class thresholds")
    if result.failed:
        print(
            f"warning: {result.failed} images could not be read and have no prediction; they are listed in "
            f"{result.failed_file}. A submission written from {result.path} will fail until they are fixed.",
            file=sys.stderr,
        )
    return 0


def _aligned(args: argparse.Namespace) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
    from cxrlt_core.data.manifest import read_manifest
    from cxrlt_core.predictions import align_to_labels, read_predictions

    manifest = read_manifest(args.labels, label_space=args.label_space)
    pred = read_predictions(args.pred)
    scores, labels, classes = align_to_labels(pred, manifest)
    fitted_on = {
        "predictions": str(args.pred),
        "labels": str(args.labels),
        "rows": int(len(labels)),
        "pipeline": pred.metadata.get("pipeline"),
    }
    return pred, scores, labels, classes, fitted_on


def run_calibrate(args: argparse.Namespace) -> int:
    """Fit, save, and print the validation NLL and mECE before and after (in-sample)."""
    import numpy as np

    from cxrlt_core.errors import InputError
    from cxrlt_core.inference.calibration import binary_nll, fit_calibration
    from cxrlt_core.metrics import compute_report

    if args.epsilon and args.method != "isotonic":
        raise InputError("--epsilon applies to --method isotonic only")
    _, scores, labels, classes, fitted_on = _aligned(args)
    options = {"epsilon": args.epsilon} if args.method == "isotonic" else {}
    calibration = fit_calibration(scores, labels, classes, method=args.method, fitted_on=fitted_on, **options)
    calibration.save(args.out)
    after = calibration.apply(scores, classes)
    nll_before = np.nanmean([binary_nll(scores[:, j], labels[:, j]) for j in range(len(classes))])
    nll_after = np.nanmean([binary_nll(after[:, j], labels[:, j]) for j in range(len(classes))])
    ece_before = compute_report(labels, scores, classes)["mECE"]
    ece_after = compute_report(labels, after, classes)["mECE"]
    kept = sum(status == "fitted" for status in calibration.status)
    print(
        f"wrote {args.out}: {args.method} calibration of {kept} of {len(classes)} classes "
        f"({len(classes) - kept} kept as identity: no positives or no negatives)"
    )
    print(
        f"on the validation predictions (in-sample): mean NLL {nll_before:.4f} -> {nll_after:.4f}, "
        f"mECE {ece_before:.4f} -> {ece_after:.4f}"
    )
    return 0


def run_thresholds(args: argparse.Namespace) -> int:
    """Fit, save, and print validation mF1 at 0.5 and at the tuned thresholds (in-sample)."""
    import numpy as np

    from cxrlt_core.errors import InputError
    from cxrlt_core.inference.thresholds import f1_at_thresholds, fit_thresholds

    if not 0.0 <= args.default <= 1.0:
        raise InputError(f"--default must be in [0, 1], got {args.default}")
    _, scores, labels, classes, fitted_on = _aligned(args)
    fitted = fit_thresholds(scores, labels, classes, default=args.default, fitted_on=fitted_on)
    fitted.save(args.out)
    tuned = f1_at_thresholds(labels, scores, fitted.thresholds)
    at_half = f1_at_thresholds(labels, scores, 0.5)
    print(f"wrote {args.out}: thresholds for {len(classes)} classes")
    print(
        f"on the validation predictions (in-sample): mF1 at 0.5 {np.nanmean(at_half):.4f} -> "
        f"at the tuned thresholds {np.nanmean(tuned):.4f}"
    )
    return 0
