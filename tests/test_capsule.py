"""Reproduction capsules: make / check round trip on a tiny demo data set and a random-weights checkpoint; each
tamper (one image byte, one label cell, one checkpoint byte) is named; a missing image folder cannot be checked."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from cxrlt_core import runs
from cxrlt_core.capsule import DIFFERS, IMAGES_FILE, MANIFEST_FILE, REPRODUCED, UNCHECKED
from cxrlt_core.capsule.check import check_capsule
from cxrlt_core.capsule.hashes import parse_sha256_lines, sha256_file
from cxrlt_core.cli import main
from cxrlt_core.data.demo.generate import generate_demo_dataset
from cxrlt_core.data.images import Preprocess
from cxrlt_core.data.manifest import read_manifest
from cxrlt_core.evaluation import evaluate
from cxrlt_core.labels import get_label_space
from cxrlt_core.models.checkpoint import save_checkpoint
from cxrlt_core.models.classifier import ModelConfig, build_model
from cxrlt_core.predictions import read_predictions

SPACE = get_label_space("cxrlt2026")
pytestmark = pytest.mark.slow  # a tiny data set, a checkpoint and its predictions per module (~10 s), ~4 s a test


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with a tiny data set, one run holding a random-weights best checkpoint, and its test
    predictions (flip TTA, as the demo build)."""
    from cxrlt_core.inference.predict import predict

    root = tmp_path_factory.mktemp("capsule_src") / "ws"
    data = generate_demo_dataset(root / "datasets" / "demo", n_train=40, n_val=6, n_test=16, image_size=64,
                                 workers=1, progress=lambda d, t: None)  # fmt: skip
    run_dir = runs.create_run(root, "r1")
    (run_dir / runs.CONFIG_FILE).write_text("name: r1\ndata:\n  train_csv: ${workspace}/datasets/demo/train.csv\n")
    assert data == root / "datasets" / "demo"
    torch.manual_seed(0)
    cfg = ModelConfig(backbone="convnextv2_atto", head="csra", class_names=list(SPACE.in_distribution),
                      label_space=SPACE.to_dict(), input_size=64, drop_path_rate=0.0, pretrained=None)  # fmt: skip
    best = runs.checkpoint_path(run_dir, "best")
    save_checkpoint(best, build_model(cfg), {"preprocess": Preprocess(image_size=64).to_dict(), "which": "best"})
    manifest = read_manifest(data / "test.csv", image_root=data / "images", label_space="cxrlt2026",
                             require_labels=False)  # fmt: skip
    predict([best], manifest, run_dir / "predictions" / "test.parquet", tta="flip", gating_alpha=0.0,
            num_workers=0, show_progress=False)  # fmt: skip
    return root


@pytest.fixture()
def world(source: Path, tmp_path: Path) -> Path:
    """A private copy of the source workspace (tampered freely) with a capsule of r1's test result."""
    ws = tmp_path / "ws"
    shutil.copytree(source, ws)
    for path in ws.rglob("*.parquet"):  # the copy's provenance must name the copy's files
        _repoint(path, str(source), str(ws))
    assert main(["capsule", "make", "--workspace", str(ws), "--run", "r1", "--out", str(tmp_path / "cap")]) == 0
    return ws


def _repoint(path: Path, old: str, new: str) -> None:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    meta = {k: v.replace(old.encode(), new.encode()) for k, v in (table.schema.metadata or {}).items()}
    pq.write_table(table.replace_schema_metadata(meta), path)


def _statuses(report) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {f"{i.kind} {i.name}": i.status for i in report.items}


def test_round_trip_reproduces_and_figures_are_the_scorer_s(world: Path, tmp_path: Path):
    capsule = tmp_path / "cap"
    manifest = json.loads((capsule / MANIFEST_FILE).read_text())
    data = world / "datasets" / "demo"
    # the figures are the scorer's on these files, computed independently here
    truth = read_manifest(data / "test_labels.csv")
    train = read_manifest(data / "train.csv", label_space=truth.label_space)
    report = evaluate(read_predictions(world / "runs/r1/predictions/test.parquet"), truth, train).report
    assert manifest["figures"]["mAP"] == pytest.approx(report["mAP"], abs=0)
    assert manifest["figures"]["mAP[medium]"] == report["buckets"]["medium"]["mAP"]
    assert manifest["labels"]["path"] == str((data / "test_labels.csv").resolve())
    assert manifest["labels"]["sha256"] == sha256_file(data / "test_labels.csv")
    assert manifest["train_labels"]["path"] == str((data / "train.csv").resolve())
    ckpt = runs.checkpoint_path(world / "runs" / "r1", "best")
    assert manifest["checkpoints"][0]["sha256"] == sha256_file(ckpt)
    assert manifest["checkpoints"][0]["sidecar"]["sha256"] == sha256_file(ckpt.with_suffix(".json"))
    assert manifest["recipes"][0]["run"] == "r1" and (capsule / manifest["recipes"][0]["copy"]).is_file()
    assert manifest["predictions"]["provenance"]["tta"]["set"] == "flip"
    assert manifest["scorer"]["threshold"] == 0.5 and manifest["software"]["cxrlt"]
    lines = parse_sha256_lines((capsule / IMAGES_FILE).read_text(), IMAGES_FILE)
    assert len(lines) == 16 == manifest["images"]["count"]
    assert all(sha256_file(data / "images" / rel) == digest for digest, rel in lines)

    result = check_capsule(capsule, rerun_inference=True)
    assert result.reproduced, [i.line() for i in result.items if i.status != REPRODUCED]
    kinds = {i.kind for i in result.items}
    assert {"re-scored", "re-run", "images", "checkpoint", "labels file"} <= kinds


def test_zip_capsule_round_trip(world: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    out = tmp_path / "cap.zip"
    assert main(["capsule", "make", "--workspace", str(world), "--run", "r1", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["capsule", "check", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "re-scored mAP: reported" in printed and printed.strip().endswith(")")
    assert ": reproduced (" in printed


def test_changed_image_byte_is_named(world: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    images = world / "datasets" / "demo" / "images"
    victim = images / (world / "datasets" / "demo" / "test.csv").read_text().splitlines()[4].split(",")[0]
    raw = bytearray(victim.read_bytes())
    raw[-20] ^= 0xFF
    victim.write_bytes(bytes(raw))
    report = check_capsule(tmp_path / "cap")
    bad = [i for i in report.items if i.status != REPRODUCED]
    assert [(i.kind, i.name, i.status) for i in bad][0] == ("image", str(victim.resolve()), DIFFERS)
    assert not report.reproduced
    assert main(["capsule", "check", str(tmp_path / "cap")]) == 1
    captured = capsys.readouterr()
    assert f"image {victim.resolve()}: sha256" in captured.out and captured.err.startswith("error: ")


def test_changed_label_cell_is_named(world: Path, tmp_path: Path):
    labels = world / "datasets" / "demo" / "test_labels.csv"
    lines = labels.read_text().splitlines()
    header = lines[0].split(",")
    column = header.index("cardiomegaly")
    row = lines[1].split(",")
    row[column] = "0" if row[column] == "1" else "1"
    lines[1] = ",".join(row)
    labels.write_text("\n".join(lines) + "\n")
    statuses = _statuses(check_capsule(tmp_path / "cap"))
    assert statuses[f"labels file {labels.resolve()}"] == DIFFERS
    assert statuses["re-scored AP[cardiomegaly]"] == DIFFERS
    assert statuses["re-scored AP[Nodule]"] == REPRODUCED  # only the changed class moves


def test_changed_checkpoint_byte_is_named(world: Path, tmp_path: Path):
    ckpt = runs.checkpoint_path(world / "runs" / "r1", "best")
    raw = bytearray(ckpt.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    ckpt.write_bytes(bytes(raw))
    report = check_capsule(tmp_path / "cap")
    bad = [(i.kind, i.name, i.status) for i in report.items if i.status != REPRODUCED]
    assert bad == [("checkpoint", str(ckpt.resolve()), DIFFERS)]


def test_missing_image_folder_cannot_be_checked(world: Path, tmp_path: Path):
    images = world / "datasets" / "demo" / "images"
    shutil.rmtree(images)
    report = check_capsule(tmp_path / "cap", rerun_inference=True)
    statuses = _statuses(report)
    assert statuses[f"images {images.resolve()}"] == UNCHECKED
    assert statuses["re-run predictions"] == UNCHECKED
    assert statuses["re-scored mAP"] == REPRODUCED  # re-scoring needs only the packed predictions and the labels
    detail = next(i.detail for i in report.items if i.kind == "images")
    assert "image folder missing" in detail and "--images" in detail
    assert not report.reproduced


def test_images_elsewhere_with_images_option(world: Path, tmp_path: Path):
    moved = tmp_path / "moved_images"
    shutil.move(str(world / "datasets" / "demo" / "images"), moved)
    assert check_capsule(tmp_path / "cap", images=moved).reproduced


def test_missing_labels_and_bad_capsules(world: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    (world / "datasets" / "demo" / "test_labels.csv").unlink()
    report = check_capsule(tmp_path / "cap")
    mAP = next(i for i in report.items if i.kind == "re-scored" and i.name == "mAP")
    assert mAP.status == UNCHECKED and "labels file missing" in mAP.detail
    assert main(["capsule", "check", str(tmp_path / "nothing")]) == 1
    assert "capsule not found" in capsys.readouterr().err
    (tmp_path / "notjson").mkdir()
    (tmp_path / "notjson" / MANIFEST_FILE).write_text("{")
    assert main(["capsule", "check", str(tmp_path / "notjson")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not readable JSON" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / MANIFEST_FILE).write_text('{"kind": "cxrlt-capsule", "version": 1}')
    assert main(["capsule", "check", str(tmp_path / "partial")]) == 1
    assert "is malformed" in capsys.readouterr().err
    assert main(["capsule", "make", "--pred", str(tmp_path / "nope.parquet"), "--out", str(tmp_path / "x")]) == 1
    assert capsys.readouterr().err.startswith("error: ")


def test_zip_member_leaving_the_capsule_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture):
    import zipfile

    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("../outside.txt", "x")
    assert main(["capsule", "check", str(evil)]) == 1
    assert "would leave the capsule" in capsys.readouterr().err
    assert not (tmp_path.parent / "outside.txt").exists()


def test_capsule_changed_inside_is_named(world: Path, tmp_path: Path):
    capsule = tmp_path / "cap"
    recipe = next((capsule / "recipes").iterdir())
    recipe.write_text(recipe.read_text() + "# edited\n")
    statuses = _statuses(check_capsule(capsule))
    assert statuses[f"capsule file {recipe}"] == DIFFERS


def test_export_makes_a_capsule_next_to_the_submission(world: Path):
    from cxrlt_core.capsule.export import export_capsule
    from cxrlt_core.export import export_task1
    from cxrlt_core.workspace import Workspace

    workspace = Workspace.open(world)
    test_csv = world / "datasets" / "demo" / "test.csv"
    result = export_task1(workspace, ["r1"], test_csv, "sub1", tta="flip", gating_alpha=0.0)
    assert result.problems == []
    capsule = export_capsule(workspace, result.predictions, result.submission, test_csv)
    assert capsule.path == world / "exports" / "sub1.capsule"
    manifest = json.loads((capsule.path / MANIFEST_FILE).read_text())
    assert manifest["extra_files"][0]["sha256"] == sha256_file(result.submission)
    assert manifest["train_labels"]["path"] == str((world / "datasets" / "demo" / "train.csv").resolve())
    assert "mAP[head]" in manifest["figures"]
    assert check_capsule(capsule.path, rerun_inference=True).reproduced
    result.submission.write_text(result.submission.read_text().replace("0.", "0.9", 1))
    statuses = _statuses(check_capsule(capsule.path))
    assert statuses[f"capsule file {capsule.path / 'files' / 'sub1.csv'}"] == REPRODUCED
    assert [k for k, v in statuses.items() if v != REPRODUCED] == [f"packed file {result.submission.resolve()}"]
