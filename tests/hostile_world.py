"""Shared material for the hostile-input, OS-error and fault-injection tests: a toy data set, a checkpoint, val/test
predictions, and file-system shims that make writes fail the way a full or read-only disk does (no root needed).

Import the fixtures into a test module (``from tests.hostile_world import world  # noqa: F401``).
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from cxrlt_core.cli import main
from cxrlt_core.data.demo.generate import generate_demo_dataset
from cxrlt_core.data.images import Preprocess
from cxrlt_core.labels import get_label_space
from cxrlt_core.models.checkpoint import save_checkpoint
from cxrlt_core.models.classifier import ModelConfig, build_model

SPACE = get_label_space("cxrlt2026")


def cxrlt(*argv: object) -> int:
    """``cxrlt ARGV`` in this process; returns the exit status."""
    return main([str(a) for a in argv])


def make_checkpoint(path: Path, size: int = 32, head: str = "mlp", seed: int = 0) -> Path:
    torch.manual_seed(seed)
    cfg = ModelConfig(
        backbone="convnextv2_atto",
        head=head,
        class_names=list(SPACE.in_distribution),
        label_space=SPACE.to_dict(),
        input_size=size,
        drop_path_rate=0.0,
        pretrained=None,
    )
    save_checkpoint(path, build_model(cfg), {"preprocess": Preprocess(image_size=size).to_dict()})
    return path


def predict_args(world: dict[str, Path], csv: Path, out: Path, *extra: object) -> list[object]:
    return [
        "predict", "--checkpoint", world["ckpt"], "--labels", csv, "--images", world["images"], "--out", out,
        "--tta", "none", "--batch-size", 4, "--num-workers", 0, "--no-progress", "--device", "cpu", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A toy data set (64 px), an atto checkpoint (32 px input), val predictions and a test prediction file."""
    root = tmp_path_factory.mktemp("world")
    data = generate_demo_dataset(
        root / "demo", n_train=8, n_val=12, n_test=6, image_size=64, workers=1, progress=lambda d, t: None
    )
    out = {"root": root, "data": data, "images": data / "images", "ckpt": make_checkpoint(root / "m.safetensors")}
    out["val_pred"] = root / "val.parquet"
    assert cxrlt(*predict_args(out, data / "val.csv", out["val_pred"])) == 0
    out["test_pred"] = root / "test_pred.csv"
    assert cxrlt(*predict_args(out, data / "test.csv", out["test_pred"])) == 0
    return out


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` with its size and mtime: compare before and after to prove nothing changed."""
    return {
        os.fspath(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# ------------------------------------------------------------------------------------------------- file-system shims
def _fail_temporaries(monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    """Make every atomic write fail when it creates its temporary, as a read-only or full file system does."""
    import cxrlt_core.atomic as atomic

    def mkstemp(prefix: str = "", suffix: str = "", dir: str | None = None) -> tuple[int, str]:
        raise OSError(code, os.strerror(code), os.path.join(dir or ".", prefix + "XXXXXXXX" + suffix))

    monkeypatch.setattr(atomic.tempfile, "mkstemp", mkstemp)


def read_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Writes fail with EROFS (read-only file system)."""
    _fail_temporaries(monkeypatch, errno.EROFS)


def disk_full(monkeypatch: pytest.MonkeyPatch) -> None:
    """Writes fail with ENOSPC while writing data, not at open: every temporary is a link to ``/dev/full``.

    The kernel's ``/dev/full`` accepts opens and answers every write with ENOSPC, so the real writers (pandas,
    pyarrow, safetensors, json) meet a real full-disk error. ``os.chmod`` is kept off the links (it would follow
    them to the device).
    """
    import cxrlt_core.atomic as atomic

    real_mkstemp, real_chmod = tempfile.mkstemp, os.chmod

    def mkstemp(prefix: str = "", suffix: str = "", dir: str | None = None) -> tuple[int, str]:
        fd, name = real_mkstemp(prefix=prefix, suffix=suffix, dir=dir)
        os.close(fd)
        os.unlink(name)
        os.symlink("/dev/full", name)
        return os.open(name, os.O_WRONLY), name

    def chmod(path: object, mode: int, *args: object, **kwargs: object) -> None:
        if os.path.islink(path):  # type: ignore[arg-type]
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(path))  # type: ignore[arg-type]
        real_chmod(path, mode, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(atomic.tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr(atomic.os, "chmod", chmod)


def leftovers(folder: Path) -> list[Path]:
    """Temporaries (``.*.tmp``) anywhere under ``folder``."""
    return sorted(folder.rglob(".*.tmp"))


def iter_error_lines(err: str) -> Iterator[str]:
    yield from (line for line in err.splitlines() if line.strip())
