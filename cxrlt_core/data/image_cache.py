"""A decoded-and-resized radiograph cache on disk, so that epochs after the first skip decoding.

Layout: ``<root>/<preprocess.key()>/<2 hex>/<32 hex>.npy``, one uint8 (H, W) array per image. The file name hashes
the image's identity (absolute path, size in bytes, modification time in ns), so an edited or replaced file misses;
the folder names the preprocessing, so changing the size or the clipping misses too.

Several DataLoader workers may fill the cache at once: every entry is written to a temporary file and renamed into
place (:func:`cxrlt_core.atomic.atomic_path`), so a reader sees a whole file or none, and an unreadable entry (a crash
on a file system without atomic rename, a disk error) is treated as a miss and rewritten.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from cxrlt_core.atomic import atomic_path, write_json
from cxrlt_core.data.images import Preprocess, load_image
from cxrlt_core.errors import InputError, ValidationError

__all__ = ["CacheStats", "ImageCache"]

ProgressCallback = Callable[[int, int], None]
"""``progress(done, total)``, called after each image (the dashboard drives ``st.progress`` with it)."""


@dataclass(frozen=True)
class CacheStats:
    """Counts of this process's lookups; each DataLoader worker process keeps its own."""

    hits: int
    misses: int
    repaired: int
    """Misses caused by an unreadable or mismatched cache entry, which was rewritten (included in ``misses``)."""

    @property
    def lookups(self) -> int:
        return self.hits + self.misses

    @property
    def hit_rate(self) -> float:
        return self.hits / self.lookups if self.lookups else 0.0


class ImageCache:
    """Cache of :func:`~cxrlt_core.data.images.load_image` results for one :class:`Preprocess`.

    Args:
        root: cache folder (e.g. ``<workspace>/cache/images``); created on first write.
        preprocess: the preprocessing whose outputs are cached (default ``Preprocess()``: 512 x 512, the method's).
    """

    def __init__(self, root: str | os.PathLike[str], preprocess: Preprocess | None = None):
        self.root = Path(root)
        self.preprocess = preprocess or Preprocess()
        self.directory = self.root / self.preprocess.key()
        self._shape = (self.preprocess.height, self.preprocess.width)
        self._hits = self._misses = self._repaired = 0
        self._described = False

    def __repr__(self) -> str:
        return f"ImageCache({str(self.directory)!r})"

    def entry_path(self, path: str | os.PathLike[str]) -> Path:
        """The cache file for ``path`` as it is now (its size and modification time are part of the name).

        Raises:
            InputError: ``path`` does not exist or cannot be examined.
        """
        absolute = os.path.abspath(os.fspath(path))
        try:
            info = os.stat(absolute)
        except FileNotFoundError:
            raise InputError(f"{os.fspath(path)}: image file not found") from None
        except OSError as exc:
            raise InputError(f"{os.fspath(path)}: cannot read image file ({exc.strerror or exc})") from None
        identity = f"{absolute}\0{info.st_size}\0{info.st_mtime_ns}".encode("utf-8", "surrogatepass")
        digest = hashlib.sha256(identity).hexdigest()[:32]
        return self.directory / digest[:2] / f"{digest}.npy"

    def get(self, path: str | os.PathLike[str]) -> np.ndarray:
        """The preprocessed (H, W) uint8 image of ``path``: from the cache, or decoded and stored on a miss.

        Raises:
            InputError: the image file is missing or cannot be decoded (nothing is cached then).
        """
        entry = self.entry_path(path)
        cached, existed = self._read_entry(entry)
        if cached is not None:
            self._hits += 1
            return cached
        self._misses += 1
        self._repaired += int(existed)
        image = load_image(path, self.preprocess)
        self._write_entry(entry, image)
        return image

    def stats(self) -> CacheStats:
        """Hits and misses of this process since the cache object was made."""
        return CacheStats(hits=self._hits, misses=self._misses, repaired=self._repaired)

    def fill(
        self,
        paths: Iterable[str | os.PathLike[str]],
        progress: ProgressCallback | None = None,
        show_progress: bool = True,
    ) -> CacheStats:
        """Decode every image not yet cached (e.g. before the first epoch, or from the dashboard).

        Bad files do not stop the pass: every other image is cached, then one :class:`ValidationError` lists them.

        Args:
            paths: image files.
            progress: ``progress(done, total)`` after each image.
            show_progress: draw a tqdm bar on stderr.
        """
        paths = list(paths)
        problems: list[str] = []
        before = self.stats()
        for done, path in enumerate(tqdm(paths, desc="caching images", unit="img", disable=not show_progress), 1):
            try:
                self.get(path)
            except InputError as exc:
                problems.append(str(exc))
            if progress is not None:
                progress(done, len(paths))
        if problems:
            raise ValidationError(f"{len(problems)} of {len(paths)} images could not be cached", problems)
        after = self.stats()
        return CacheStats(after.hits - before.hits, after.misses - before.misses, after.repaired - before.repaired)

    def _read_entry(self, entry: Path) -> tuple[np.ndarray | None, bool]:
        """(array, True) for a valid entry; (None, existed) when absent, unreadable or of the wrong shape/dtype."""
        try:
            with open(entry, "rb") as handle:
                array = np.load(handle, allow_pickle=False)
        except FileNotFoundError:
            return None, False
        except (OSError, ValueError, EOFError):
            return None, True
        if not isinstance(array, np.ndarray) or array.dtype != np.uint8 or array.shape != self._shape:
            return None, True
        return array, True

    def _write_entry(self, entry: Path, image: np.ndarray) -> None:
        if not self._described:
            # A person browsing the cache can tell what each folder holds.
            description = self.directory / "preprocess.json"
            if not description.exists():
                write_json(description, self.preprocess.to_dict())
            self._described = True
        # Each writer renames its own temporary file into place, so concurrent workers never interleave bytes.
        with atomic_path(entry) as tmp, open(tmp, "wb") as handle:
            np.save(handle, np.ascontiguousarray(image), allow_pickle=False)
