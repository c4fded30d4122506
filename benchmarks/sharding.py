"""``--shard I/N`` for the benchmarks that train many runs: run every N-th job starting at I, N processes side by
side (each with ``OMP_NUM_THREADS=1``), then once without ``--shard`` for the table."""

from __future__ import annotations

import argparse


def shard_argument(text: str) -> tuple[int, int]:
    """argparse type of ``--shard``: ``"I/N"`` → ``(I, N)`` with ``0 <= I < N``."""
    index, _, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard wants I/N such as 0/2, got {text!r}") from None
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"--shard {text}: need 0 <= I < N")
    return i, n
