"""Recipes: every file in train_jobs/ loads, YAML round trip, overrides, and one clear error per bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cxrlt_core.config import Recipe, apply_overrides, load_recipe, parse_override, recipe_from_yaml, resolve_path
from cxrlt_core.errors import InputError
from cxrlt_core.paths import REPO_ROOT, shared_data_dir

RECIPES = sorted((REPO_ROOT / "train_jobs").glob("*.yaml"))


def test_the_expected_recipes_exist():
    names = {path.stem for path in RECIPES}
    assert {"cxrlt2026_csra_dbcas", "cxrlt2026_mlp_asl", "demo_csra", "demo_mlp", "nih14_small"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_every_recipe_loads_and_round_trips(path: Path):
    recipe = load_recipe(path)
    assert recipe.name == path.stem, "a recipe's name should be its file name"
    assert recipe.description
    assert recipe_from_yaml(recipe.to_yaml()) == recipe
    text = path.read_text(encoding="utf-8")
    assert text.lstrip().startswith("#"), "recipes open with a comment that says what they are"


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_every_recipe_names_registered_parts(path: Path):
    import timm

    from cxrlt_core.losses import LOSSES, build_loss
    from cxrlt_core.models.heads import HEADS, build_head

    recipe = load_recipe(path)
    assert recipe.model.head in HEADS
    assert recipe.loss.name in LOSSES
    assert timm.is_model(recipe.model.backbone)
    # the parameters are accepted by the head and the loss they name
    build_head(recipe.model.head, 64, 3, dict(recipe.model.head_params))
    build_loss(recipe.loss.name, class_counts=np.array([5, 2, 1]), num_images=10, **dict(recipe.loss.params))


def test_paper_recipe_has_the_winning_code_values():
    recipe = load_recipe(REPO_ROOT / "train_jobs" / "cxrlt2026_csra_dbcas.yaml")
    o = recipe.optim
    assert (recipe.model.backbone, recipe.model.head, recipe.data.image_size) == ("convnextv2_base", "csra", 512)
    assert (recipe.loss.name, recipe.loss.params["variant"]) == ("db", "code")
    assert (recipe.sampler.T, recipe.sampler.r_max, recipe.sampler.frequency) == (0.01, 10, "share_of_positives")
    assert (o.phase1.epochs, o.phase1.lr, o.phase1.wd) == (10, 1e-3, 0.01)
    p2 = o.phase2
    assert (p2.epochs, p2.backbone_lr, p2.head_lr, p2.backbone_wd, p2.head_wd) == (60, 1.5e-5, 1.5e-4, 0.01, 0.05)
    assert (p2.warmup_epochs, p2.min_lr_ratio) == (5, 0.01)
    assert (o.batch_size, o.grad_clip, o.ema.enabled, o.ema.decay, o.sync_bn) == (64, 1.0, True, 0.9999, True)


def test_overrides_parse_yaml_values_and_nest():
    assert parse_override("optim.phase2.head_lr=3e-4") == (["optim", "phase2", "head_lr"], "3e-4")
    assert parse_override("optim.ema.enabled=false") == (["optim", "ema", "enabled"], False)
    assert parse_override("data.val_csv=null") == (["data", "val_csv"], None)
    assert parse_override("data.augment.noise_var=[2, 3]") == (["data", "augment", "noise_var"], [2, 3])
    merged = apply_overrides({"optim": {"batch_size": 8}}, ["optim.batch_size=16", "sampler.T=0.05"])
    assert merged == {"optim": {"batch_size": 16}, "sampler": {"T": 0.05}}


def test_overrides_applied_to_a_recipe(tmp_path: Path):
    path = REPO_ROOT / "train_jobs" / "demo_csra.yaml"
    recipe = load_recipe(
        path, ["optim.phase2.head_lr=3e-4", "model.head=mlp", "model.head_params={}", "optim.ema.enabled=false"]
    )
    assert recipe.optim.phase2.head_lr == pytest.approx(3e-4)  # YAML 1.1 reads 3e-4 as text; accepted as a number
    assert recipe.model.head == "mlp" and recipe.optim.ema.enabled is False
    assert recipe.data.augment.noise_var == (1.0, 5.0)


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("optim.phase2.head_lr=-1e-4", "optim.phase2.head_lr must be >= 0"),
        ("optim.phase1.lr=-0.1", "optim.phase1.lr must be >= 0"),
        ("optim.batch_size=abc", "optim.batch_size must be an integer"),
        ("optim.batch_size=0", "optim.batch_size must be >= 1"),
        ("optim.bacth_size=3", "did you mean 'optim.batch_size'"),
        ("optim.ema.enabled=maybe", "optim.ema.enabled must be true or false"),
        ("optim.amp=fp8", "choose one of: auto, bf16, fp16, off"),
        ("sampler.T=0", "sampler.T must be > 0"),
        ("sampler.frequency=per_image", "choose one of: share_of_positives, image_prevalence"),
        ("optim.ema.decay=1.5", "optim.ema.decay must be in [0, 1)"),
        ("optim.phase2.warmup_epochs=1000", "warmup_epochs must be in"),
        ("data.augment.noise_var=[1]", "data.augment.noise_var must have 2 values"),
        ("data=3", "data must be a mapping"),
        ("model.mean=[0.5]", "model.mean needs 3 values"),
        ("nonsense", "is not of the form section.key=value"),
        ("optim.batch_size.x=1", "is a value, not a section"),
    ],
)
def test_bad_overrides_are_one_clear_error(override: str, words: str):
    path = REPO_ROOT / "train_jobs" / "demo_csra.yaml"
    with pytest.raises(InputError) as info:
        load_recipe(path, [override])
    assert words in str(info.value)


def test_bad_files(tmp_path: Path):
    with pytest.raises(InputError, match="recipe file not found"):
        load_recipe(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(InputError, match="not valid YAML"):
        load_recipe(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(InputError, match="must be a mapping"):
        load_recipe(listy)
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n")
    with pytest.raises(InputError, match="data.train_csv is required"):
        load_recipe(empty)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("data:\n  train_csv: a.csv\nmodle:\n  head: mlp\n")
    with pytest.raises(InputError, match=r"unknown key 'modle'; did you mean 'model'"):
        load_recipe(unknown)


def test_defaults_are_the_method():
    recipe = Recipe.from_dict({"data": {"train_csv": "x.csv"}})
    assert recipe.total_epochs == 70 and recipe.optim.phase2.backbone_lr == 1.5e-5
    assert recipe.data.augment.dropout_holes == 6 and recipe.data.augment.affine_p == 0.4


def test_resolve_path_placeholders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    assert resolve_path("${workspace}/datasets/a.csv", tmp_path) == (tmp_path / "datasets" / "a.csv").resolve()
    monkeypatch.setenv("CXRLT_SHARED_DATA", str(tmp_path / "real"))
    assert resolve_path("${shared_data}/nih-cxr14-64px", tmp_path) == (tmp_path / "real" / "nih-cxr14-64px").resolve()
    monkeypatch.delenv("CXRLT_SHARED_DATA")
    assert shared_data_dir() is None
    with pytest.raises(InputError, match="set CXRLT_SHARED_DATA"):
        resolve_path("${shared_data}/nih-cxr14-64px", tmp_path)
    assert resolve_path("${repo}/train_jobs", tmp_path) == (REPO_ROOT / "train_jobs").resolve()
    assert resolve_path(None, tmp_path) is None
    with pytest.raises(InputError, match="unknown placeholder"):
        resolve_path("${home}/x", tmp_path)


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("model.head_params.lamb=0.2", "head 'csra' has no parameter 'lamb'; did you mean 'lam'?"),
        ("model.head_params.lam=high", "model.head_params.lam must be a number"),
        ("model.head_params.lam=.nan", "model.head_params.lam must be a finite number"),
        ("loss.params.variant=7", "loss.params.variant must be a string"),
        ("loss.params.beta=.inf", "loss.params.beta must be a finite number"),
        ("loss.params.gamma_neg=4", "loss 'db' has no parameter 'gamma_neg'"),
        ("sampler.name=balanced", "unknown sampler 'balanced'; choose one of: repeat_factor, uniform"),
        ("loss.name=focal", "unknown loss 'focal'"),
    ],
)
def test_registry_names_and_params_are_checked_when_the_recipe_loads(override, words):
    with pytest.raises(InputError) as info:
        load_recipe(REPO_ROOT / "train_jobs" / "demo_csra.yaml", [override])
    assert words in str(info.value) and "demo_csra.yaml" in str(info.value)


def test_uniform_sampler_is_a_plain_epoch():
    import numpy as np

    from cxrlt_core.data.sampler import SAMPLERS, build_train_sampler

    labels = np.array([[1, 0], [0, 0], [0, 1], [0, 0]], dtype=float)
    np.testing.assert_array_equal(SAMPLERS.get("uniform")(labels).repeats(0), np.ones(4))
    sampler = build_train_sampler(labels, name="uniform", T=2.0)
    assert sorted(sampler.epoch_indices(0).tolist()) == [0, 1, 2, 3]
    rfs = build_train_sampler(labels, name="repeat_factor", T=2.0)  # f_c = 1/2 of the positives: r = sqrt(2/0.5) = 2
    assert sorted(rfs.epoch_indices(0).tolist()) == [0, 0, 1, 2, 2, 3]
    # class-balanced: π_i = (1/C') Σ_c 1/n_c = 1/4 for images 0 and 2, 0 for the others (never drawn)
    balanced = build_train_sampler(labels, name="class_balanced")
    assert set(balanced.epoch_indices(0).tolist()) <= {0, 2} and len(balanced.epoch_indices(0)) == 4
