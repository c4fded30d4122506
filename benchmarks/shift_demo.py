"""Input-shift warning rates of one model: on real radiographs (all should be warned) and on the demo test images
(none should be).

    python benchmarks/shift_demo.py --workspace W [--run demo_csra] [--real DIR]

``--real`` defaults to ``../shared/data/fullres-cxr-samples/images`` beside the clone. The check must have been
fitted (at the end of training, or ``cxrlt shift fit``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from cxrlt_core.models.checkpoint import load_checkpoint  # noqa: E402
from cxrlt_core.paths import REPO_ROOT  # noqa: E402
from cxrlt_core.runs import checkpoint_path  # noqa: E402
from cxrlt_core.shift import features_of_images, load_for_checkpoint  # noqa: E402

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".dcm", ".dicom"}


def rates(distances: np.ndarray, threshold: float) -> str:
    warned = int((distances > threshold).sum())
    quantiles = np.quantile(distances, [0.0, 0.5, 1.0])
    return (
        f"{warned}/{len(distances)} warned ({warned / len(distances):.1%}); distance min {quantiles[0]:.1f}, "
        f"median {quantiles[1]:.1f}, max {quantiles[2]:.1f}; threshold {threshold:.1f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", required=True, type=Path)
    parser.add_argument("--run", default="demo_csra")
    parser.add_argument("--dataset", default="demo")
    parser.add_argument("--real", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "fullres-cxr-samples")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    ckpt = checkpoint_path(args.workspace / "runs" / args.run, "best")
    model, sidecar = load_checkpoint(ckpt)
    fitted = load_for_checkpoint(ckpt, sidecar)
    if fitted is None:
        print(f"error: {ckpt}: no input-shift check; run `cxrlt shift fit` first", file=sys.stderr)
        return 1
    data = args.workspace / "datasets" / args.dataset
    test = [data / "images" / i for i in pd.read_csv(data / "test.csv", usecols=["ImageID"])["ImageID"]]
    real = sorted(p for p in args.real.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    print(f"{args.run}: check fitted on {fitted.info.get('n_images')} training images")
    for label, paths in (("demo test images", test), (f"real radiographs ({args.real})", real)):
        start = time.perf_counter()
        distances = fitted.distance(features_of_images(model, sidecar, paths))
        print(f"{label}: {rates(distances, fitted.threshold)} [{time.perf_counter() - start:.0f} s]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
