"""The typed input contract: stored once in the sidecar, attached to the loaded model, older sidecars read, no
silent defaults; rounding of the uint8 step by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cxrlt_core.data.images import Preprocess, to_uint8
from cxrlt_core.errors import InputError
from cxrlt_core.explain import prepare_radiograph
from cxrlt_core.models import ModelConfig, build_model, load_checkpoint, read_sidecar, save_checkpoint
from cxrlt_core.models.contract import InputContract, attach_contract, contract_of

CLASSES = ["Normal", "a", "b"]


def _model(head: str = "csra") -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(ModelConfig(backbone="convnextv2_atto", head=head, class_names=CLASSES, input_size=64))


def _as_written_before_digests(path) -> dict:
    """Re-save a checkpoint's weights without the sidecar digest and return its sidecar without ``integrity``, as
    a cxrlt from before checkpoint digests wrote them (so that the tests may edit the sidecar)."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(path), framework="pt") as handle:
        metadata = dict(handle.metadata() or {})
    metadata.pop("sidecar_sha256", None)
    save_file(load_file(str(path)), str(path), metadata=metadata)
    info = json.loads(path.with_suffix(".json").read_text())
    info.pop("integrity", None)
    return info


def test_truncate_and_rint_rounding_by_hand():
    image = np.array([[0, 100], [200, 1000]], dtype=np.uint16)
    # low/high 0/100 percentiles: lo = 0, hi = 1000; v / 1000 * 255 = 0, 25.5, 51, 255
    assert to_uint8(image, 0, 100, rounding="truncate").tolist() == [[0, 25], [51, 255]]
    assert to_uint8(image, 0, 100, rounding="rint").tolist() == [[0, 26], [51, 255]]  # rint(25.5) = 26 (to even)
    # a constant image: the winning code's fallback floor(x / max * 255) under truncate, zeros under rint
    flat = np.full((2, 2), 7, dtype=np.uint16)
    assert to_uint8(flat, rounding="truncate").tolist() == [[255, 255], [255, 255]]
    assert not to_uint8(flat, rounding="rint").any()
    with pytest.raises(InputError, match="unknown rounding"):
        Preprocess(rounding="floor")


def test_cache_key_of_the_default_rounding_is_unchanged_and_truncate_differs():
    assert Preprocess(64).key() != Preprocess(64, rounding="truncate").key()
    assert Preprocess(64).key() == Preprocess(64, rounding="rint").key()


def test_contract_is_attached_stored_once_and_read_back(tmp_path):
    model = _model()
    pre = Preprocess(64, interpolation="linear", rounding="truncate")
    contract = InputContract(pre, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), 3, tuple(CLASSES), None, "winning_code")
    attach_contract(model, contract)
    path = tmp_path / "best.safetensors"
    save_checkpoint(path, model)
    stored = json.loads(path.with_suffix(".json").read_text())
    assert stored["input"]["rounding"] == "truncate" and stored["input"]["tta_geometry"] == "winning_code"
    assert "preprocess" not in stored and "normalize" not in stored and "mean" not in stored["model"]
    loaded, info = load_checkpoint(path)
    assert contract_of(loaded) == contract
    assert info["model"]["mean"] == [0.5, 0.5, 0.5]  # in memory the model section is complete
    assert ModelConfig.from_dict(info["model"]).mean == (0.5, 0.5, 0.5)


def test_older_sidecar_layout_reads_into_the_same_contract(tmp_path):
    model = _model("mlp")
    path = tmp_path / "old.safetensors"
    save_checkpoint(path, model)
    side = path.with_suffix(".json")
    info = _as_written_before_digests(path)
    cfg = model.cfg.to_dict()
    del cfg["pooling"], cfg["head_init"]  # fields an older cxrlt did not write
    old = {k: v for k, v in info.items() if k != "input"}
    old.update(
        format_version=1,
        model=cfg,
        preprocess=Preprocess(64, clip_low=1.0).to_dict() | {"rounding": "rint"},
        normalize={"mean": list(cfg["mean"]), "std": list(cfg["std"]), "in_chans": 3},
    )
    del old["preprocess"]["rounding"]  # older Preprocess dicts lacked the field
    side.write_text(json.dumps(old))
    loaded, info = load_checkpoint(path)
    contract = contract_of(loaded)
    assert contract.preprocess == Preprocess(64, clip_low=1.0) and contract.class_names == tuple(CLASSES)
    assert contract.tta_geometry == "cxrlt" and info["input"] == contract.to_dict()
    # an older MLP checkpoint averaged the per-position-normed map: it keeps doing so
    assert loaded.cfg.pooling == "feature_map"


def test_no_silent_imagenet_fallback(tmp_path):
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, _model())
    side = path.with_suffix(".json")
    info = _as_written_before_digests(path)
    del info["input"]["mean"]
    side.write_text(json.dumps(info))
    with pytest.raises(InputError, match="no mean"):
        read_sidecar(path)
    legacy = {"model": {"input_size": 64, "class_names": CLASSES}}
    with pytest.raises(InputError, match="mean and std"):
        InputContract.from_sidecar(legacy, "x.json")
    with pytest.raises(InputError, match="carries no input contract"):
        contract_of(torch.nn.Linear(2, 2))


def test_inspect_preprocessing_follows_the_contract(tmp_path):
    image = (np.arange(80 * 80, dtype=np.uint16).reshape(80, 80) * 9).astype(np.uint16)
    for rounding in ("rint", "truncate"):
        model = _model()
        attach_contract(
            model,
            InputContract(Preprocess(64, rounding=rounding), (0.5,) * 3, (0.25,) * 3, 3, tuple(CLASSES)),
        )
        save_checkpoint(tmp_path / f"{rounding}.safetensors", model)
    grays = {}
    for rounding in ("rint", "truncate"):
        info = read_sidecar(tmp_path / f"{rounding}.safetensors")
        gray, tensor = prepare_radiograph(image, info)
        assert tensor.shape == (1, 3, 64, 64)
        torch.testing.assert_close(tensor[0, 0], (torch.from_numpy(gray).float() / 255 - 0.5) / 0.25)
        grays[rounding] = gray.astype(int)
    diff = grays["rint"] - grays["truncate"]
    assert diff.min() >= 0 and diff.max() <= 1 and diff.any()
