"""Localisation of the demo models' maps: pointing game and mass in the sign's box, per class, head maps and Grad-CAM.

Reads a run's best checkpoint, the demo test split and its ``boxes.csv`` (where the generator drew each sign), and
scores every (image, finding) with a box and a model class (``cxrlt_core.localisation``): the head's own maps and
each of ``--methods`` (Grad-CAM family, occlusion). Each class also gets the model's test AUC on the split, and the
macro means are printed twice: over every class with a box, and over the classes the model detects (test AUC >=
``--detected-auc``), since a map cannot point at a finding the model does not recognise. Prints per-class tables and
the macro means with the chance level (the mean box share of the image).

    python benchmarks/localisation_demo.py --workspace W [--runs demo_csra demo_mlp] [--split test_labels.csv]
        [--limit N] [--methods gradcam occlusion] [--csv OUT.csv]
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
from sklearn.metrics import roc_auc_score  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from cxrlt_core.data.images import read_radiograph  # noqa: E402
from cxrlt_core.explain import MAP_METHODS, maps_for_image, prepare_radiograph  # noqa: E402
from cxrlt_core.localisation import overall, per_class, read_boxes, score_images  # noqa: E402
from cxrlt_core.models.checkpoint import load_checkpoint  # noqa: E402
from cxrlt_core.runs import checkpoint_path  # noqa: E402


def class_auc(model: torch.nn.Module, sidecar: dict, data: Path, split: str, classes: list[str]) -> dict[str, float]:
    """Test AUC of each class the split's labels give (both outcomes present): which findings the model detects."""
    labels = pd.read_csv(data / split, dtype={"ImageID": str})
    probs = []
    with torch.no_grad():
        for start in range(0, len(labels), 64):
            ids = labels["ImageID"].iloc[start : start + 64]
            batch = torch.cat([prepare_radiograph(read_radiograph(data / "images" / i), sidecar)[1] for i in ids])
            probs.append(torch.sigmoid(model(batch)).numpy())
    scores = np.concatenate(probs)
    return {
        name: float(roc_auc_score(labels[name], scores[:, j]))
        for j, name in enumerate(classes)
        if name in labels and labels[name].nunique() == 2
    }


def localise_run(run_dir: Path, data: Path, split: str, limit: int | None, methods: list[str]) -> pd.DataFrame:
    """Per-class scores of one run on the images of ``split`` that have boxes."""
    model, sidecar = load_checkpoint(checkpoint_path(run_dir, "best"))
    model.eval()
    classes = list(sidecar["model"]["class_names"])
    ids = set(pd.read_csv(data / split, usecols=["ImageID"], dtype=str)["ImageID"])
    boxes = read_boxes(data / "boxes.csv")
    boxes = boxes[boxes["ImageID"].isin(ids)]
    if limit:
        keep = sorted(boxes["ImageID"].unique())[:limit]
        boxes = boxes[boxes["ImageID"].isin(keep)]

    def maps_of(image_id: str, indices: list[int]) -> dict:
        image = read_radiograph(data / "images" / image_id)
        maps = maps_for_image(model, sidecar, image, indices, None)
        for method in methods:
            maps.update({method: maps_for_image(model, sidecar, image, indices, method)[method]})
        return maps

    bar = tqdm(desc=run_dir.name, unit="img")

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        scores = score_images(boxes, classes, maps_of, progress)
    finally:
        bar.close()
    table = per_class(scores)
    table.insert(0, "run", run_dir.name)
    table["test_auc"] = table["finding"].map(class_auc(model, sidecar, data, split, classes))
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", required=True, type=Path)
    parser.add_argument("--runs", nargs="+", default=["demo_csra", "demo_mlp"])
    parser.add_argument("--dataset", default="demo", help="data set folder under W/datasets")
    parser.add_argument("--split", default="test_labels.csv", help="CSV naming the images scored")
    parser.add_argument("--limit", type=int, default=None, help="score only the first N images with boxes")
    parser.add_argument(
        "--methods", nargs="*", default=["gradcam"], choices=MAP_METHODS, help="maps scored besides the head's own"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--detected-auc", type=float, default=0.8, help="also average over the findings the model detects (test AUC)"
    )
    parser.add_argument("--csv", type=Path, help="write the per-class table here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = args.workspace / "datasets" / args.dataset
    if not (data / "boxes.csv").is_file():
        print(f"error: {data / 'boxes.csv'} is missing: rebuild the demo data set", file=sys.stderr)
        return 1
    tables = []
    for run in args.runs:
        start = time.perf_counter()
        tables.append(localise_run(args.workspace / "runs" / run, data, args.split, args.limit, args.methods))
        print(f"{run}: {time.perf_counter() - start:.0f} s")
    table = pd.concat(tables, ignore_index=True)
    pd.set_option("display.width", 160)
    pd.set_option("display.max_rows", 200)
    print(table.round(3).to_string(index=False))
    for run, part in table.groupby("run"):
        print(f"\n{run} (macro over classes with a box):")
        print(overall(part).round(3).to_string(index=False))
        detected = part[part["test_auc"] >= args.detected_auc]
        print(f"{run} (macro over the classes it detects, test AUC >= {args.detected_auc}):")
        print(overall(detected).round(3).to_string(index=False))
    if args.csv:
        table.to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
