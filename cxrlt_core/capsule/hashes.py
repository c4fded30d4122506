"""File digests and the software a capsule was made with."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cxrlt_core import __version__
from cxrlt_core.errors import InputError
from cxrlt_core.paths import REPO_ROOT

PACKAGES = ("torch", "torchvision", "timm", "numpy", "pandas", "scikit-learn", "safetensors", "pillow",
            "opencv-python-headless", "pydicom")  # fmt: skip


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes (read in 4 MiB blocks); an OS error is one ``InputError`` naming the file."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return digest.hexdigest()


def image_lines(
    root: Path, relative: list[str], progress: Callable[[int, int], None] | None = None
) -> Iterator[tuple[str, str]]:
    """``(sha256, relative path)`` of each image under ``root``, in order."""
    for i, rel in enumerate(relative):
        yield sha256_file(root / rel), rel
        if progress is not None:
            progress(i + 1, len(relative))


def parse_sha256_lines(text: str, source: str) -> list[tuple[str, str]]:
    """Lines of ``sha256sum`` output (``<64 hex>  <path>``); a malformed line is an error naming its number."""
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        digest, sep, rel = line.partition("  ")
        if not sep or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest) or not rel:
            raise InputError(f"{source}: line {number} is not '<sha256>  <path>'")
        rows.append((digest, rel))
    return rows


def code_revision(root: Path = REPO_ROOT) -> dict[str, Any] | None:
    """The git commit of the source tree and whether it has uncommitted changes; ``None`` without git."""
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=20, check=True).stdout.strip()  # fmt: skip
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=20, check=True).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return {"revision": head, "dirty": bool(status.strip())}


def software() -> dict[str, Any]:
    """cxrlt's version, Python, the main libraries' versions and the code revision (when known)."""
    packages = {}
    for name in PACKAGES:
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return {"cxrlt": __version__, "python": platform.python_version(), "packages": packages, "git": code_revision()}
