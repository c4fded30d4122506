"""Checkpoint integrity: the weights carry a digest of the sidecar's content and the sidecar one of the weights, so a
sidecar with two class names swapped (which would silently relabel two columns) or changed weights are refused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from safetensors import safe_open

from cxrlt_core.errors import InputError
from cxrlt_core.models.checkpoint import load_checkpoint, sidecar_digest
from tests.hostile_world import make_checkpoint


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ck") / "best.safetensors", size=32)


def test_digests_are_stored_and_recomputable_by_hand(saved: Path):
    side = json.loads(saved.with_suffix(".json").read_text())
    body = {k: v for k, v in side.items() if k != "integrity"}
    by_hand = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    with safe_open(str(saved), framework="pt") as handle:
        assert handle.metadata()["sidecar_sha256"] == by_hand == side["integrity"]["sidecar_sha256"]
    assert side["integrity"]["weights_sha256"] == hashlib.sha256(saved.read_bytes()).hexdigest()
    assert sidecar_digest(side) == by_hand
    model, info = load_checkpoint(saved)
    assert info["checkpoint_id"] == side["checkpoint_id"]


def _copy(saved: Path, folder: Path) -> Path:
    folder.mkdir()
    target = folder / saved.name
    target.write_bytes(saved.read_bytes())
    target.with_suffix(".json").write_text(saved.with_suffix(".json").read_text())
    return target


def test_swapped_class_names_are_detected(saved: Path, tmp_path: Path):
    path = _copy(saved, tmp_path / "c")
    side = json.loads(path.with_suffix(".json").read_text())
    names = side["input"]["class_names"]
    names[0], names[1] = names[1], names[0]
    path.with_suffix(".json").write_text(json.dumps(side, indent=2))
    with pytest.raises(InputError, match=r"best\.json was changed after it was saved"):
        load_checkpoint(path)
    # the digest cannot be dropped to get round it: the weights still carry theirs
    del side["integrity"]
    path.with_suffix(".json").write_text(json.dumps(side))
    with pytest.raises(InputError, match="was changed after it was saved"):
        load_checkpoint(path)


def test_reformatting_the_sidecar_is_not_a_change(saved: Path, tmp_path: Path):
    path = _copy(saved, tmp_path / "f")
    side = json.loads(path.with_suffix(".json").read_text())
    path.with_suffix(".json").write_text(json.dumps(side, indent=7, sort_keys=True))
    load_checkpoint(path)


def test_changed_weights_are_detected(saved: Path, tmp_path: Path):
    path = _copy(saved, tmp_path / "w")
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # one byte of the last tensor
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"best\.safetensors were changed after they were saved"):
        load_checkpoint(path)
