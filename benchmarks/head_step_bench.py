"""Training-step cost of the ML-Decoder head against the CSRA head on the same backbone and batch (CPU by default).

One step = forward + BCE loss + backward + AdamW step on a fixed random batch (no data loading). The two models
are timed interleaved (one step of each in turn, in alternating order, after warm-up) so that load from other jobs
hits both alike; the medians and their ratio are printed (target: ML-Decoder <= 1.5x CSRA).

    python benchmarks/head_step_bench.py                       # convnextv2_atto, 96 px, batch 32, 30 classes
    python benchmarks/head_step_bench.py --size 224 --ml-params '{"embed_dim": 768, "ffn_dim": 2048}'
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

#: the ML-Decoder settings of the demo twins (train_jobs/demo_*mldecoder*.yaml)
DEMO_ML_PARAMS = {"embed_dim": 256, "num_heads": 8, "ffn_dim": 1024, "pos_encoding": True}


def make_step(backbone: str, head: str, params: dict, classes: int, size: int, batch: int):
    """A closure that runs one training step of ``backbone`` + ``head`` on a fixed batch."""
    from cxrlt_core.models import ModelConfig, build_model

    cfg = ModelConfig(backbone=backbone, head=head, head_params=params, num_classes=classes, input_size=size)
    model = build_model(cfg).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, size, size, generator=gen)
    y = (torch.rand(batch, classes, generator=gen) < 0.1).float()

    def step() -> float:
        t0 = time.perf_counter()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - t0

    return step, sum(p.numel() for p in model.head.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="convnextv2_atto")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--classes", type=int, default=30)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ml-params", default=json.dumps(DEMO_ML_PARAMS), help="ML-Decoder head_params as JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ml_params = json.loads(args.ml_params)
    steps = {
        "csra": make_step(args.backbone, "csra", {}, args.classes, args.size, args.batch),
        "ml_decoder": make_step(args.backbone, "ml_decoder", ml_params, args.classes, args.size, args.batch),
    }
    times: dict[str, list[float]] = {name: [] for name in steps}
    for i in range(args.warmup + args.steps):
        order = list(steps.items()) if i % 2 == 0 else list(steps.items())[::-1]  # no first-in-pair advantage
        for name, (step, _) in order:
            seconds = step()
            if i >= args.warmup:
                times[name].append(seconds)
    print(
        f"{args.backbone} at {args.size} px, batch {args.batch}, {args.classes} classes, {args.threads} threads, "
        f"{args.steps} interleaved steps each; ML-Decoder {ml_params}"
    )
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, (_, head_params) in steps.items():
        print(f"  {name:<11} head {head_params / 1e6:6.2f} M parameters  median step {medians[name] * 1000:8.1f} ms")
    ratio = medians["ml_decoder"] / medians["csra"]
    print(f"ratio ML-Decoder / CSRA: {ratio:.2f}x (target <= 1.5x: {'met' if ratio <= 1.5 else 'NOT met'})")


if __name__ == "__main__":
    main()
