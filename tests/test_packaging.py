"""The built package works outside the source tree: recipes and prompt sets are package data, found by name."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cxrlt_core.errors import InputError
from cxrlt_core.paths import REPO_ROOT
from cxrlt_core.recipes import recipe_names, recipe_path, resolve_recipe

SKIP = shutil.ignore_patterns(".git", ".venv", "workspace", "test-artifacts", "build", "*.egg-info", "__pycache__")


def test_shipped_recipes_are_found_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    assert {p.stem for p in (REPO_ROOT / "train_jobs").glob("*.yaml")} <= set(recipe_names())
    assert recipe_path("demo_csra").name == "demo_csra.yaml" == recipe_path("demo_csra.yaml").name
    monkeypatch.chdir(tmp_path)
    own = tmp_path / "mine.yaml"
    own.write_text("name: mine\n")
    assert resolve_recipe("mine.yaml") == Path("mine.yaml") and resolve_recipe(own) == own
    with pytest.raises(InputError, match="did you mean 'demo_csra'"):
        resolve_recipe("demo_csr")
    with pytest.raises(InputError, match="recipe file not found"):
        resolve_recipe("folder/demo_csra")  # a path is never swapped for a shipped recipe


@pytest.mark.slow
def test_wheel_installed_elsewhere_trains_a_shipped_recipe_by_name(tmp_path: Path):
    source = tmp_path / "source"
    shutil.copytree(REPO_ROOT, source, ignore=SKIP)
    wheels, site, elsewhere = tmp_path / "wheels", tmp_path / "site", tmp_path / "elsewhere"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", wheels, source], check=True)
    wheel = next(wheels.glob("cxrlt-*.whl"))
    subprocess.run([*pip, "install", "--no-deps", "--target", site, wheel], check=True)
    shutil.rmtree(source)
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("CXRLT_SHARED_DATA", "CXRLT_WORKSPACE")}
    env.update(PYTHONPATH=str(site), OMP_NUM_THREADS="1")

    def cxrlt(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "cxrlt_core.cli", *args]
        return subprocess.run(command, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600)

    where = subprocess.run(
        [sys.executable, "-c", "import cxrlt_core; print(cxrlt_core.__file__)"], cwd=elsewhere, env=env,
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert Path(where.stdout.strip()).is_relative_to(site)
    data = elsewhere / "ws" / "datasets" / "demo"
    made = cxrlt("data", "make-demo", "--out", str(data), "--n-train", "16", "--n-val", "8", "--n-test", "4",
                 "--image-size", "64", "--workers", "1")  # fmt: skip
    assert made.returncode == 0, made.stderr[-2000:]
    toy = ["data.image_size=64", "optim.phase1.epochs=0", "optim.phase2.epochs=1", "optim.phase2.warmup_epochs=0",
           "optim.batch_size=8", "optim.num_workers=0", "optim.max_steps_per_epoch=1"]  # fmt: skip
    trained = cxrlt("train", "--config", "demo_csra", "--workspace", str(elsewhere / "ws"), "--no-progress", *toy)
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert "finished 1 epochs" in trained.stdout
    assert list((elsewhere / "ws" / "runs").glob("demo_csra-*/checkpoints/best.safetensors"))
    unknown = cxrlt("train", "--config", "demo_csrb", "--workspace", str(elsewhere / "ws"))
    assert unknown.returncode == 1 and "did you mean 'demo_csra'" in unknown.stderr
    assert (site / "cxrlt_core" / "zeroshot" / "default_prompts.yaml").is_file()
