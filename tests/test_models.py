"""The classifier: config round trip, every head on a tiny convnextv2_atto, parameter groups, pretrained weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import timm
import torch

from cxrlt_core.errors import InputError
from cxrlt_core.models import HEADS, ModelConfig, build_model, pretrained_source
from cxrlt_core.models.backbones import read_state_dict

SIZE = 64
HEAD_PARAMS = {
    "mlp": {"hidden": 32},
    "csra": {"lam": 0.1},
    "csra_mh": {"num_heads": 2},
    "linear": {"dropout": 0.1},
    "ml_decoder": {"embed_dim": 16, "num_heads": 2, "ffn_dim": 32},
}
HUB_REPO = "timm/convnextv2_atto.fcmae_ft_in1k"  # timm's default weights of convnextv2_atto


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """Tiny models run faster on one intra-op thread; two threads spin against each other on a busy 2-core box."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _cfg(head: str = "mlp", **kwargs) -> ModelConfig:
    values = dict(
        backbone="convnextv2_atto",
        head=head,
        head_params=HEAD_PARAMS[head],
        class_names=["Normal", "cardiomegaly", "Nodule", "Hernia"],
        input_size=SIZE,
        drop_path_rate=0.1,
    )
    values.update(kwargs)
    return ModelConfig(**values)


def _timm_atto(num_classes: int = 1000) -> torch.nn.Module:
    torch.manual_seed(7)
    return timm.create_model("convnextv2_atto", pretrained=False, num_classes=num_classes)


def _backbone_equal(model, state: dict[str, torch.Tensor]) -> bool:
    own = model.backbone.state_dict()
    return all(torch.equal(own[k], v) for k, v in state.items() if k in own)


# ------------------------------------------------------------------------------------------------------ config
def test_model_config_round_trips_through_json():
    cfg = _cfg("csra_mh", label_space={"name": "demo", "classes": ["a"]}, pretrained="timm", channels_last=True)
    again = ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and again.num_classes == 4 and again.mean == (0.485, 0.456, 0.406)


def test_model_config_errors_name_the_problem():
    with pytest.raises(InputError, match="unknown model config keys"):
        ModelConfig.from_dict({**_cfg().to_dict(), "heads": "mlp"})
    with pytest.raises(InputError, match="num_classes is 3 but 4"):
        _cfg(num_classes=3)
    with pytest.raises(InputError, match="num_classes >= 1"):
        ModelConfig(class_names=[])
    with pytest.raises(InputError, match="unknown timm backbone"):
        build_model(_cfg(backbone="convnextv9_giant"))
    with pytest.raises(InputError, match="unknown head"):
        build_model(ModelConfig(head="transformer", num_classes=2))


# ------------------------------------------------------------------------------------------------------ model
@pytest.mark.parametrize("head", HEADS.names())
def test_every_head_on_a_tiny_backbone(head):
    model = build_model(_cfg(head))
    x = torch.randn(2, 3, SIZE, SIZE)
    logits = model(x)
    assert logits.shape == (2, 4)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    with torch.no_grad():
        again, maps = model.forward_with_maps(x)
        assert maps.shape == (2, 4, SIZE // 32, SIZE // 32)
        assert torch.allclose(again, model(x), atol=1e-5)


def test_parameter_groups_split_decay_like_timm():
    model = build_model(_cfg("csra"))
    groups = model.param_groups(backbone_lr=1.5e-5, head_lr=1.5e-4, backbone_wd=0.01, head_wd=0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    seen = [id(p) for g in groups for p in g["params"]]
    assert sorted(seen) == sorted(names) and len(seen) == len(set(seen))
    by_name = {g["name"]: g for g in groups}
    assert by_name["backbone"]["lr"] == 1.5e-5 and by_name["head"]["weight_decay"] == 0.05
    for group in groups:
        for p in group["params"]:
            no_decay = p.ndim <= 1 or names[id(p)].endswith(".bias")
            assert group["name"].endswith("_no_decay") == no_decay, names[id(p)]
            assert group["weight_decay"] == (0.0 if no_decay else {"backbone": 0.01, "head": 0.05}[group["name"]])
    assert {"head.bn.weight", "head.classifier.bias"} <= {names[id(p)] for p in by_name["head_no_decay"]["params"]}
    torch.optim.AdamW(groups)  # accepted as they are
    everything = model.param_groups(1e-5, 1e-4, 0.01, 0.05, decay_norm_and_bias=True)
    assert [g["name"] for g in everything] == ["backbone", "head"]


def test_freeze_backbone_trains_the_head_only():
    model = build_model(_cfg("mlp"))
    model.freeze_backbone(True)
    model(torch.randn(2, 3, SIZE, SIZE)).sum().backward()
    assert all(p.grad is None for p in model.backbone_parameters())
    assert all(p.grad is not None for p in model.head_parameters())
    groups = model.param_groups(1e-5, 1e-3, 0.01, 0.01, trainable_only=True)
    assert {g["name"] for g in groups} == {"head", "head_no_decay"}
    model.freeze_backbone(False)
    assert all(p.requires_grad for p in model.parameters())


def test_feature_layer_is_the_last_stage_for_grad_cam():
    model = build_model(_cfg("csra"))
    layer = model.feature_layer()
    assert layer is model.backbone.stages[-1]
    seen = []
    layer.register_forward_hook(lambda module, inputs, output: seen.append(output.shape))
    model(torch.randn(1, 3, SIZE, SIZE))
    assert seen == [torch.Size([1, model.backbone.num_features, SIZE // 32, SIZE // 32])]


def test_channels_last_model():
    model = build_model(_cfg("csra_mh", channels_last=True)).eval()
    x = torch.randn(1, 3, SIZE, SIZE).to(memory_format=torch.channels_last)
    assert model.backbone.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert model(x).shape == (1, 4)


# ----------------------------------------------------------------------------------------------- pretrained
def test_pretrained_source_kinds(tmp_path):
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"")
    assert pretrained_source(None) == "none"
    assert pretrained_source("timm") == "timm"
    assert pretrained_source("hf-hub:org/name") == "hub"
    assert pretrained_source("convnextv2_atto.fcmae") == "tag"
    assert pretrained_source(str(weights)) == "file"
    with pytest.raises(InputError, match="does not exist"):
        pretrained_source(str(tmp_path / "nope.safetensors"))


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_pretrained_timm_file_loads_the_backbone(tmp_path, suffix):
    source = _timm_atto()
    state = source.state_dict()
    path = tmp_path / f"atto{suffix}"
    if suffix == ".pth":
        torch.save({"state_dict": state, "epoch": 3}, path)  # nested, as training scripts save them
    else:
        from safetensors.torch import save_file

        save_file(state, str(path))
    model = build_model(_cfg("csra", pretrained=str(path)))
    assert _backbone_equal(model, state)
    report = model.pretrained_report
    assert set(report.dropped) == {"head.fc.weight", "head.fc.bias"} and not report.missing
    assert report.loaded == len(model.backbone.state_dict())


def test_pretrained_file_of_another_architecture_is_an_error(tmp_path):
    path = tmp_path / "femto.pth"
    torch.save(timm.create_model("convnextv2_femto", num_classes=0).state_dict(), path)
    with pytest.raises(InputError, match="do not fit backbone 'convnextv2_atto'"):
        build_model(_cfg(pretrained=str(path)))


def test_pickled_objects_are_never_loaded(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": Path("x")}, path)
    with pytest.raises(InputError, match="refusing to unpickle"):
        read_state_dict(path)


def test_winners_released_csra_layout_loads_head_and_backbone(tmp_path):
    """The CXR-LT 2026 winners' model: ``backbone.*``, a top-level ``bn.*`` and ``head.{classifier,conv_att}.*``."""
    reference = build_model(_cfg("csra"))
    state = {}
    for key, value in reference.state_dict().items():
        state[key[len("head.") :] if key.startswith("head.bn.") else key] = value + 0.5 * value.is_floating_point()
    path = tmp_path / "winner.pth"
    torch.save({"model_state_dict": state, "class_names": ["a", "b", "c", "d"], "best_mAP": 0.58}, path)
    model = build_model(_cfg("csra", pretrained=str(path)))
    assert model.pretrained_report.note == "head loaded" and not model.pretrained_report.missing
    assert torch.equal(model.head.bn.running_var, state["bn.running_var"])
    assert torch.equal(model.head.conv_att.weight, state["head.conv_att.weight"])


def _fake_hub_cache(root: Path, repo: str, state: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    folder = root / ("models--" + repo.replace("/", "--"))
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("0123abcd")
    snapshot = folder / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    save_file(state, str(snapshot / "model.safetensors"))


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """An empty Hugging Face cache in ``tmp_path`` and offline mode, whatever the environment says."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path / "hub"


@pytest.mark.parametrize("pretrained", ["timm", "convnextv2_atto.fcmae_ft_in1k", "hf-hub:someone/cxr-atto"])
def test_offline_without_cached_weights_is_one_clear_error(offline_hub, pretrained):
    with pytest.raises(InputError) as info:
        build_model(_cfg(pretrained=pretrained))
    message = str(info.value)
    repo = "someone/cxr-atto" if pretrained.startswith("hf-hub:") else HUB_REPO
    assert "missing" in message and repo in message and "\n" not in message
    assert f"hf download {repo}" in message and "local weights file" in message


def test_cached_hub_weights_load_offline(offline_hub):
    state = _timm_atto().state_dict()
    _fake_hub_cache(offline_hub, HUB_REPO, state)
    _fake_hub_cache(offline_hub, "someone/cxr-atto", state)
    for pretrained in ("timm", "hf-hub:someone/cxr-atto"):
        model = build_model(_cfg("mlp", pretrained=pretrained))
        report = model.pretrained_report
        assert _backbone_equal(model, state) and str(offline_hub) in report.source
        assert set(report.dropped) == {"head.fc.weight", "head.fc.bias"} and not report.missing


def test_unreachable_hub_fails_fast_without_offline_mode(offline_hub, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE")
    for proxy in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.delenv(proxy, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # the discard port: connection refused
    with pytest.raises(InputError, match=f"{HUB_REPO} is not in the local Hugging Face cache.*cannot reach"):
        build_model(_cfg(pretrained="timm"))


def test_a_tag_of_another_architecture_is_an_error():
    with pytest.raises(InputError, match="for architecture 'resnet18'"):
        build_model(_cfg(pretrained="resnet18.a1_in1k"))
    with pytest.raises(InputError, match="no pretrained weights named"):
        build_model(_cfg(pretrained="convnextv2_atto.no_such_tag"))
