"""Atomic file writes: write to a temporary file in the same folder, then rename into place.

A crash or a kill in the middle of a write leaves the old file (or none), never half a file.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from cxrlt_core.errors import InputError
from cxrlt_core.oserrors import as_os_error


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    Use it for writers that want a file name (``torch.save``, ``safetensors``, ``df.to_parquet``). The temporary
    (``.<name>.<pid>-<random>.tmp``) is removed on any failure; temporaries of the same target left by writers that
    were killed (their pid is gone) are removed first. An ``OSError`` of the write (no space, read-only, ``path`` a
    folder) is raised naming ``path``, not the temporary.
    """
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder", os.fspath(target))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(target)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}-", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise _naming(exc, target, None) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp makes owner-only files; give the result the permissions a plain open() would have.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _naming(exc, target, tmp) from exc

        hidden = as_os_error(exc, target) if isinstance(exc, Exception) else None
        if hidden is not None:
            raise hidden from exc
        raise


def _naming(exc: OSError, target: Path, tmp: Path | None) -> OSError:
    """``exc`` re-made to name ``target`` when it names nothing or only the temporary; other errors unchanged."""
    names = {None, os.fspath(target), os.fspath(target.parent)} | ({os.fspath(tmp)} if tmp else set())
    if exc.filename is not None and os.fsdecode(exc.filename) not in names and not str(exc.filename).endswith(".tmp"):
        return exc
    return type(exc)(exc.errno, exc.strerror, os.fspath(target)) if exc.errno else exc


_TEMP_WITH_PID = re.compile(r"(\d+)-[A-Za-z0-9_]{8}\.tmp")
_TEMP_OLD = re.compile(r"[A-Za-z0-9_]{8}\.tmp")
OLD_TEMP_AGE_S = 3600.0


def target_of(path: str | os.PathLike[str]) -> Path:
    """The file a temporary of :func:`atomic_path` will become (``.x.csv.<pid>-<random>.tmp`` -> ``x.csv``); any
    other path unchanged. For messages written while the temporary is open."""
    path = Path(path)
    match = re.fullmatch(r"\.(.+)\.\d+-[A-Za-z0-9_]{8}\.tmp", path.name)
    return path.with_name(match.group(1)) if match else path


def remove_stale_temporaries(target: str | os.PathLike[str]) -> list[Path]:
    """Remove temporaries of ``target`` left by killed writers; return those removed.

    A temporary ``.<name>.<pid>-<random>.tmp`` is stale when no process ``pid`` runs on this machine; one without a
    pid (an older naming) when it is older than an hour.
    """
    target = Path(target)
    prefix = f".{target.name}."
    removed = []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(prefix) or not entry.name.endswith(".tmp"):
            continue
        rest = entry.name[len(prefix) :]
        stale = False
        with_pid = _TEMP_WITH_PID.fullmatch(rest)
        if with_pid:
            stale = not _pid_alive(int(with_pid.group(1)))
        elif _TEMP_OLD.fullmatch(rest):
            with contextlib.suppress(OSError):
                stale = time.time() - entry.stat(follow_symlinks=False).st_mtime > OLD_TEMP_AGE_S
        else:
            continue
        if stale:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


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
    """``obj`` as strict JSON values: the one sanitiser of everything cxrlt writes as JSON.

    Objects with ``to_dict()`` (a label space, a preprocessing) become dicts, numpy scalars and arrays Python numbers
    and lists (anything with ``tolist()``), paths text, mapping keys text, tuples lists, and every NaN or infinite
    float ``None``. Other types are left for ``json.dumps`` to refuse.
    """
    if hasattr(obj, "to_dict") and callable(obj.to_dict):
        obj = obj.to_dict()
    elif hasattr(obj, "tolist") and callable(obj.tolist):
        obj = obj.tolist()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, Mapping):
        return {str(key): json_safe(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(value) for value in obj]
    return obj


def read_json_object(path: str | os.PathLike[str], what: str) -> dict[str, Any]:
    """Read a JSON file that must hold an object; every failure is one ``InputError`` naming the file and ``what``."""
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
