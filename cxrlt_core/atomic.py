"""Atomic file writes: write to a temporary file in the same folder, then rename into place.

A crash or a kill in the middle of a write leaves the old file (or none), never half a file.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    Use it for writers that want a file name (``torch.save``, ``safetensors``, ``df.to_parquet``).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp makes owner-only files; give the result the permissions a plain open() would have.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing; flush, fsync and rename on success."""
    if not any(flag in mode for flag in "wx"):
        raise ValueError(f"atomic_open writes only, got mode {mode!r}")
    with atomic_path(path) as tmp, open(tmp, mode.replace("x", "w"), **kwargs) as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def write_json(path: str | os.PathLike[str], obj: Any, indent: int | None = 2) -> None:
    """Serialise ``obj`` as JSON to ``path`` atomically (NaN and infinities are written as null)."""
    write_text(path, json.dumps(json_safe(obj), indent=indent, allow_nan=False) + "\n")


def json_safe(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float (in nested dicts, lists, tuples) replaced by None: strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {key: json_safe(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(value) for value in obj]
    return obj


def read_json_object(path: str | os.PathLike[str], what: str) -> dict[str, Any]:
    """Read a JSON file that must hold an object; every failure is one ``InputError`` naming the file and ``what``."""
    from cxrlt_core.errors import InputError

    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: {what} file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a readable {what} JSON ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: not a cxrlt {what} file")
    return data
