"""Checkpoints: safetensors + sidecar round trip, rebuilding without a config, head transfer, training state."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from cxrlt_core import __version__
from cxrlt_core.data.images import Preprocess
from cxrlt_core.errors import InputError
from cxrlt_core.models import (
    HEADS,
    ModelConfig,
    build_model,
    capture_rng_state,
    load_checkpoint,
    load_training_state,
    read_sidecar,
    restore_rng_state,
    save_checkpoint,
    save_training_state,
    training_state_path,
)

SIZE = 64
CLASSES = ["Normal", "cardiomegaly", "Nodule", "Hernia"]
HEAD_PARAMS = {
    "mlp": {"hidden": 16},
    "csra": {},
    "csra_mh": {"num_heads": 4},
    "linear": {},
    "ml_decoder": {"embed_dim": 16, "num_heads": 2, "ffn_dim": 32, "pos_encoding": True},
}


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """Tiny models run faster on one intra-op thread; two threads spin against each other on a busy 2-core box."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _model(head: str = "csra", classes=CLASSES, seed: int = 0):
    torch.manual_seed(seed)
    cfg = ModelConfig(
        backbone="convnextv2_atto",
        head=head,
        head_params=HEAD_PARAMS[head],
        class_names=list(classes),
        label_space={"name": "demo", "classes": list(classes)},
        input_size=SIZE,
    )
    model = build_model(cfg)
    # Train-mode passes give the norm layers non-default running statistics, so the round trip must carry them.
    with torch.no_grad():
        model(torch.randn(4, 3, SIZE, SIZE))
    return model.eval()


@pytest.mark.parametrize("head", HEADS.names())
def test_round_trip_rebuilds_the_model_from_the_sidecar_alone(tmp_path, head):
    model = _model(head)
    path = tmp_path / "checkpoints" / "best.safetensors"
    side = save_checkpoint(path, model, {"run_id": "r1", "epoch": 7, "metrics": {"mAP": np.float32(0.25)}})
    assert side == tmp_path / "checkpoints" / "best.json" and path.is_file()
    assert sorted(p.name for p in path.parent.iterdir()) == ["best.json", "best.safetensors"]  # no temp files left
    loaded, info = load_checkpoint(path)
    assert not loaded.training and loaded.cfg == model.cfg
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert info["model"]["head"] == head and info["model"]["class_names"] == CLASSES
    assert info["model"]["label_space"]["name"] == "demo"
    assert (info["run_id"], info["epoch"], info["metrics"]) == ("r1", 7, {"mAP": 0.25})
    assert info["cxrlt_version"] == __version__ and info["created"]
    contract = loaded.input_contract
    assert contract.mean == (0.485, 0.456, 0.406) and contract.class_names == tuple(CLASSES)
    assert contract.preprocess == Preprocess(image_size=SIZE) and info["input"] == contract.to_dict()
    assert read_sidecar(side) == info
    stored = json.loads(side.read_text())  # the input fields are stored once, in the input section
    assert "preprocess" not in stored and "normalize" not in stored
    assert not {"mean", "std", "class_names", "label_space", "input_size"} & set(stored["model"])


def test_sidecar_keeps_the_callers_preprocessing_and_extra_keys(tmp_path):
    path = tmp_path / "last.safetensors"
    pre = Preprocess(image_size=SIZE, clip_low=1.0, interpolation="linear")
    save_checkpoint(path, _model(), {"preprocess": pre, "ema": True, "metrics": {"loss": float("nan")}})
    info = read_sidecar(path)
    assert Preprocess.from_dict({k: v for k, v in info["input"].items() if k in pre.to_dict()}) == pre
    assert info["ema"] is True
    assert info["metrics"] == {"loss": None}
    with pytest.raises(InputError, match="written by save_checkpoint"):
        save_checkpoint(path, _model(), {"model": {}})
    with pytest.raises(InputError, match="must end in .safetensors"):
        save_checkpoint(tmp_path / "x.pt", _model())


def test_channels_last_and_tied_weights_round_trip(tmp_path):
    model = _model("csra_mh").to(memory_format=torch.channels_last)
    model.cfg.channels_last = True
    model.head.multi_head[1].head.weight = model.head.multi_head[0].head.weight  # two keys, one storage
    path = tmp_path / "tied.safetensors"
    save_checkpoint(path, model)
    loaded, _ = load_checkpoint(path)
    x = torch.randn(1, 3, SIZE, SIZE)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert loaded.backbone.stem[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_loading_into_another_head_keeps_the_backbone_and_drops_the_head(tmp_path):
    source = _model("csra")
    path = tmp_path / "mimic.safetensors"
    save_checkpoint(path, source)
    for head, classes in (("mlp", CLASSES), ("csra", CLASSES[:3])):
        cfg = ModelConfig(
            backbone="convnextv2_atto", head=head, class_names=classes, input_size=SIZE, pretrained=str(path)
        )
        model = build_model(cfg)
        for key, value in source.backbone.state_dict().items():
            assert torch.equal(model.backbone.state_dict()[key], value), key
        report = model.pretrained_report
        assert report.note.startswith("head re-initialised")
        assert set(report.dropped) == {f"head.{k}" for k in source.head.state_dict()}
        assert set(report.missing) == {f"head.{k}" for k in model.head.state_dict()}
    same = build_model(ModelConfig(**{**source.cfg.to_dict(), "pretrained": str(path)})).eval()
    assert same.pretrained_report.note == "head loaded" and not same.pretrained_report.missing
    x = torch.randn(1, 3, SIZE, SIZE)
    with torch.no_grad():
        assert torch.equal(same(x), source(x))


def test_bad_checkpoints_are_clear_errors(tmp_path):
    model = _model("mlp")
    path = tmp_path / "best.safetensors"
    side = save_checkpoint(path, model)
    good = side.read_text()

    side.unlink()
    with pytest.raises(InputError, match=r"sidecar .*best\.json is missing"):
        load_checkpoint(path)
    side.write_text("{not json")
    with pytest.raises(InputError, match=r"best\.json is not valid JSON"):
        load_checkpoint(path)
    side.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(InputError, match="is not a cxrlt checkpoint sidecar"):
        load_checkpoint(path)
    edited = json.loads(good)
    edited["model"]["head"] = "csra"
    edited["model"]["pooling"] = "feature_map"
    side.write_text(json.dumps(edited))
    with pytest.raises(InputError, match=r"best\.json: head 'csra' has no parameter\(s\) \['hidden'\]"):
        load_checkpoint(path)
    edited["model"]["head_params"] = {}
    side.write_text(json.dumps(edited))
    with pytest.raises(InputError, match=r"best\.safetensors do not match the model"):
        load_checkpoint(path)
    side.write_text(good)

    # A sidecar and weights from two different saves (a crash between the two writes).
    other = tmp_path / "other.safetensors"
    save_checkpoint(other, model)
    path.write_bytes(other.read_bytes())
    with pytest.raises(InputError, match="come from different saves"):
        load_checkpoint(path)
    path.write_bytes(b"\x00" * 16)
    with pytest.raises(InputError, match="not a readable safetensors file"):
        load_checkpoint(path)
    path.unlink()
    with pytest.raises(InputError, match="weights .* are missing"):
        load_checkpoint(side)


def test_training_state_round_trip_resumes_exactly(tmp_path):
    model = _model("mlp").train()
    groups = model.param_groups(1e-4, 1e-3, 0.01, 0.05)
    optimizer = torch.optim.AdamW(groups)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 0.5**epoch)
    scaler = torch.amp.GradScaler("cpu", enabled=True)
    model(torch.randn(2, 3, SIZE, SIZE)).sum().backward()
    optimizer.step()
    scheduler.step()
    ema = {k: v.detach().clone() for k, v in model.state_dict().items()}
    state = {
        "epoch": 3,
        "phase": 2,
        "sampler_epoch": 3,
        "best_map": 0.31,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "ema": ema,
        "rng": capture_rng_state(),
    }
    path = training_state_path(tmp_path / "last.safetensors")
    assert path.name == "last.state.pt"
    save_training_state(path, state)
    expected = (random.random(), np.random.rand(), torch.rand(3))

    loaded = load_training_state(path)
    restore_rng_state(loaded["rng"])
    assert (random.random(), np.random.rand()) == expected[:2] and torch.equal(torch.rand(3), expected[2])
    assert loaded["epoch"] == 3 and loaded["best_map"] == 0.31
    fresh = torch.optim.AdamW(model.param_groups(1e-4, 1e-3, 0.01, 0.05))
    fresh.load_state_dict(loaded["optimizer"])
    for a, b in zip(fresh.state_dict()["state"].values(), optimizer.state_dict()["state"].values()):
        assert torch.equal(a["exp_avg"], b["exp_avg"])
    assert loaded["scheduler"]["last_epoch"] == 1 and loaded["scaler"]["scale"] == scaler.get_scale()
    assert all(torch.equal(loaded["ema"][k], v) for k, v in ema.items())


def test_training_state_refuses_what_it_could_not_read_back_safely(tmp_path):
    path = tmp_path / "last.state.pt"
    save_training_state(path, {"epoch": 1})
    with pytest.raises(InputError, match=r"state\['metrics'\]\['mAP'\] is a float32"):
        save_training_state(path, {"epoch": 2, "metrics": {"mAP": np.float32(0.5)}})
    assert load_training_state(path) == {"epoch": 1}  # the failed save left the old file alone
    torch.save({"epoch": 2, "obj": np.arange(3)}, path)  # numpy arrays are pickled objects
    with pytest.raises(InputError, match="cannot be read safely"):
        load_training_state(path)
    with pytest.raises(InputError, match="does not exist"):
        load_training_state(tmp_path / "missing.state.pt")
