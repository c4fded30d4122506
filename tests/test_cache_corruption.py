"""Corrupt embedding-cache chunks (truncated, object dtype, wrong shape) are detected, named, removed and rebuilt."""

from __future__ import annotations

import numpy as np
import pytest

from cxrlt_core.zeroshot.cache import EmbeddingCache, EmbeddingStore
from cxrlt_core.zeroshot.encode import EncodeStats, encode_images
from tests.test_zeroshot_cache import _write_images, model  # noqa: F401


def _store_with_two_chunks(folder) -> tuple[EmbeddingStore, list[str]]:
    store = EmbeddingStore(folder)
    store.add(["a", "b"], np.arange(6, dtype=np.float32).reshape(2, 3))
    store.add(["c"], np.full((1, 3), 7, dtype=np.float32))
    return store, sorted(p.stem for p in folder.glob("*.npy"))


def _corrupt_truncated(path) -> None:
    path.write_bytes(path.read_bytes()[:-5])


def _corrupt_object_dtype(path) -> None:
    np.save(path, np.array([{"evil": 1}, None], dtype=object), allow_pickle=True)


def _corrupt_wrong_rows(path) -> None:
    np.save(path, np.zeros((5, 3), dtype=np.float32))


def _corrupt_float64(path) -> None:
    np.save(path, np.zeros((2, 3), dtype=np.float64))


@pytest.mark.parametrize(
    "corrupt, words",
    [
        (_corrupt_truncated, "corrupt embedding-cache chunk"),
        (_corrupt_object_dtype, "Python objects in dtype"),
        (_corrupt_wrong_rows, "holds 5 rows for 2 keys"),
        (_corrupt_float64, "holds float64"),
    ],
)
def test_corrupt_chunk_is_named_dropped_and_the_rest_kept(tmp_path, corrupt, words):
    folder = tmp_path / "store"
    _, stems = _store_with_two_chunks(folder)
    bad = folder / f"{stems[0]}.npy"  # the chunk holding a and b
    corrupt(bad)
    with pytest.warns(UserWarning, match=words) as caught:
        fresh = EmbeddingStore(folder)
    assert str(bad) in str(caught[0].message)
    assert sorted(fresh.keys()) == ["c"] and not bad.exists() and not bad.with_suffix(".json").exists()
    found, rows = fresh.lookup(["a", "c"])
    assert found.tolist() == [False, True] and rows[1].tolist() == [7, 7, 7]
    # rebuilt: the missing rows are added again and read back from a third view of the folder
    fresh.add(["a", "b"], np.arange(6, dtype=np.float32).reshape(2, 3))
    found, rows = EmbeddingStore(folder).lookup(["a", "b"])
    assert found.all() and rows.tolist() == [[0, 1, 2], [3, 4, 5]]


def test_encode_images_rebuilds_a_truncated_chunk(model, tmp_path):  # noqa: F811
    paths = _write_images(tmp_path / "images", 5)
    first = encode_images(model, paths, cache=EmbeddingCache(tmp_path / "cache"), batch_size=4, num_workers=0)
    chunks = sorted((tmp_path / "cache" / "image_embeddings").rglob("*.npy"))
    lost = np.load(chunks[0]).shape[0]
    _corrupt_truncated(chunks[0])
    stats = EncodeStats()
    with pytest.warns(UserWarning, match="corrupt embedding-cache chunk"):
        again = encode_images(model, paths, cache=EmbeddingCache(tmp_path / "cache"), num_workers=0, stats=stats)
    assert lost > 0 and stats.encoded == lost and stats.cached == 5 - lost  # only the lost chunk's rows again
    np.testing.assert_allclose(again, first, atol=1e-6)
    stats = EncodeStats()
    encode_images(model, paths, cache=EmbeddingCache(tmp_path / "cache"), num_workers=0, stats=stats)
    assert (stats.encoded, stats.cached) == (0, 5)
