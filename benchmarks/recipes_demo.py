"""Leaderboard of the recipes' demo twins on the demo data: test mAP and head / medium / tail with bootstrap CIs.

Every recipe in ``train_jobs/`` whose card says ``twin_of`` (the demo-sized twins of the field's systems) is trained
with N seeds on the demo workspace, predicted on the demo test split as its card says (ensemble members, study-level
view aggregation, temperature calibration fitted on the validation split), and scored against ``test_labels.csv``
with head / medium / tail buckets from the training labels. ``--reference demo_csra`` adds other recipes as rows.

Figures per twin: the mean over seeds of test mAP (overall and per bucket), a 95 % bootstrap interval over test
images for that seed mean (the same resamples for every seed), the standard deviation across seeds, mECE, and the
training seconds (all members of an ensemble). The prevalence baseline (every score = the class's test prevalence)
scores the mean test prevalence. Prints a Markdown table and writes a JSON the Results page reads
(``<workspace>/benchmarks/recipes_demo.json`` by default).

Each finished training leaves ``<out-dir>/<twin>/seed<k>[_m<j>]/result.json``; a re-run skips it (interrupt and
resume freely).

    python benchmarks/recipes_demo.py --workspace /tmp/ws/demo --seeds 0 1 2
    python benchmarks/recipes_demo.py --twins demo_chexfusion --seeds 0 --override optim.phase2.epochs=2
    for i in 0 1; do OMP_NUM_THREADS=1 python benchmarks/recipes_demo.py --shard $i/2 & done; wait   # side by side
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.sharding import shard_argument  # noqa: E402
from cxrlt_core.atomic import write_json  # noqa: E402
from cxrlt_core.config import load_recipe  # noqa: E402
from cxrlt_core.data.manifest import read_manifest  # noqa: E402
from cxrlt_core.inference.calibration import fit_calibration  # noqa: E402
from cxrlt_core.inference.predict import predict  # noqa: E402
from cxrlt_core.labels import BUCKETS, DEMO_LABEL_SPACE  # noqa: E402
from cxrlt_core.paths import REPO_ROOT  # noqa: E402
from cxrlt_core.predictions import align_to_labels, read_predictions  # noqa: E402
from cxrlt_core.recipe_cards import RecipeCard, list_cards  # noqa: E402
from cxrlt_core.runs import checkpoint_path, read_status  # noqa: E402
from cxrlt_core.seed_summary import format_figure, seed_mean_map  # noqa: E402
from cxrlt_core.training import train  # noqa: E402

RESULTS_NAME = "recipes_demo.json"


def trains_on_the_demo_data(card: RecipeCard) -> bool:
    """Whether the recipe's data are the demo data set's label space (a Stage 1 twin trains on NIH images)."""
    data = (yaml.safe_load(card.path.read_text(encoding="utf-8")) or {}).get("data") or {}  # type: ignore[union-attr]
    return data.get("label_space") == DEMO_LABEL_SPACE


def twins_and_references(args: argparse.Namespace) -> list[RecipeCard]:
    """The recipes to train: ``--twins`` or every demo twin that trains on the demo data, plus ``--reference``."""
    cards = {c.path.stem: c for c in list_cards() if c.path is not None}
    default = [n for n, c in cards.items() if c.twin_of]
    elsewhere = [n for n in default if not trains_on_the_demo_data(cards[n])]
    if elsewhere and not args.twins:
        print(f"not on the demo data, so not in this leaderboard: {', '.join(elsewhere)}", flush=True)
    names = args.twins or [n for n in default if n not in elsewhere]
    names = list(dict.fromkeys(names + list(args.reference)))
    unknown = [n for n in names if n not in cards]
    if unknown:
        raise SystemExit(f"no recipe {unknown} in {REPO_ROOT / 'train_jobs'}")
    return [cards[n] for n in names]


def members_of(card: RecipeCard) -> list[list[str]]:
    """Override lists of the runs a twin needs: one per ensemble member, else one."""
    return card.ensemble or [[]]


def train_member(card: RecipeCard, seed: int, member: int, args: argparse.Namespace) -> dict:
    """Train one run (cached in ``result.json``)."""
    suffix = f"_m{member}" if card.ensemble else ""
    run_dir = args.out_dir / card.path.stem / f"seed{seed}{suffix}"  # type: ignore[union-attr]
    result_path = run_dir / "result.json"
    if result_path.is_file():
        return json.loads(result_path.read_text(encoding="utf-8"))
    if run_dir.exists():
        shutil.rmtree(run_dir)
    (run_dir / "checkpoints").mkdir(parents=True)
    overrides = members_of(card)[member] + [f"optim.seed={seed}", f"data.split_seed={seed}"] + list(args.override)
    recipe = load_recipe(card.path, overrides)  # type: ignore[arg-type]
    start = time.perf_counter()
    train(recipe, run_dir, workspace=args.workspace, show_progress=not args.quiet)
    seconds = time.perf_counter() - start
    state = (read_status(run_dir) or {}).get("state")
    if state != "finished":
        raise SystemExit(f"{card.name} seed {seed}: training ended {state!r}; see {run_dir / 'train.log'}")
    result = {"checkpoint": str(checkpoint_path(run_dir, "best")), "train_seconds": round(seconds, 1)}
    write_json(result_path, result)
    return result


def _trained(card: RecipeCard, seed: int, member: int, args: argparse.Namespace) -> dict | None:
    suffix = f"_m{member}" if card.ensemble else ""
    path = args.out_dir / card.path.stem / f"seed{seed}{suffix}" / "result.json"  # type: ignore[union-attr]
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def predict_twin(card: RecipeCard, seed: int, runs: list[dict], args: argparse.Namespace) -> dict:
    """Test (and, for calibration, validation) predictions of a twin as its card says; cached."""
    out = args.out_dir / card.path.stem / f"seed{seed}_pred"  # type: ignore[union-attr]
    done = out / "predictions.json"
    if done.is_file():
        return json.loads(done.read_text(encoding="utf-8"))
    out.mkdir(parents=True, exist_ok=True)
    data = args.workspace / "datasets" / "demo"
    post = card.postprocess
    views = post.get("study_aggregation")
    settings: dict[str, Any] = {"tta": args.tta, "gating_alpha": 0.0, "num_workers": 0, "show_progress": False}
    settings["cache_dir"] = args.workspace / "cache" / "images"  # the decoded images training already cached
    if views is not None:
        settings.update(study_aggregation=True, view_weights=dict(views or {}))
    checkpoints = [r["checkpoint"] for r in runs]
    paths = {}
    for split in ("val", "test") if post.get("calibration") else ("test",):
        manifest = read_manifest(data / f"{split}.csv", image_root=data / "images", require_labels=False)
        paths[split] = str(out / f"{split}.parquet")
        predict(checkpoints, manifest, paths[split], **settings)
    result = {"test": paths["test"], "val": paths.get("val"), "calibration": post.get("calibration")}
    write_json(done, result)
    return result


def _scores(pred: dict, data: Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Test scores (calibrated when the card says so, fitted on the validation predictions), labels, classes."""
    test = read_manifest(data / "test_labels.csv", label_space=DEMO_LABEL_SPACE)
    scores, labels, classes = align_to_labels(read_predictions(pred["test"]), test)
    if pred.get("calibration"):
        val = read_manifest(data / "val_labels.csv", label_space=DEMO_LABEL_SPACE)
        val_scores, val_labels, val_classes = align_to_labels(read_predictions(pred["val"]), val)
        calibration = fit_calibration(val_scores, val_labels, val_classes, method=pred["calibration"])
        scores = calibration.apply(scores, classes)
    return scores, labels, classes


def summarise(card: RecipeCard, preds: list[dict], seconds: list[float], args: argparse.Namespace) -> dict:
    data = args.workspace / "datasets" / "demo"
    aligned = [_scores(p, data) for p in preds]
    _, y, classes = aligned[0]
    train_manifest = read_manifest(data / "train.csv", label_space=DEMO_LABEL_SPACE)
    train_y = train_manifest.labels[:, [train_manifest.classes.index(c) for c in classes]]
    seeds = seed_mean_map([(scores, labels) for scores, labels, _ in aligned], classes, train_y, args.bootstrap)
    return {
        "recipe": card.path.stem if card.path else card.name,
        "title": card.title,
        "twin_of": card.twin_of,
        "members": len(members_of(card)),
        "postprocess": card.postprocess,
        "seeds": list(args.seeds),
        "train_seconds": float(np.mean(seconds)),
        "mAUC": float(np.mean([r["mAUC"] for r in seeds.reports])),
        "mECE": float(np.mean([r["mECE"] for r in seeds.reports])),
        "mAP": seeds.figures(),
        "prevalence_baseline": float(np.mean(np.nanmean(y, axis=0))),
    }


def markdown(summaries: list[dict]) -> str:
    def cell(s: dict, g: str) -> str:
        return format_figure(s["mAP"][g])

    n = {g: summaries[0]["mAP"][g]["n_classes"] for g in ("all", *BUCKETS)}
    lines = [
        f"| recipe | test mAP ({n['all']}) | head ({n['head']}) | medium ({n['medium']}) | tail ({n['tail']}) "
        "| mAUC | mECE | train s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in sorted(summaries, key=lambda s: -s["mAP"]["all"]["mean"]):
        lines.append(
            f"| `{s['recipe']}` | {cell(s, 'all')} | {cell(s, 'head')} | {cell(s, 'medium')} | {cell(s, 'tail')} | "
            f"{s['mAUC']:.3f} | {s['mECE']:.3f} | {s['train_seconds']:.0f} |"
        )
    base = summaries[0]["prevalence_baseline"]
    lines.append(f"| prevalence baseline | {base:.3f} | | | | 0.500 | | |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, default=REPO_ROOT / "workspace" / "demo")
    parser.add_argument("--out-dir", type=Path, default=Path("/tmp/cxrlt_recipes_demo"))
    parser.add_argument("--twins", nargs="*", default=[], help="recipe names (default: every demo twin)")
    parser.add_argument("--reference", nargs="*", default=[], help="other recipes to add as rows, e.g. demo_csra")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--tta", default="none", help="TTA set of the test predictions (default none)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples of the test images")
    parser.add_argument("--override", nargs="*", default=[], help="recipe overrides for every run (key=value)")
    parser.add_argument("--json-out", type=Path, help=f"default: <workspace>/benchmarks/{RESULTS_NAME}")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--shard", type=shard_argument, metavar="I/N", help="train only every N-th run starting at I")
    parser.add_argument("--predict-only", action="store_true", help="only predict the twins already trained")
    args = parser.parse_args(argv)
    args.workspace = args.workspace.resolve()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    data = args.workspace / "datasets" / "demo"
    if not (data / "test_labels.csv").is_file():
        raise SystemExit(f"{data / 'test_labels.csv'} not found: build the demo data first (cxrlt demo)")
    cards = twins_and_references(args)
    jobs = [(c, s, m) for c, s in itertools.product(cards, args.seeds) for m in range(len(members_of(c)))]
    print(f"{len(cards)} recipes x {len(args.seeds)} seeds = {len(jobs)} training runs into {args.out_dir}", flush=True)
    if args.predict_only:  # predict the twins whose runs are all trained (e.g. one process per twin, side by side)
        for card in cards:
            for seed in args.seeds:
                runs = [_trained(card, seed, m, args) for m in range(len(members_of(card)))]
                if all(runs):
                    print(f"predicting {card.path.stem} seed {seed}", flush=True)  # type: ignore[union-attr]
                    predict_twin(card, seed, runs, args)  # type: ignore[arg-type]
        return 0
    if args.shard:
        index, count = args.shard
        for i, (card, seed, member) in enumerate(jobs[index::count], 1):
            print(f"[shard {index}/{count}: {i}] {card.name} seed {seed} member {member}", flush=True)
            train_member(card, seed, member, args)
        print("shard done; run again without --shard for the table", flush=True)
        return 0
    summaries = []
    for card in cards:
        preds, seconds = [], []
        for seed in args.seeds:
            print(f"{card.path.stem} seed {seed}", flush=True)  # type: ignore[union-attr]
            runs = [train_member(card, seed, m, args) for m in range(len(members_of(card)))]
            seconds.append(sum(r["train_seconds"] for r in runs))
            preds.append(predict_twin(card, seed, runs, args))
        summaries.append(summarise(card, preds, seconds, args))
        overall = summaries[-1]["mAP"]["all"]
        print(f"  test mAP {overall['mean']:.3f} [{overall['ci'][0]:.3f}-{overall['ci'][1]:.3f}]", flush=True)
    table = markdown(summaries)
    print(f"\nDemo test split; mean over seeds {args.seeds} [95 % bootstrap CI, {args.bootstrap} resamples] ±seed sd\n")
    print(table)
    out = args.json_out or args.workspace / "benchmarks" / RESULTS_NAME
    write_json(
        out,
        {
            "rows": summaries,
            "seeds": args.seeds,
            "tta": args.tta,
            "overrides": list(args.override),
            "bootstrap": args.bootstrap,
            "machine": f"{platform.machine()} {platform.node()}",
            "markdown": table,
        },
    )
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
