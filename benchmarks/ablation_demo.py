"""Ablation on the demo data: loss (BCE / ASL / DB) x repeat-factor sampling (on / off) x head (MLP / CSRA), 3 seeds.

Every cell trains ``train_jobs/demo_csra.yaml`` (the same backbone, image size, schedule, augmentation and EMA for
all cells) with only the ablated factors changed, predicts the demo test split with the best (EMA, best val mAP)
checkpoint, and scores it against ``test_labels.csv`` with head / medium / tail buckets from the training labels.

Figures per cell: the mean over seeds of test mAP (overall and per bucket), a 95 % bootstrap interval over test
images for that seed mean (the same image resamples for every seed, so the interval reflects test-set sampling of
the seed-averaged system), and the standard deviation across seeds (training noise). Prints a Markdown table.

Each finished seed leaves ``<out-dir>/<cell>/seed<k>/result.json``; a re-run skips those (interrupt and resume
freely). A run that died mid-training restarts from scratch.

    .venv/bin/python benchmarks/ablation_demo.py --workspace workspace/demo --out-dir /tmp/ablation
    .venv/bin/python benchmarks/ablation_demo.py --design axes        # 5 cells: the demo_csra recipe, one change each
    .venv/bin/python benchmarks/ablation_demo.py --losses db --heads csra --seeds 0   # a single run
    .venv/bin/python benchmarks/ablation_demo.py --design profile --seeds 0 1    # fidelity-profile choices

``--design profile`` (docs/fidelity.md): the demo_csra recipe under the ``cxrlt`` profile, under ``winning_code``,
and with one winning-code choice at a time (input: INTER_LINEAR + truncation; LR stepped per epoch; Xavier head
init); the TTA geometry needs no training, so each base-cell run is also predicted with the ``medium`` and
``flip_scale`` views in both geometries (its checkpoint re-labelled). ``--no-train`` makes the table from the runs
that exist (a variant with fewer seeds is compared with the base cell on the same seeds). Rows add the paired
difference to the base cell with a bootstrap interval (the same test-image resamples for every row).
    # two shards side by side on 2 cores (about 2x the throughput of one 2-thread process), then the table:
    for i in 0 1; do OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ablation_demo.py --design axes --shard $i/2 & done
    wait; .venv/bin/python benchmarks/ablation_demo.py --design axes
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.sharding import shard_argument  # noqa: E402
from cxrlt_core.atomic import write_json  # noqa: E402
from cxrlt_core.bootstrap import percentile_interval  # noqa: E402
from cxrlt_core.config import load_recipe  # noqa: E402
from cxrlt_core.data.manifest import read_manifest  # noqa: E402
from cxrlt_core.inference.predict import predict  # noqa: E402
from cxrlt_core.labels import BUCKETS, DEMO_LABEL_SPACE  # noqa: E402
from cxrlt_core.paths import REPO_ROOT  # noqa: E402
from cxrlt_core.predictions import align_to_labels, read_predictions  # noqa: E402
from cxrlt_core.runs import checkpoint_path, read_status  # noqa: E402
from cxrlt_core.seed_summary import format_figure, seed_mean_map  # noqa: E402
from cxrlt_core.training import train  # noqa: E402

RECIPE = REPO_ROOT / "train_jobs" / "demo_csra.yaml"
# Loss parameters as in the demo recipes: DB in the winning code's variant, ASL as in demo_mlp.yaml (without its
# logit adjustment, so that the loss is the only change), plain BCE.
LOSS_PARAMS = {
    "bce": {},
    "asl": {"gamma_neg": 4, "gamma_pos": 0, "clip": 0.05},
    "db": {"variant": "code"},
}
HEAD_PARAMS = {"csra": {"lam": 0.1}, "mlp": {}}
BASE = ("db", True, "csra")  # the demo_csra recipe; --design axes changes one factor of it at a time


# Fidelity-profile variants of --design profile: recipe overrides on top of demo_csra (profile cxrlt).
PROFILE_VARIANTS = {
    "cxrlt": [],
    "winning_code": ["profile.name=winning_code"],
    "input": ["profile.interpolation=linear", "profile.rounding=truncate"],
    "lr_epoch": ["profile.lr_step=epoch"],
    "xavier_head": ["profile.head_init=winning_code"],
}
GEOMETRY_TTA = ("medium", "flip_scale")


@dataclasses.dataclass(frozen=True)
class Cell:
    loss: str
    sampler: bool
    head: str
    profile: str = ""

    @property
    def name(self) -> str:
        base = f"{self.head}-{self.loss}-{'rfs' if self.sampler else 'shuffle'}"
        return f"{base}-{self.profile}" if self.profile else base

    def overrides(self, seed: int) -> list[str]:
        return PROFILE_VARIANTS.get(self.profile, []) + [
            f"name={self.name}",
            f"model.head={self.head}",
            f"model.head_params={json.dumps(HEAD_PARAMS[self.head])}",
            f"loss.name={self.loss}",
            f"loss.params={json.dumps(LOSS_PARAMS[self.loss])}",
            f"sampler.enabled={str(self.sampler).lower()}",
            f"optim.seed={seed}",
        ]


def cells_for(args: argparse.Namespace) -> list[Cell]:
    if args.design == "profile":
        return [Cell(*BASE, profile=name) for name in args.profiles]
    if args.design == "axes":
        loss, sampler, head = BASE
        cells = [Cell(*BASE)]
        cells += [Cell(other, sampler, head) for other in ("bce", "asl") if other != loss]
        cells += [Cell(loss, not sampler, head), Cell(loss, sampler, "mlp")]
        return [c for c in cells if c.loss in args.losses and c.head in args.heads and c.sampler in args.samplers]
    return [Cell(*c) for c in itertools.product(args.losses, args.samplers, args.heads)]


def run_seed(cell: Cell, seed: int, args: argparse.Namespace) -> dict:
    """Train, predict and score one (cell, seed); cached in ``result.json``."""
    run_dir = args.out_dir / cell.name / f"seed{seed}"
    result_path = run_dir / "result.json"
    if result_path.is_file():
        return json.loads(result_path.read_text(encoding="utf-8"))
    if run_dir.exists():
        shutil.rmtree(run_dir)
    (run_dir / "checkpoints").mkdir(parents=True)
    recipe = load_recipe(RECIPE, cell.overrides(seed) + list(args.override))
    start = time.perf_counter()
    train(recipe, run_dir, workspace=args.workspace, show_progress=not args.quiet)
    train_s = time.perf_counter() - start
    state = (read_status(run_dir) or {}).get("state")
    if state != "finished":
        raise SystemExit(f"{cell.name} seed {seed}: training ended {state!r}; see {run_dir / 'train.log'}")
    data = args.workspace / "datasets" / "demo"
    manifest = read_manifest(
        data / "test.csv", image_root=data / "images", label_space=DEMO_LABEL_SPACE, require_labels=False
    )
    pred_path = run_dir / "test.parquet"
    predict(
        [checkpoint_path(run_dir, "best")],
        manifest,
        pred_path,
        tta=args.tta,
        gating_alpha=0.0,
        num_workers=0,
        show_progress=not args.quiet,
    )
    result = {"cell": cell.name, "seed": seed, "train_seconds": round(train_s, 1), "predictions": str(pred_path)}
    if cell.profile == "cxrlt":
        result["geometry"] = geometry_predictions(run_dir, manifest, args)
    write_json(result_path, result)
    return result


def geometry_predictions(run_dir: Path, manifest, args: argparse.Namespace) -> dict[str, str]:
    """Test predictions of the best checkpoint with each TTA set of GEOMETRY_TTA in both view geometries.

    The checkpoint is saved again with its input contract's ``tta_geometry`` changed (same weights), so the same
    predict pipeline runs it; returns ``{"<tta>/<geometry>": predictions file}``.
    """
    from cxrlt_core.models import load_checkpoint, save_checkpoint
    from cxrlt_core.models.contract import attach_contract

    best = checkpoint_path(run_dir, "best")
    out: dict[str, str] = {}
    for geometry in ("cxrlt", "winning_code"):
        folder = run_dir / f"geometry_{geometry}"
        folder.mkdir(exist_ok=True)
        model, info = load_checkpoint(best)
        attach_contract(model, model.input_contract.replace(tta_geometry=geometry))
        save_checkpoint(folder / best.name, model, {k: info[k] for k in ("run_id", "epoch", "metrics") if k in info})
        for tta in GEOMETRY_TTA:
            path = folder / f"test_{tta}.parquet"
            predict([folder / best.name], manifest, path, tta=tta, gating_alpha=0.0, num_workers=0, show_progress=False)
            out[f"{tta}/{geometry}"] = str(path)
    return out


def summarise(
    cell: Cell,
    results: list[dict],
    labels_csv: Path,
    train_csv: Path,
    n_boot: int,
    which: str | None = None,
    base: dict | None = None,
) -> dict:
    """Seed-mean test mAP (overall, per bucket) with bootstrap CIs and the seed standard deviation.

    ``which``: a key of the results' ``geometry`` predictions instead of the plain test predictions. ``base``: an
    earlier summary; adds the paired difference of the seed-mean mAP to it, with a bootstrap interval over the same
    image resamples.
    """
    test = read_manifest(labels_csv, label_space=DEMO_LABEL_SPACE)
    files = [r["geometry"][which] if which else r["predictions"] for r in results]
    aligned = [align_to_labels(read_predictions(f), test) for f in files]
    _, y, classes = aligned[0]
    train_manifest = read_manifest(train_csv, label_space=DEMO_LABEL_SPACE)
    train_y = train_manifest.labels[:, [train_manifest.classes.index(c) for c in classes]]
    seeds = seed_mean_map([(scores, labels) for scores, labels, _ in aligned], classes, train_y, n_boot)
    summary = {
        "cell": cell.name + (f" [{which}]" if which else ""),
        "profile": cell.profile,
        "view": which or args_tta_default(),
        "loss": cell.loss,
        "sampler": cell.sampler,
        "head": cell.head,
        "seeds": [r["seed"] for r in results],
        "train_seconds": float(np.mean([r["train_seconds"] for r in results])),
    }
    summary["mAP"] = seeds.figures()
    summary["prevalence_baseline"] = float(np.mean(y.mean(axis=0)))
    summary["_boot_all"] = seeds.boot["all"]
    if base is not None:
        delta = seeds.boot["all"] - base["_boot_all"]
        lo, hi = percentile_interval(delta)
        summary["delta"] = {
            "vs": base["cell"],
            "mean": summary["mAP"]["all"]["mean"] - base["mAP"]["all"]["mean"],
            "ci": [float(lo), float(hi)],
        }
    return summary


def args_tta_default() -> str:
    return "no TTA"


def profile_markdown(summaries: list[dict]) -> str:
    """The --design profile table: one row per variant (and per TTA geometry), paired difference to the base."""
    lines = [
        "| variant | views | test mAP (30) | Δ [95 % CI] (vs) | head | medium | tail | train s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        f = s["mAP"]
        delta = s.get("delta")
        d = f"{delta['mean']:+.4f} [{delta['ci'][0]:+.4f}, {delta['ci'][1]:+.4f}] ({delta['vs']})" if delta else "—"
        lines.append(
            f"| {s['profile']} | {s['view']} | {f['all']['mean']:.3f} [{f['all']['ci'][0]:.3f}–{f['all']['ci'][1]:.3f}]"
            f" ±{f['all']['sd']:.3f} | {d} | {f['head']['mean']:.3f} | {f['medium']['mean']:.3f} | "
            f"{f['tail']['mean']:.3f} | {s['train_seconds']:.0f} |"
        )
    return "\n".join(lines)


def markdown(summaries: list[dict]) -> str:
    def cell(s: dict, g: str) -> str:
        return format_figure(s["mAP"][g])

    n = {g: summaries[0]["mAP"][g]["n_classes"] for g in ("all", *BUCKETS)}
    lines = [
        f"| head | loss | sampler | test mAP ({n['all']}) | head ({n['head']}) | medium ({n['medium']}) "
        f"| tail ({n['tail']}) | train s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in sorted(summaries, key=lambda s: -s["mAP"]["all"]["mean"]):
        lines.append(
            f"| {s['head'].upper()} | {s['loss'].upper()} | {'repeat-factor' if s['sampler'] else 'shuffle'} | "
            f"{cell(s, 'all')} | {cell(s, 'head')} | {cell(s, 'medium')} | {cell(s, 'tail')} | "
            f"{s['train_seconds']:.0f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workspace",
        type=Path,
        default=REPO_ROOT / "workspace" / "demo",
        help="a workspace holding datasets/demo (cxrlt demo or cxrlt data make-demo)",
    )
    parser.add_argument("--out-dir", type=Path, default=Path("/tmp/cxrlt_ablation"))
    parser.add_argument(
        "--design",
        choices=("factorial", "axes", "profile"),
        default="factorial",
        help="factorial: every combination (12 cells); axes: demo_csra and one change at a time (5); profile: "
        "fidelity-profile choices on demo_csra (module docstring)",
    )
    parser.add_argument("--profiles", nargs="+", choices=tuple(PROFILE_VARIANTS), default=list(PROFILE_VARIANTS))
    parser.add_argument("--no-train", action="store_true", help="--design profile: table from existing runs only")
    parser.add_argument("--losses", nargs="+", choices=tuple(LOSS_PARAMS), default=["bce", "asl", "db"])
    parser.add_argument("--samplers", nargs="+", choices=("on", "off"), default=["on", "off"])
    parser.add_argument("--heads", nargs="+", choices=tuple(HEAD_PARAMS), default=["mlp", "csra"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--tta", default="none", help="TTA set for the test predictions (default none)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples of the test images")
    parser.add_argument("--override", nargs="*", default=[], help="extra recipe overrides for every cell (key=value)")
    parser.add_argument("--json-out", type=Path, help="write the summaries here")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument(
        "--shard",
        type=shard_argument,
        metavar="I/N",
        help="train only every N-th run starting at I (run N shards side by side, e.g. one thread "
        "each with OMP_NUM_THREADS=1; then once without --shard for the table)",
    )
    args = parser.parse_args()
    args.samplers = [s == "on" for s in args.samplers]
    args.workspace = args.workspace.resolve()
    data = args.workspace / "datasets" / "demo"
    if not (data / "test_labels.csv").is_file():
        raise SystemExit(f"{data / 'test_labels.csv'} not found: build the demo data first (cxrlt demo)")

    cells = cells_for(args)
    total = len(cells) * len(args.seeds)
    print(f"{len(cells)} cells x {len(args.seeds)} seeds = {total} training runs into {args.out_dir}", flush=True)
    if args.shard:
        index, count = args.shard
        jobs = list(itertools.product(cells, args.seeds))[index::count]
        for i, (cell, seed) in enumerate(jobs, 1):
            print(f"[shard {index}/{count}: {i}/{len(jobs)}] {cell.name} seed {seed}", flush=True)
            run_seed(cell, seed, args)
        print("shard done; run again without --shard for the table", flush=True)
        return 0
    if args.design == "profile":
        return profile_table(cells, args, data)
    summaries = []
    done = 0
    for cell in cells:
        results = []
        for seed in args.seeds:
            done += 1
            print(f"[{done}/{total}] {cell.name} seed {seed}", flush=True)
            results.append(run_seed(cell, seed, args))
        summaries.append(summarise(cell, results, data / "test_labels.csv", data / "train.csv", args.bootstrap))
        s = summaries[-1]
        overall = s["mAP"]["all"]
        print(
            f"  {cell.name}: test mAP {overall['mean']:.3f} [{overall['ci'][0]:.3f}-{overall['ci'][1]:.3f}]"
            f" sd {overall['sd']:.3f}",
            flush=True,
        )
    print(
        f"\nDemo test split, prevalence baseline mAP {summaries[0]['prevalence_baseline']:.3f}; cells: mean over "
        f"seeds {args.seeds} [95 % bootstrap CI over test images, {args.bootstrap} resamples] ±seed sd\n"
    )
    print(markdown(summaries))
    if args.json_out:
        clean = [{k: v for k, v in s.items() if not k.startswith("_")} for s in summaries]
        write_json(args.json_out, {"cells": clean, "seeds": args.seeds, "tta": args.tta})
    return 0


def _existing(cell: Cell, seed: int, args: argparse.Namespace) -> dict | None:
    """The result of (cell, seed): trained now unless --no-train, else only when it exists."""
    if not args.no_train:
        return run_seed(cell, seed, args)
    path = args.out_dir / cell.name / f"seed{seed}" / "result.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def profile_table(cells: list[Cell], args: argparse.Namespace, data: Path) -> int:
    """Train what is missing, then print the --design profile table (and write --json-out)."""
    summaries: list[dict] = []
    base = None
    labels, train_csv = data / "test_labels.csv", data / "train.csv"
    bases: dict[tuple[int, ...], dict] = {}
    for cell in cells:
        results = [r for r in (_existing(cell, seed, args) for seed in args.seeds) if r is not None]
        if not results:
            print(f"{cell.name}: no finished runs, left out", flush=True)
            continue
        seeds = tuple(r["seed"] for r in results)
        if cells[0] != cell and seeds not in bases:
            first = [r for r in (_existing(cells[0], seed, args) for seed in seeds) if r is not None]
            bases[seeds] = summarise(cells[0], first, labels, train_csv, args.bootstrap)
        summary = summarise(cell, results, labels, train_csv, args.bootstrap, base=bases.get(seeds))
        bases.setdefault(seeds, summary)
        base = base or summary
        summaries.append(summary)
        if "geometry" in results[0]:  # each geometry row is compared with the cxrlt geometry of the same views
            plain = {}
            for key in sorted(results[0]["geometry"], key=lambda k: (k.split("/")[0], k.split("/")[1] != "cxrlt")):
                ref = plain.get(key.split("/")[0])
                row = summarise(cell, results, labels, train_csv, args.bootstrap, which=key, base=ref)
                plain.setdefault(key.split("/")[0], row)
                summaries.append(row)
    print(
        f"\nDemo test split (600 images), seeds {args.seeds} (where run); test mAP = mean over seeds "
        f"[95 % bootstrap CI over test images, {args.bootstrap} resamples] ±seed sd; "
        "Δ = paired difference to the row named (same resamples)\n"
    )
    print(profile_markdown(summaries))
    if args.json_out:
        clean = [{k: v for k, v in s.items() if not k.startswith("_")} for s in summaries]
        write_json(args.json_out, {"cells": clean, "seeds": args.seeds, "overrides": args.override})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
