"""Pixel bomb: peak memory of ``cxrlt predict`` on a test set with a pixel bomb vs the same set without it.

The bomb is a complete, valid 1-bit gray PNG declaring 32000 x 32000 pixels (~125 KB on disk; decoding it would
allocate 1 GB as uint8 and more on the way to a tensor). With the header check of ``cxrlt_core.data.image_headers``
it is refused before decoding and listed in ``PRED.failed.csv`` (``--on-error skip``), so the peak should not move.

Two peak figures per run, both over the ``cxrlt predict`` process and its DataLoader workers:

- ``max single``: the largest peak RSS of any one process of the tree (``os.wait4``'s ``ru_maxrss``, which Linux
  takes over the child and its reaped descendants);
- ``sum sampled``: the largest sum of the tree's current RSS, sampled from ``/proc`` every 10 ms.

Target: ``with bomb / without`` within 1.10 for both. Run (2-core CPU, ~1 min):
    .venv/bin/python benchmarks/pixel_bomb_bench.py [--workspace /path/to/demo] [--images 24]
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PAGE = os.sysconf("SC_PAGE_SIZE")


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def write_png_bomb(path: Path, side: int = 32000) -> None:
    """A complete 1-bit gray PNG of ``side x side`` zeros (every row really stored, deflate-compressed)."""
    row = bytes(1 + (side + 7) // 8)
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))


def tree_rss(root: int) -> int:
    """Sum of the current RSS (bytes) of ``root`` and all its descendants, read from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            pages = int(Path(f"/proc/{entry}/statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(int(stat[1]), []).append(int(entry))
        rss[int(entry)] = pages * PAGE
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += children.get(pid, [])
    return total


def measure(command: list[str]) -> tuple[int, int, float, int]:
    """Run ``command``; return (max single-process peak RSS, max sampled tree RSS sum, seconds, exit status)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak_sum = 0
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        peak_sum = max(peak_sum, tree_rss(process.pid))
        time.sleep(0.01)
    process.returncode = os.waitstatus_to_exitcode(status)
    err = process.stderr.read().decode(errors="replace") if process.stderr else ""
    if process.returncode != 0:
        print(err[-2000:], file=sys.stderr)
    return usage.ru_maxrss * 1024, peak_sum, time.perf_counter() - start, process.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", default="workspace/demo", help="a built demo workspace (cxrlt demo)")
    parser.add_argument("--images", type=int, default=24, help="test images besides the bomb")
    parser.add_argument("--num-workers", type=int, default=2)
    args = parser.parse_args()
    ws = Path(args.workspace)
    checkpoint = ws / "runs" / "demo_csra" / "checkpoints" / "best.safetensors"
    dataset = ws / "datasets" / "demo"
    ids = (dataset / "test.csv").read_text().splitlines()[1 : 1 + args.images]
    with tempfile.TemporaryDirectory(prefix="pixel-bomb-") as tmp:
        root = Path(tmp)
        images = root / "images"
        images.mkdir()
        for image_id in ids:
            shutil.copy(dataset / "images" / image_id, images / image_id)
        write_png_bomb(images / "bomb.png")
        (root / "clean.csv").write_text("ImageID\n" + "\n".join(ids) + "\n")
        (root / "bomb.csv").write_text(
            "ImageID\n" + "\n".join([*ids[: len(ids) // 2], "bomb.png", *ids[len(ids) // 2 :]]) + "\n"
        )
        base = [
            sys.executable,
            "-m",
            "cxrlt_core.cli",
            "predict",
            "--checkpoint",
            str(checkpoint),
            "--images",
            str(images),
        ]
        base += ["--tta", "none", "--batch-size", "8", "--num-workers", str(args.num_workers), "--device", "cpu"]
        base += ["--on-error", "skip", "--no-progress"]
        results = {}
        for label in ("clean", "bomb", "clean", "bomb"):  # interleaved, best (lowest) of two
            out = root / f"{label}.parquet"
            single, summed, seconds, rc = measure([*base, "--labels", str(root / f"{label}.csv"), "--out", str(out)])
            if rc != 0:
                print(f"{label}: cxrlt predict exited {rc}")
                return 1
            old = results.get(label)
            results[label] = (min(single, old[0]), min(summed, old[1]), seconds) if old else (single, summed, seconds)
        failed = (root / "bomb.parquet.failed.csv").read_text() if (root / "bomb.parquet.failed.csv").exists() else ""
        bomb_size = (images / "bomb.png").stat().st_size
    mib = 1024 * 1024
    print(
        f"pixel bomb: 32000 x 32000 1-bit PNG, {bomb_size / 1024:.0f} KiB; {len(ids)} demo test images; "
        f"checkpoint {checkpoint.parent.parent.name}, --tta none, --num-workers {args.num_workers}, CPU"
    )
    print(f"bomb listed in failed.csv: {'bomb.png' in failed}")
    for index, what in enumerate(("max single-process peak RSS", "sampled peak RSS sum of the tree")):
        clean, bomb = results["clean"][index], results["bomb"][index]
        print(f"{what:34s} without {clean / mib:8.1f} MiB  with bomb {bomb / mib:8.1f} MiB  ratio {bomb / clean:.3f}")
    print(f"wall time: without {results['clean'][2]:.1f} s, with bomb {results['bomb'][2]:.1f} s")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
