"""On-disk embedding caches: image embeddings per (model, preprocessing, image content) and text embeddings per
(model, prompt text), so that a prompt edit re-scores a data set with one text encode and one matrix product.

Layout under a cache folder (a workspace's ``cache/``)::

    image_embeddings/<model_id>/<pipeline_key>/<chunk>.npy + <chunk>.json   rows + their keys (content hashes)
    text_embeddings/<model_id>/<chunk>.npy + <chunk>.json                    rows + their keys (prompt texts)
    file_hashes/<part>.json                                                  (path, size, mtime) -> content hash

A chunk is written atomically, rows first, keys last: a chunk whose keys file exists is complete. Writers never
modify a chunk, so several processes can share a cache; many small chunks are merged by :meth:`compact`.
Image keys are blake2b hashes of the file bytes, so a changed file (or a copy elsewhere) is recognised by content;
the model id includes a fingerprint of its weights and the pipeline key every preprocessing setting.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cxrlt_core.atomic import atomic_open, write_json
from cxrlt_core.workspace import check_name

__all__ = ["EmbeddingCache", "EmbeddingStore", "FileHashes", "content_hash"]

HASH_BLOCK = 1 << 20
RACY_SECONDS = 2.0
"""Files modified this recently are hashed again next time rather than memoised (git's "racy clean" rule: a
write within the file system's timestamp granularity could leave size and mtime unchanged)."""


def content_hash(path: str | os.PathLike[str]) -> str:
    """blake2b-128 of a file's bytes, as 32 hex digits."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        while block := handle.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _chunk_name() -> str:
    # Time first so that a listing sorts oldest first; pid + random so that concurrent writers never collide.
    return f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(3)}"


class EmbeddingStore:
    """Float32 row vectors keyed by strings, stored as immutable chunks in one folder.

    Args:
        folder: the store's folder (created on first write).
        meta: a description written once to ``meta.json`` (model spec, preprocessing), for people.
    """

    def __init__(self, folder: str | os.PathLike[str], meta: dict[str, Any] | None = None):
        self.folder = Path(folder)
        self.meta = meta
        self._index: dict[str, tuple[str, int]] = {}
        self._chunks: dict[str, np.ndarray] = {}
        self._seen: set[str] = set()
        self.dim: int | None = None
        self.refresh()

    # -- reading -----------------------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Index chunks written since the last look (by this or another process)."""
        if not self.folder.is_dir():
            return
        for keys_file in sorted(self.folder.glob("*.json")):
            stem = keys_file.stem
            if stem == "meta" or stem in self._seen:
                continue
            try:
                keys = json.loads(keys_file.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # removed by a compaction, or not ours
            if not isinstance(keys, list):
                continue
            problem = self._check_chunk(stem, len(keys))
            if problem:
                self._drop_chunk(stem, problem)
                continue
            self._seen.add(stem)
            for row, key in enumerate(keys):
                self._index[str(key)] = (stem, row)

    def _check_chunk(self, stem: str, rows: int) -> str | None:
        """What is wrong with chunk ``stem`` (truncated, object dtype, wrong shape), or ``None`` if it is sound."""
        path = self.folder / f"{stem}.npy"
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except FileNotFoundError:
            return "its rows file is missing" if (self.folder / f"{stem}.json").exists() else None
        except (OSError, ValueError, EOFError) as exc:  # truncated, not .npy, object dtype (needs pickle)
            return " ".join(str(exc).split()) or type(exc).__name__
        if array.dtype != np.float32 or array.ndim != 2:
            return f"holds {array.dtype} of shape {array.shape}, expected float32 rows"
        if array.shape[0] != rows:
            return f"holds {array.shape[0]} rows for {rows} keys"
        if self.dim is not None and array.shape[1] != self.dim:
            return f"rows have width {array.shape[1]}, the store's is {self.dim}"
        self._chunks[stem] = array
        self.dim = int(array.shape[1])
        return None

    def _drop_chunk(self, stem: str, problem: str) -> None:
        """Remove a corrupt chunk, naming it in a warning; its rows are computed again on the next miss."""
        path = self.folder / f"{stem}.npy"
        message = f"{path}: corrupt embedding-cache chunk ({problem}); removed, its rows will be computed again"
        warnings.warn(message, stacklevel=3)
        for suffix in (".json", ".npy"):
            (self.folder / f"{stem}{suffix}").unlink(missing_ok=True)

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def keys(self) -> list[str]:
        return list(self._index)

    def _chunk(self, stem: str) -> np.ndarray:
        if stem not in self._chunks:
            array = np.load(self.folder / f"{stem}.npy", mmap_mode="r", allow_pickle=False)
            self._chunks[stem] = array
            self.dim = int(array.shape[1])
        return self._chunks[stem]

    def lookup(self, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Rows for ``keys``: ``(found mask (N,), rows (N, D) with zeros where not found)``.

        Rows are gathered chunk by chunk (one fancy-index read per chunk). ``D`` is 0 when nothing is stored yet.
        """
        for attempt in range(2):
            try:
                return self._lookup(keys)
            except FileNotFoundError:
                if attempt:
                    raise
                # A compaction elsewhere replaced chunks we had indexed: forget them and index again.
                self._index.clear()
                self._chunks.clear()
                self._seen.clear()
                self.refresh()
        raise AssertionError("unreachable")

    def _lookup(self, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        located = [self._index.get(k) for k in keys]
        found = np.array([loc is not None for loc in located], dtype=bool)
        by_chunk: dict[str, tuple[list[int], list[int]]] = {}
        for position, loc in enumerate(located):
            if loc is not None:
                targets, rows = by_chunk.setdefault(loc[0], ([], []))
                targets.append(position)
                rows.append(loc[1])
        if not by_chunk:
            return found, np.zeros((len(keys), self.dim or 0), dtype=np.float32)
        arrays = {stem: self._chunk(stem) for stem in by_chunk}
        out = np.zeros((len(keys), self.dim or 0), dtype=np.float32)
        for stem, (targets, rows) in by_chunk.items():
            out[targets] = arrays[stem][rows]
        return found, out

    # -- writing -----------------------------------------------------------------------------------------------
    def add(self, keys: Sequence[str], rows: np.ndarray) -> None:
        """Store ``rows`` (N, D) under ``keys`` as one new chunk (atomic: rows file first, keys file last)."""
        rows = np.ascontiguousarray(rows, dtype=np.float32)
        keys = [str(k) for k in keys]
        if rows.ndim != 2 or rows.shape[0] != len(keys):
            raise ValueError(f"expected ({len(keys)}, D) rows, got shape {rows.shape}")
        if not keys:
            return
        if self.dim is not None and rows.shape[1] != self.dim:
            raise ValueError(f"store {self.folder} holds width {self.dim}, got rows of width {rows.shape[1]}")
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.meta is not None and not (self.folder / "meta.json").exists():
            write_json(self.folder / "meta.json", self.meta)
        stem = _chunk_name()
        with atomic_open(self.folder / f"{stem}.npy", "wb") as handle:
            np.save(handle, rows)
        write_json(self.folder / f"{stem}.json", keys, indent=None)
        self._seen.add(stem)
        self._chunks[stem] = rows
        self.dim = int(rows.shape[1])
        for row, key in enumerate(keys):
            self._index[key] = (stem, row)

    def chunk_count(self) -> int:
        return len(self._seen)

    def compact(self, min_chunks: int = 32) -> bool:
        """Merge every chunk into one when there are at least ``min_chunks``; returns whether it did."""
        self.refresh()
        if len(self._seen) < min_chunks:
            return False
        old = sorted(self._seen)
        keys = list(self._index)
        _, rows = self.lookup(keys)
        self.add(keys, rows)
        new = max(self._seen)
        for stem in old:
            if stem == new:
                continue
            (self.folder / f"{stem}.json").unlink(missing_ok=True)
            (self.folder / f"{stem}.npy").unlink(missing_ok=True)
            self._seen.discard(stem)
            self._chunks.pop(stem, None)
        return True


class FileHashes:
    """Memo of file content hashes by (absolute path, size, mtime), so a warm cache needs a ``stat`` per image,
    not a read. Entries for files modified in the last :data:`RACY_SECONDS` are not memoised."""

    def __init__(self, folder: str | os.PathLike[str]):
        self.folder = Path(folder)
        self._memo: dict[str, str] = {}
        self._seen: set[str] = set()
        self.refresh()

    def refresh(self) -> None:
        if not self.folder.is_dir():
            return
        for part in sorted(self.folder.glob("*.json")):
            if part.stem in self._seen:
                continue
            try:
                data = json.loads(part.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(data, dict):
                self._seen.add(part.stem)
                self._memo.update(data)

    @staticmethod
    def _key(path: Path, stat: os.stat_result) -> str:
        return f"{path}\t{stat.st_size}\t{stat.st_mtime_ns}"

    def hashes(
        self, paths: Sequence[str | os.PathLike[str]], progress: Callable[[int, int], None] | None = None
    ) -> list[str]:
        """Content hash of every file (memoised); new memo entries are saved as one part file at the end.

        Raises:
            FileNotFoundError / OSError: a file cannot be read (the caller words the error).
        """
        out: list[str] = []
        fresh: dict[str, str] = {}
        now = time.time_ns()
        total = len(paths)
        for done, raw in enumerate(paths, start=1):
            path = Path(raw).absolute()
            stat = path.stat()
            key = self._key(path, stat)
            digest = self._memo.get(key)
            if digest is None:
                digest = content_hash(path)
                if now - stat.st_mtime_ns > RACY_SECONDS * 1e9:
                    fresh[key] = digest
            out.append(digest)
            if progress is not None and (done % 1024 == 0 or done == total):
                progress(done, total)
        if fresh:
            self._memo.update(fresh)
            stem = _chunk_name()
            write_json(self.folder / f"{stem}.json", fresh, indent=None)
            self._seen.add(stem)
            self._compact()
        return out

    def _compact(self, max_parts: int = 64) -> None:
        if len(self._seen) < max_parts:
            return
        old = sorted(self._seen)
        stem = _chunk_name()
        write_json(self.folder / f"{stem}.json", self._memo, indent=None)
        for part in old:
            (self.folder / f"{part}.json").unlink(missing_ok=True)
        self._seen = {stem}


class EmbeddingCache:
    """The embedding caches of one workspace (``<workspace>/cache``)."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        self._stores: dict[tuple[str, ...], EmbeddingStore] = {}
        self._hashes: FileHashes | None = None

    @property
    def file_hashes(self) -> FileHashes:
        if self._hashes is None:
            self._hashes = FileHashes(self.root / "file_hashes")
        return self._hashes

    def image_store(self, model_id: str, pipeline_key: str, meta: dict[str, Any] | None = None) -> EmbeddingStore:
        """The store of image embeddings for one model and one preprocessing pipeline."""
        key = ("image", check_name(model_id, "model id"), check_name(pipeline_key, "preprocess key"))
        if key not in self._stores:
            self._stores[key] = EmbeddingStore(self.root / "image_embeddings" / key[1] / key[2], meta)
        else:
            self._stores[key].refresh()
        return self._stores[key]

    def text_store(self, model_id: str, meta: dict[str, Any] | None = None) -> EmbeddingStore:
        """The store of prompt embeddings for one model (keyed by the exact prompt text)."""
        key = ("text", check_name(model_id, "model id"))
        if key not in self._stores:
            self._stores[key] = EmbeddingStore(self.root / "text_embeddings" / key[1], meta)
        else:
            self._stores[key].refresh()
        return self._stores[key]
