"""Embedding caches: hits, invalidation by image bytes / preprocessing, text cache, re-scoring after a prompt edit."""

from __future__ import annotations

import os
import time

import cv2
import numpy as np
import pytest

from cxrlt_core.errors import InputError
from cxrlt_core.zeroshot.cache import EmbeddingCache, EmbeddingStore, content_hash
from cxrlt_core.zeroshot.encode import EncodeStats, encode_images, encode_texts, image_pipeline
from cxrlt_core.zeroshot.loading import load_model, save_local_dir
from cxrlt_core.zeroshot.predict import ZeroShotScorer
from cxrlt_core.zeroshot.prompts import loads_prompt_set

TINY_CFG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    import open_clip
    import torch

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("m") / "tiny"
    save_local_dir(open_clip.CLIP(**TINY_CFG).eval(), folder, TINY_CFG, {"size": 32})
    return load_model(f"local-dir:{folder}", device="cpu")


def _write_images(folder, n, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        image = (rng.random((40, 48)) * 65535).astype(np.uint16)
        cv2.circle(image, (20 + i, 20), 8, 60000, -1)
        path = folder / f"img{i}.png"
        cv2.imwrite(str(path), image)
        os.utime(path, (time.time() - 60, time.time() - 60))  # older than the racy window: memoisable
        paths.append(path)
    return paths


def test_second_run_is_served_from_the_cache(model, tmp_path):
    paths = _write_images(tmp_path / "images", 6)
    cache = EmbeddingCache(tmp_path / "cache")
    stats = EncodeStats()
    calls = []
    first = encode_images(
        model, paths, cache=cache, batch_size=4, num_workers=0, stats=stats, progress=lambda d, t: calls.append((d, t))
    )
    assert (stats.encoded, stats.cached) == (6, 0)
    assert calls[-1] == (6, 6)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-5)
    # Chunks were streamed: batches of 4 with chunk_rows 4 -> two chunks.
    again = EmbeddingCache(tmp_path / "cache")  # a fresh process's view of the same folder
    stats = EncodeStats()
    second = encode_images(model, paths, cache=again, num_workers=0, stats=stats)
    assert (stats.encoded, stats.cached) == (0, 6)
    np.testing.assert_array_equal(first, second)
    # Without a cache the same embeddings come out.
    np.testing.assert_allclose(encode_images(model, paths, num_workers=0), first, atol=1e-6)


def test_changed_bytes_reencode_only_that_image(model, tmp_path):
    paths = _write_images(tmp_path / "images", 5)
    cache = EmbeddingCache(tmp_path / "cache")
    before = encode_images(model, paths, cache=cache, num_workers=0)
    image = cv2.imread(str(paths[2]), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(paths[2]), 65535 - image)
    stats = EncodeStats()
    after = encode_images(model, paths, cache=EmbeddingCache(tmp_path / "cache"), num_workers=0, stats=stats)
    assert (stats.encoded, stats.cached) == (1, 4)
    np.testing.assert_array_equal(np.delete(after, 2, 0), np.delete(before, 2, 0))
    assert not np.allclose(after[2], before[2])


def test_changed_preprocessing_reencodes_everything(model, tmp_path):
    paths = _write_images(tmp_path / "images", 3)
    cache = EmbeddingCache(tmp_path / "cache")
    encode_images(model, paths, cache=cache, num_workers=0)
    for pipeline in (image_pipeline(model, "paper"), image_pipeline(model, intensity="full_range")):
        stats = EncodeStats()
        encode_images(model, paths, pipeline=pipeline, cache=cache, num_workers=0, stats=stats)
        assert stats.encoded == 3
    assert len(list((tmp_path / "cache" / "image_embeddings" / model.model_id).iterdir())) == 3


def test_identical_files_are_encoded_once(model, tmp_path):
    paths = _write_images(tmp_path / "images", 2)
    copy = tmp_path / "images" / "copy.png"
    copy.write_bytes(paths[0].read_bytes())
    stats = EncodeStats()
    out = encode_images(model, [*paths, copy], cache=EmbeddingCache(tmp_path / "c"), num_workers=0, stats=stats)
    assert stats.encoded == 2
    np.testing.assert_array_equal(out[0], out[2])


def test_workers_give_the_same_embeddings(model, tmp_path):
    paths = _write_images(tmp_path / "images", 5)
    np.testing.assert_allclose(
        encode_images(model, paths, num_workers=2, batch_size=2), encode_images(model, paths, num_workers=0), atol=1e-6
    )


def test_bad_image_names_the_file_and_keeps_earlier_batches(model, tmp_path):
    paths = _write_images(tmp_path / "images", 4)
    bad = tmp_path / "images" / "broken.png"
    bad.write_bytes(paths[0].read_bytes()[:100])
    cache = EmbeddingCache(tmp_path / "cache")
    with pytest.raises(InputError, match=r"broken.png: truncated PNG"):
        encode_images(model, [*paths, bad], cache=cache, batch_size=4, num_workers=0)
    stats = EncodeStats()
    encode_images(model, paths, cache=EmbeddingCache(tmp_path / "cache"), num_workers=0, stats=stats)
    assert stats.cached == 4  # the batch before the bad file was saved
    with pytest.raises(InputError, match="absent.png"):
        encode_images(model, [tmp_path / "absent.png"], cache=cache, num_workers=0)


def test_recently_modified_files_are_hashed_again(tmp_path):
    path = tmp_path / "new.png"
    path.write_bytes(b"abc")
    cache = EmbeddingCache(tmp_path / "cache")
    assert cache.file_hashes.hashes([path]) == [content_hash(path)]
    assert cache.file_hashes._memo == {}  # too fresh to trust size + mtime
    os.utime(path, (time.time() - 60, time.time() - 60))
    cache.file_hashes.hashes([path])
    assert len(cache.file_hashes._memo) == 1


def test_text_cache_encodes_only_new_prompts(model, tmp_path):
    cache = EmbeddingCache(tmp_path)
    calls = []
    original = model.encode_text

    def counting(texts, **kwargs):
        calls.append(list(texts))
        return original(texts, **kwargs)

    model.encode_text = counting
    try:
        first = encode_texts(model, ["a", "b", "a"], cache)
        assert calls == [["a", "b"]]
        np.testing.assert_array_equal(first[0], first[2])
        second = encode_texts(model, ["b", "c"], EmbeddingCache(tmp_path))
        assert calls[-1] == ["c"]
        np.testing.assert_array_equal(second[0], first[1])
    finally:
        model.encode_text = original


def test_rescoring_after_a_prompt_edit_encodes_one_prompt(model, tmp_path):
    paths = _write_images(tmp_path / "images", 4)
    cache = EmbeddingCache(tmp_path / "cache")
    scorer = ZeroShotScorer.from_paths(model, paths, cache=cache, num_workers=0)
    text = "classes:\n  Bulla: [a chest x-ray showing bulla, a large bulla]\n  Goiter: [a chest x-ray showing goiter]\n"
    before = scorer.score(loads_prompt_set(text))
    store = cache.text_store(model.model_id)
    assert len(store) == 3
    after = scorer.score(loads_prompt_set(text.replace("a large bulla", "a giant bulla")))
    assert len(cache.text_store(model.model_id)) == 4
    np.testing.assert_array_equal(after[:, 1], before[:, 1])  # Goiter untouched
    assert not np.allclose(after[:, 0], before[:, 0])
    assert before.shape == (4, 2) and np.all((before > 0) & (before < 1))
    # pos_neg_softmax pulls in the default negatives ("no bulla", "no goiter").
    scorer.score(loads_prompt_set(text), scoring="pos_neg_softmax")
    assert {"no bulla", "no goiter"} <= set(cache.text_store(model.model_id).keys())


def test_store_compaction_keeps_every_row(tmp_path):
    store = EmbeddingStore(tmp_path)
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(40, 8)).astype(np.float32)
    for i in range(40):
        store.add([f"k{i}"], rows[i : i + 1])
    assert store.chunk_count() == 40
    assert store.compact(min_chunks=32)
    assert store.chunk_count() == 1 and len(list(tmp_path.glob("*.npy"))) == 1
    found, got = EmbeddingStore(tmp_path).lookup([f"k{i}" for i in range(40)] + ["missing"])
    assert found.tolist() == [True] * 40 + [False]
    np.testing.assert_array_equal(got[:40], rows)
    # A reader holding the old index recovers after the compaction removed its chunks.
    stale = EmbeddingStore(tmp_path)
    stale._index = {"k0": ("gone", 0)}
    stale._seen = {"gone"}
    found, got = stale.lookup(["k0"])
    assert found.all() and np.array_equal(got[0], rows[0])


def test_score_image_matches_the_file_path(model, tmp_path):
    from cxrlt_core.data.images import read_radiograph
    from cxrlt_core.zeroshot.predict import score_image

    paths = _write_images(tmp_path / "images", 2)
    prompt_set = loads_prompt_set("classes:\n  Bulla: [a large bulla]\n  Goiter: [goiter]\n")
    batch = ZeroShotScorer.from_paths(model, paths, num_workers=0).score(prompt_set)
    single = score_image(model, read_radiograph(paths[1]), prompt_set)
    assert single.shape == (2,)
    np.testing.assert_allclose(single, batch[1], atol=1e-6)
