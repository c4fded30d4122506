"""`cxrlt predict / calibrate / thresholds` end to end on a tiny demo set, then a validated Task 1 submission.

Checkpoints are tiny random-init ConvNeXt-V2 Atto models (speed and plumbing do not depend on the weights).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cxrlt_core.cli import main
from cxrlt_core.data.demo.generate import generate_demo_dataset
from cxrlt_core.data.images import Preprocess, load_image, to_model_tensor
from cxrlt_core.data.manifest import read_manifest
from cxrlt_core.inference.calibration import load_calibration
from cxrlt_core.inference.gating import normal_gating
from cxrlt_core.inference.thresholds import load_thresholds
from cxrlt_core.inference.tta import get_tta_set
from cxrlt_core.labels import get_label_space
from cxrlt_core.metrics import compute_report
from cxrlt_core.models.checkpoint import load_checkpoint, save_checkpoint
from cxrlt_core.models.classifier import ModelConfig, build_model
from cxrlt_core.predictions import align_to_labels, read_predictions
from cxrlt_core.submission import validate_submission

SPACE = get_label_space("cxrlt2026")


def _checkpoint(path: Path, head: str, size: int, classes: list[str], seed: int) -> Path:
    torch.manual_seed(seed)
    cfg = ModelConfig(
        backbone="convnextv2_atto",
        head=head,
        class_names=classes,
        label_space=SPACE.to_dict(),
        input_size=size,
        drop_path_rate=0.0,
        pretrained=None,
    )
    save_checkpoint(path, build_model(cfg), {"preprocess": Preprocess(image_size=size).to_dict()})
    return path


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("predict")
    data = generate_demo_dataset(
        root / "demo", n_train=4, n_val=12, n_test=9, image_size=64, workers=1, progress=lambda d, t: None
    )
    classes = list(SPACE.in_distribution)
    shuffled = list(np.random.default_rng(0).permutation(classes))
    return {
        "root": root,
        "data": data,
        "images": data / "images",
        "csra": _checkpoint(root / "csra.safetensors", "csra", 64, classes, seed=0),
        # Another head, input size and class order: aligned by name, decoded once more at its own size.
        "mlp": _checkpoint(root / "mlp.safetensors", "mlp", 96, shuffled, seed=1),
    }


def _cxrlt(*argv: object) -> int:
    return main([str(a) for a in argv])


def _predict(demo: dict[str, Path], csv: str, out: Path, *extra: object) -> int:
    return _cxrlt(
        "predict", "--checkpoint", demo["csra"], "--labels", demo["data"] / csv, "--images", demo["images"],
        "--out", out, "--batch-size", 4, "--num-workers", 0, "--no-progress", *extra,
    )  # fmt: skip


def _reference(checkpoint: Path, paths: list[Path], tta: str, alpha: float) -> tuple[np.ndarray, list[str]]:
    """The pipeline by hand: decode + normalise on the CPU (to_model_tensor), views on the normalised tensor with
    the normalised black as fill, one model call per view, mean of probabilities, gating by formula."""
    model, sidecar = load_checkpoint(checkpoint)
    config = sidecar["model"]
    preprocess = model.input_contract.preprocess
    batch = np.stack([load_image(p, preprocess) for p in paths])
    x = torch.from_numpy(to_model_tensor(batch, config["mean"], config["std"]))
    black = -torch.tensor(config["mean"]) / torch.tensor(config["std"])
    with torch.inference_mode():
        probs = torch.stack([torch.sigmoid(model(view(x, black))) for view in get_tta_set(tta)]).mean(0)
    classes = config["class_names"]
    return normal_gating(probs.double().numpy(), classes, alpha=alpha), classes


def test_predictions_equal_the_pipeline_computed_by_hand(demo: dict[str, Path]) -> None:
    out = demo["root"] / "by_hand.parquet"
    assert _predict(demo, "test.csv", out, "--tta", "medium", "--gating-alpha", 0.5) == 0
    pred = read_predictions(out)
    manifest = read_manifest(demo["data"] / "test.csv", demo["images"], require_labels=False)
    expected, classes = _reference(demo["csra"], [manifest.image_path(i) for i in range(len(manifest))], "medium", 0.5)
    assert list(pred.ids) == list(manifest.ids) and list(pred.classes) == classes
    np.testing.assert_allclose(pred.scores, expected, rtol=0, atol=2e-6)
    meta = pred.metadata
    assert meta["tta"] == {"set": "medium", "views": [v.name for v in get_tta_set("medium")]}
    assert meta["merge"] == "mean" and meta["gating"]["alpha"] == 0.5 and meta["gating"]["normal"] == "Normal"
    assert meta["models"][0]["checkpoint"] == str(demo["csra"]) and meta["models"][0]["head"] == "csra"
    assert meta["complete"] is True and meta["failed_images"] == 0 and meta["calibration"] is None


def test_ensemble_aligns_shuffled_classes_and_weights(demo: dict[str, Path]) -> None:
    root, test = demo["root"], demo["data"] / "test.csv"
    common = ("--labels", test, "--images", demo["images"], "--tta", "flip", "--gating-alpha", 0, "--no-progress")
    assert _cxrlt("predict", "--checkpoint", demo["csra"], "--out", root / "a.csv", *common) == 0
    assert _cxrlt("predict", "--checkpoint", demo["mlp"], "--out", root / "b.csv", *common) == 0
    both = ("--checkpoint", demo["csra"], "--checkpoint", demo["mlp"], "--weights", 1.5, 1.0)
    assert _cxrlt("predict", *both, "--out", root / "ab.csv", "--batch-size", 3, *common) == 0
    a, b, ab = (read_predictions(root / name) for name in ("a.csv", "b.csv", "ab.csv"))
    assert ab.classes == a.classes and b.classes != a.classes
    b_aligned = b.scores[:, [b.classes.index(c) for c in a.classes]]
    np.testing.assert_allclose(ab.scores, 0.6 * a.scores + 0.4 * b_aligned, rtol=0, atol=1e-6)
    assert ab.metadata["weights"] == pytest.approx([0.6, 0.4])
    assert [m["input_size"] for m in ab.metadata["models"]] == [[64, 64], [96, 96]]


def test_predict_calibrate_thresholds_submission(demo: dict[str, Path]) -> None:
    root, data = demo["root"], demo["data"]
    val_pred, test_pred = root / "val.parquet", root / "test_pred.csv"
    assert _predict(demo, "val.csv", val_pred, "--tta", "flip") == 0
    assert _cxrlt("calibrate", "--pred", val_pred, "--labels", data / "val.csv", "--out", root / "cal.json") == 0
    assert _cxrlt("thresholds", "--pred", val_pred, "--labels", data / "val.csv", "--out", root / "thr.json") == 0
    calibration, thresholds = load_calibration(root / "cal.json"), load_thresholds(root / "thr.json")
    assert calibration.method == "temperature" and calibration.fitted_on["pipeline"]["tta"] == "flip"

    # Calibration is monotone: the validation ranking, so mAP and mAUC, are unchanged.
    pred = read_predictions(val_pred)
    scores, labels, classes = align_to_labels(pred, read_manifest(data / "val.csv"))
    before, after = compute_report(labels, scores, classes), compute_report(labels, calibration.apply(scores), classes)
    assert abs(before["mAP"] - after["mAP"]) < 1e-9 and abs(before["mAUC"] - after["mAUC"]) < 1e-9

    extra = ("--tta", "flip", "--calibration", root / "cal.json", "--thresholds", root / "thr.json")
    assert _predict(demo, "test.csv", test_pred, *extra) == 0
    pred = read_predictions(test_pred)
    uncalibrated = read_predictions(val_pred)  # same pipeline on other images: the calibrated file must differ
    assert pred.metadata["calibration"]["method"] == "temperature"
    assert not np.allclose(pred.scores[:, :3], uncalibrated.scores[: len(pred), :3])
    binary = read_predictions(test_pred.with_name("test_pred.binary.csv"))
    np.testing.assert_array_equal(binary.scores, thresholds.binarize(pred.scores, pred.classes))

    submission = root / "sub.csv"
    assert (
        _cxrlt("submission", "write", "--pred", test_pred, "--task", 1, "--ids", data / "test.csv", "--out", submission)
        == 0
    )
    assert validate_submission(submission, 1, data / "test.csv", "cxrlt2026", strict_spelling=True) == []


@pytest.fixture()
def corrupt(demo: dict[str, Path], tmp_path: Path) -> Path:
    """test.csv plus a truncated PNG in the middle."""
    images = demo["images"]
    (images / "broken.png").write_bytes((images / "demo_000020.png").read_bytes()[:150])
    lines = (demo["data"] / "test.csv").read_text().splitlines()
    lines.insert(4, ",".join(["broken.png", *lines[4].split(",")[1:]]))  # a row like its neighbours
    path = tmp_path / "test_corrupt.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_corrupt_image_stops_the_run_naming_it(demo: dict[str, Path], corrupt: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "pred.csv"
    args = ("predict", "--checkpoint", demo["csra"], "--labels", corrupt, "--images", demo["images"], "--out", out)
    assert _cxrlt(*args, "--tta", "none", "--no-progress", "--num-workers", 1) == 1
    err = capsys.readouterr().err
    assert "broken.png: truncated PNG file" in err and "row 5" in err and "--on-error skip" in err
    assert not out.exists() and not list(tmp_path.glob(".pred.csv*"))


def test_skipped_corrupt_image_is_listed_and_blocks_the_submission(
    demo: dict[str, Path], corrupt: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "pred.csv"
    args = ("predict", "--checkpoint", demo["csra"], "--labels", corrupt, "--images", demo["images"], "--out", out)
    assert _cxrlt(*args, "--tta", "none", "--on-error", "skip", "--no-progress", "--num-workers", 2) == 0
    assert "1 images could not be read" in capsys.readouterr().err
    pred = read_predictions(out)
    assert "broken.png" not in pred.ids and len(pred) == 9
    assert pred.metadata["complete"] is False and pred.metadata["failed_images"] == 1
    failed = (tmp_path / "pred.csv.failed.csv").read_text().splitlines()
    assert failed[0] == "row,ImageID,image,error" and failed[1].startswith("5,broken.png,")
    submission = tmp_path / "sub.csv"
    assert _cxrlt("submission", "write", "--pred", out, "--task", 1, "--ids", corrupt, "--out", submission) == 1
    assert "'broken.png'" in capsys.readouterr().err and not submission.exists()
    # Re-running on a clean CSV removes the stale list of failures.
    assert _cxrlt(*args[:4], demo["data"] / "test.csv", *args[5:], "--tta", "none", "--no-progress") == 0
    assert not (tmp_path / "pred.csv.failed.csv").exists()


def test_small_chunks_and_forward_batches_give_the_same_file(demo: dict[str, Path], tmp_path: Path) -> None:
    one = tmp_path / "one.parquet"
    many = tmp_path / "many.parquet"
    assert _predict(demo, "test.csv", one, "--tta", "flip", "--forward-batch", "all") == 0
    assert _predict(demo, "test.csv", many, "--tta", "flip", "--chunk-size", 2, "--forward-batch", 3) == 0
    import pyarrow.parquet as pq

    assert pq.ParquetFile(many).num_row_groups > 1
    a, b = read_predictions(one), read_predictions(many)
    assert list(a.ids) == list(b.ids)
    np.testing.assert_allclose(a.scores, b.scores, rtol=0, atol=1e-6)


def test_bad_arguments_are_one_line_errors(demo: dict[str, Path], tmp_path: Path, capsys) -> None:
    base = ("predict", "--labels", demo["data"] / "test.csv", "--images", demo["images"], "--no-progress")
    assert _cxrlt(*base, "--checkpoint", demo["csra"], "--weights", 1, 2, "--out", tmp_path / "p.csv") == 1
    assert "--weights has 2 values for 1 checkpoints" in capsys.readouterr().err
    assert _cxrlt(*base, "--checkpoint", tmp_path / "none.safetensors", "--out", tmp_path / "p.csv") == 1
    assert "none.json is missing" in capsys.readouterr().err
    assert _cxrlt(*base, "--checkpoint", demo["csra"], "--out", tmp_path / "p.txt") == 1
    assert "must be .parquet or .csv" in capsys.readouterr().err


@pytest.mark.slow
def test_torchrun_shards_and_merges_in_input_order(demo: dict[str, Path], corrupt: Path, tmp_path: Path) -> None:
    single, sharded = tmp_path / "single.csv", tmp_path / "sharded.parquet"
    common = ["--checkpoint", str(demo["csra"]), "--labels", str(corrupt), "--images", str(demo["images"])]
    common += ["--tta", "flip", "--on-error", "skip", "--no-progress", "--num-workers", "0", "--batch-size", "2"]
    assert main(["predict", *common, "--out", str(single)]) == 0
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "cxrlt_core.cli", "predict", *common,
         "--out", str(sharded)],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    a, b = read_predictions(single), read_predictions(sharded)
    assert list(a.ids) == list(b.ids)
    np.testing.assert_allclose(a.scores, b.scores, rtol=0, atol=1e-5)
    assert b.metadata["world_size"] == 2 and b.metadata["failed_images"] == 1
    failed = (tmp_path / "sharded.parquet.failed.csv").read_text().splitlines()
    assert len(failed) == 2 and failed[1].startswith("5,broken.png,")
    assert not list(tmp_path.glob(".sharded.parquet*"))
