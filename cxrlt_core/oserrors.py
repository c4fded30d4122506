"""Operating-system errors in one readable line: ``PATH: what happened`` (no space, read-only, is a folder, ...).

``cxrlt``'s entry point (and the dashboard) turn any :class:`OSError` that reaches them into this line, so a full
disk, a read-only folder or an output path naming a folder never ends in a traceback. Writers annotate an error with
the file they were writing (:func:`cxrlt_core.atomic.atomic_path`), so the line names the target, not a temporary.
"""

from __future__ import annotations

import errno
import os
import re

_WHAT: dict[int, str] = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EISDIR: "is a folder, not a file",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOENT: "no such file or folder",
    errno.EEXIST: "already exists",
    errno.EFBIG: "file too large (the file-size limit was reached)",
    errno.ENAMETOOLONG: "file name too long",
    errno.EMFILE: "too many open files",
    errno.EIO: "input/output error (a failing disk or a lost network share)",
    errno.ENOTEMPTY: "folder not empty",
    errno.EXDEV: "cannot move across file systems",
}

# Rust (safetensors) and torch report OS failures inside other exception types.
_RUST_OS_CODE = re.compile(r"Os \{ code: (\d+)")


def what_happened(exc: OSError) -> str:
    """The short phrase for ``exc``'s errno (``"no space left on the device"``), else its own text."""
    if exc.errno in _WHAT:
        return _WHAT[exc.errno]
    return exc.strerror or " ".join(str(exc).split()) or type(exc).__name__


def describe_os_error(exc: OSError) -> str:
    """``PATH: what happened`` for an :class:`OSError` (``what happened`` alone when it names no file)."""
    what = what_happened(exc)
    if exc.filename is None:
        return what
    name = os.fsdecode(exc.filename) if isinstance(exc.filename, (str, bytes, os.PathLike)) else str(exc.filename)
    if exc.filename2 is not None:
        return f"{name} -> {os.fsdecode(exc.filename2)}: {what}"
    return f"{name}: {what}"


def as_os_error(exc: BaseException, path: str | os.PathLike[str]) -> OSError | None:
    """An :class:`OSError` naming ``path`` for a write failure hidden in another exception type, else ``None``.

    Recognises safetensors' ``Os { code: N, ... }`` and torch's ``PytorchStreamWriter failed writing file`` (whose
    errno is not kept: a full file system, read from ``statvfs``, is reported as ENOSPC, anything else as EIO).
    """
    text = str(exc)
    match = _RUST_OS_CODE.search(text)
    if match:
        code = int(match.group(1))
        return OSError(code, os.strerror(code), os.fspath(path))
    if "failed writing file" in text or "unexpected pos" in text:
        code = errno.ENOSPC if _no_space(os.path.dirname(os.fspath(path)) or ".") else errno.EIO
        return OSError(code, os.strerror(code), os.fspath(path))
    return None


def _no_space(folder: str) -> bool:
    try:
        stats = os.statvfs(folder)
    except OSError:
        return False
    return stats.f_bavail == 0
