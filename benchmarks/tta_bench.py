"""TTA speed: the batched TTA path vs a naive per-view loop vs forward-only, on the same images.

For each model (random init; speed does not depend on the weights) it measures

- forward-only: model calls on plain images (``V`` copies of each, so as many model inputs as TTA) at several batch
  sizes; ``F`` = the best model inputs per second;
- TTA, batched (:func:`cxrlt_core.inference.tta.tta_logits`): all views of a batch made on the device, the model
  called on chunks of at most ``forward_batch`` view-images (``all`` = one call), for several chunk sizes;
- TTA, naive: one model call per view, each on the whole batch (:func:`naive_tta_logits`);

and prints images per second (source images), the TTA efficiency ``TTA img/s ÷ (F / V)`` with ``V`` views (target
≥ 85 % on CPU) and the speed-up over the naive loop (target ≥ 1 on CPU, ≥ 1.3 on a GPU). Timings are the best of
``--repeats`` interleaved rounds after a warm-up round. The best chunk, as pixels per call, is the measured budget
that ``DEFAULT_FORWARD_PIXELS`` records per device type; the row ``default`` is the chunk ``cxrlt predict`` uses.

Run (CPU, 2 cores here; convnextv2_base at 512 takes a few minutes):
    .venv/bin/python benchmarks/tta_bench.py
    .venv/bin/python benchmarks/tta_bench.py --models atto --device cuda --images 64 --batch-size 32
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cxrlt_core.inference.tta import (  # noqa: E402
    default_forward_batch,
    get_tta_set,
    make_views,
    naive_tta_logits,
    tta_logits,
)

MODELS = {
    # name: (timm backbone, input size, default number of images)
    "atto": ("convnextv2_atto", 128, 32),
    "base": ("convnextv2_base", 512, 2),
}


def build(backbone: str, size: int, device: torch.device, channels_last: bool) -> torch.nn.Module:
    from cxrlt_core.models.classifier import ModelConfig, build_model

    cfg = ModelConfig(backbone=backbone, head="csra", num_classes=30, input_size=size, pretrained=None)
    model = build_model(cfg).to(device).eval()
    return model.to(memory_format=torch.channels_last) if channels_last else model


def normaliser(device: torch.device, channels_last: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    """Gray [0, 255] (N, 1, H, W) → ImageNet-normalised (N, 3, H, W), as the predict pipeline does on the device."""
    scale = torch.tensor([1 / (255 * s) for s in (0.229, 0.224, 0.225)], device=device).view(1, 3, 1, 1)
    shift = torch.tensor([m / s for m, s in zip((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))], device=device)
    shift = shift.view(1, 3, 1, 1)

    def apply(gray: torch.Tensor) -> torch.Tensor:
        out = gray * scale - shift
        return out.contiguous(memory_format=torch.channels_last) if channels_last else out

    return apply


def best_times(jobs: dict[str, Callable[[], object]], device: torch.device, repeats: int) -> dict[str, float]:
    """Best wall time of each job over ``repeats`` rounds after one warm-up round.

    Jobs run interleaved (one of each per round), so that a slow spell of a shared machine hits every method alike.
    """
    for fn in jobs.values():
        fn()
    best = dict.fromkeys(jobs, float("inf"))
    for _ in range(repeats):
        for key, fn in jobs.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            best[key] = min(best[key], time.perf_counter() - start)
    return best


def bench_model(name: str, args: argparse.Namespace, device: torch.device) -> dict[str, object]:
    backbone, size, default_images = MODELS[name]
    n_images = args.images or default_images
    batch = min(args.batch_size or n_images, n_images)
    views = get_tta_set(args.tta)
    n_views = len(views)
    model = build(backbone, size, device, args.channels_last)
    transform = normaliser(device, args.channels_last)
    gen = torch.Generator().manual_seed(0)
    gray = (torch.rand(n_images, 1, size, size, generator=gen) * 255).round().to(device)
    use_bf16 = device.type == "cuda" and args.bf16
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if use_bf16 else torch.autocast("cpu", enabled=False)
    batches = [gray[i : i + batch] for i in range(0, n_images, batch)]
    result: dict[str, object] = {"model": backbone, "size": size, "images": n_images, "batch": batch, "views": n_views}

    jobs: dict[str, Callable[[], object]] = {}
    # Forward-only runs over V copies of the images: the same number of model inputs as TTA, so both timings are
    # equally long (a best-of over short runs would flatter forward-only on a shared machine).
    copies = gray.repeat(n_views, 1, 1, 1)
    forward_sizes = sorted({b for b in args.forward_batches if b <= n_images * n_views} | {batch})
    for b in forward_sizes:
        inputs = [copies[i : i + b] for i in range(0, n_images * n_views, b)]
        jobs[f"forward {b}"] = lambda inputs=inputs: [model(transform(x)) for x in inputs]
    default_chunk = default_forward_batch(device, size)
    default_chunk = None if default_chunk is not None and default_chunk >= batch * n_views else default_chunk
    chunks = [None, *sorted({c for c in args.forward_batches if c < batch * n_views} | {default_chunk} - {None})]
    for chunk in chunks:
        jobs[f"tta {'all' if chunk is None else chunk}"] = lambda chunk=chunk: [
            tta_logits(model, x, views, transform=transform, forward_batch=chunk) for x in batches
        ]
    jobs["naive"] = lambda: [naive_tta_logits(model, x, views, transform=transform) for x in batches]
    # The work the batched path adds to the model calls: making the views (robust to a noisy shared machine).
    jobs["views"] = lambda: [make_views(x, views) for x in batches]
    with torch.inference_mode(), autocast:
        seconds = best_times(jobs, device, args.repeats)
    rate = {key: n_images / value for key, value in seconds.items()}
    forward = {int(k.split()[1]): v * n_views for k, v in rate.items() if k.startswith("forward")}
    best_b = max(forward, key=forward.get)  # type: ignore[arg-type]
    limit = forward[best_b] / n_views
    tta = {k.split()[1]: v for k, v in rate.items() if k.startswith("tta")}
    naive = rate["naive"]
    views_share = seconds["views"] / seconds["naive"]
    for b, value in forward.items():
        print(f"  {name}: forward-only batch {b:>3}: {value:9.2f} img/s", flush=True)
    for key, value in tta.items():
        print(f"  {name}: TTA batched, forward_batch {key:>3}: {value:9.2f} img/s (efficiency {value / limit:6.1%})")
    print(f"  {name}: TTA naive per-view loop:    {naive:9.2f} img/s (efficiency {naive / limit:6.1%})", flush=True)
    print(
        f"  {name}: making all views takes {seconds['views'] * 1e3:.1f} ms, {views_share:.2%} of the naive loop's time"
    )
    best_chunk = max(tta, key=tta.get)  # type: ignore[arg-type]
    default_key = "all" if default_chunk is None else str(default_chunk)
    print(f"  {name}: default forward_batch on {device.type}: {default_key}", flush=True)
    result.update(
        default_forward_batch=default_key,
        forward_img_s=forward,
        best_forward_batch=best_b,
        forward_limit_img_s=limit,
        tta_img_s=tta,
        naive_img_s=naive,
        best_tta_forward_batch=best_chunk,
        best_tta_pixels_per_call=None if best_chunk == "all" else int(best_chunk) * size * size,
        efficiency={k: v / limit for k, v in tta.items()},
        speedup_vs_naive={k: v / naive for k, v in tta.items()},
        naive_efficiency=naive / limit,
        views_seconds=seconds["views"],
        views_share_of_naive=views_share,
    )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--images", type=int, default=0, help="images per model (default: 32 atto, 2 base)")
    parser.add_argument("--batch-size", type=int, default=0, help="images per TTA batch (default: all images)")
    parser.add_argument("--tta", default="medium")
    parser.add_argument("--forward-batches", type=int, nargs="+", default=[1, 2, 4, 6, 8, 12, 16, 24, 48])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast on CUDA")
    parser.add_argument("--json", type=Path, help="write the figures as JSON")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}"
        + (
            f" ({torch.cuda.get_device_name(device)})"
            if device.type == "cuda"
            else f" ({platform.processor() or 'cpu'})"
        ),
        flush=True,
    )
    results = []
    for name in args.models:
        results.append(bench_model(name, args, device))
    print()
    print(
        "| model | size | views | images/batch | forward img/s (best batch) | forward limit ÷ V | TTA batched img/s "
        "(default forward_batch) | efficiency | naive loop img/s | batched ÷ naive | best forward_batch (efficiency) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        used, best = r["default_forward_batch"], r["best_tta_forward_batch"]
        print(
            f"| {r['model']} | {r['size']} | {r['views']} | {r['batch']} | "
            f"{r['forward_img_s'][r['best_forward_batch']]:.2f} ({r['best_forward_batch']}) | "  # type: ignore[index]
            f"{r['forward_limit_img_s']:.2f} | {r['tta_img_s'][used]:.2f} ({used}) | "  # type: ignore[index]
            f"{r['efficiency'][used]:.1%} | {r['naive_img_s']:.2f} | {r['speedup_vs_naive'][used]:.2f}x | "  # type: ignore[index]
            f"{best} ({r['efficiency'][best]:.1%}) |"  # type: ignore[index]
        )
    if args.json:
        args.json.write_text(json.dumps({"device": str(device), "results": results}, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
