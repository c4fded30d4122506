"""A model card for one checkpoint: what the model is, what it was trained on, how well it did, what it is for.

Everything comes from the checkpoint's sidecar (architecture, input, preprocessing, validation figures, recipe),
the run's resolved recipe (training CSV), the training data set's ``dataset.json`` when it has one (the demo
generator writes it: synthetic phantoms), and, for test figures with intervals, the run's saved test predictions
scored against the test labels found beside the training CSV (mAP with a 95 % image-bootstrap percentile interval;
``metrics.compute_report``). Model cards after Mitchell et al., "Model Cards for Model Reporting", FAT* 2019.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from cxrlt_core.config import resolve_path
from cxrlt_core.errors import CxrltError
from cxrlt_core.evaluation import evaluate_files
from cxrlt_core.models.contract import InputContract

INTENDED_USE = (
    "Research only: not a medical device, not for diagnosis, triage or any decision about a patient. "
    "Outputs on images unlike the training data (see the input-shift check) are meaningless."
)
SYNTHETIC_NOTE = (
    "Trained on synthetic phantom radiographs (the cxrlt demo generator), not on patients: it has never seen a real "
    "chest X-ray, and its outputs on real radiographs mean nothing."
)
TEST_PREDICTIONS = ("predictions/test.parquet", "predictions/test.csv")


def parameter_count(model: Any) -> int:
    """Number of parameters (every tensor of ``model.parameters()``)."""
    return int(sum(p.numel() for p in model.parameters()))


def _resolved_recipe(run_dir: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def training_csv(run_dir: str | os.PathLike[str], workspace: str | os.PathLike[str] | None) -> Path | None:
    """The training CSV named by the run's ``config.yaml`` (``${workspace}`` expanded), if it names one."""
    value = (_resolved_recipe(Path(run_dir)).get("data") or {}).get("train_csv")
    try:
        return resolve_path(value, workspace) if value else None
    except Exception:  # an unresolvable placeholder: no training CSV to describe
        return None


def training_data(csv: Path | None) -> dict[str, Any]:
    """Name, description, size and whether the data are synthetic, from the CSV and its ``dataset.json``."""
    if csv is None:
        return {"description": "unknown (the run does not name its training CSV)", "synthetic": False}
    info: dict[str, Any] = {"csv": csv.name, "folder": csv.parent.name}
    try:
        with open(csv, encoding="utf-8") as handle:
            info["images"] = max(0, sum(1 for _ in handle) - 1)
    except OSError:
        info["images"] = None
    try:
        dataset = json.loads((csv.parent / "dataset.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        dataset = {}
    info["description"] = dataset.get("description") or f"{csv.name} in {csv.parent.name}"
    info["synthetic"] = dataset.get("name") == "cxrlt-demo"
    if dataset.get("image_size"):
        info["image_size"] = dataset["image_size"]
    return info


def input_description(sidecar: dict[str, Any]) -> str:
    """The model input in words: size, channels, intensity mapping, aspect handling (the checkpoint's contract)."""
    contract = InputContract.from_sidecar(sidecar)
    pre = contract.preprocess
    aspect = "letterboxed (aspect ratio kept)" if pre.keep_aspect else "resized to a square (aspect not kept)"
    if pre.intensity == "percentile":
        mapping = f"gray levels clipped at the {pre.clip_low:g}-{pre.clip_high:g} percentiles"
    else:
        mapping = "full gray range"
    return f"{pre.height} x {pre.width} px gray radiograph ({mapping}), {aspect}, {contract.channels} channels"


def test_figures(
    run_dir: str | os.PathLike[str], labels_csv: Path | None, bootstrap: int = 200, seed: int = 0
) -> dict[str, Any] | None:
    """Test mAP (with its 95 % bootstrap interval), mAUC and mECE from the run's saved test predictions."""
    if labels_csv is None or not labels_csv.is_file():
        return None
    pred = next((Path(run_dir) / p for p in TEST_PREDICTIONS if (Path(run_dir) / p).is_file()), None)
    if pred is None:
        return None
    try:
        report = evaluate_files(pred, labels_csv, bootstrap=bootstrap, seed=seed).report
    except CxrltError:
        return None
    figures = {key: report.get(key) for key in ("mAP", "mAP_ci", "mAUC", "mAUC_ci", "mECE", "n_images")}
    figures.update(predictions=pred.name, labels=labels_csv.name, bootstrap=bootstrap)
    return figures


def model_card(
    checkpoint: str | os.PathLike[str],
    sidecar: dict[str, Any],
    parameters: int,
    workspace: str | os.PathLike[str] | None = None,
    bootstrap: int = 200,
) -> dict[str, Any]:
    """The card of a checkpoint inside a run folder (``<run>/checkpoints/<which>.safetensors``)."""
    run_dir = Path(checkpoint).parent.parent
    model = sidecar.get("model") or {}
    csv = training_csv(run_dir, workspace)
    data = training_data(csv)
    labels = csv.with_name("test_labels.csv") if csv is not None else None
    use = INTENDED_USE + (" " + SYNTHETIC_NOTE if data.get("synthetic") else "")
    return {
        "run": sidecar.get("run_id") or run_dir.name,
        "checkpoint": f"{sidecar.get('which', Path(checkpoint).stem)} (epoch {sidecar.get('epoch', '?')})",
        "architecture": f"{model.get('backbone', '?')} backbone + {model.get('head', '?')} head",
        "parameters": parameters,
        "classes": len(model.get("class_names") or []),
        "input": input_description(sidecar),
        "training_data": data,
        "recipe": sidecar.get("recipe"),
        "validation": sidecar.get("metrics") or {},
        "test": test_figures(run_dir, labels, bootstrap),
        "intended_use": use,
    }


def card_lines(card: dict[str, Any]) -> list[str]:
    """The card as short Markdown lines for a page or a report."""
    data = card["training_data"]
    size = f", {data['images']} images" if data.get("images") else ""
    lines = [
        f"**Model** {card['run']} · {card['checkpoint']} · {card['architecture']} · "
        f"{card['parameters'] / 1e6:.1f} M parameters · {card['classes']} findings",
        f"**Input** {card['input']}",
        f"**Training data** {data.get('description')}{size}",
    ]
    val = card.get("validation") or {}
    if val.get("mAP") is not None:
        lines.append(f"**Validation** mAP {val['mAP']:.3f}" + (f", mAUC {val['mAUC']:.3f}" if val.get("mAUC") else ""))
    test = card.get("test")
    if test and test.get("mAP") is not None:
        ci = test.get("mAP_ci")
        interval = f" (95 % CI {ci[0]:.3f}–{ci[1]:.3f}, {test['bootstrap']} bootstrap resamples)" if ci else ""
        extra = f", mAUC {test['mAUC']:.3f}" if test.get("mAUC") is not None else ""
        lines.append(f"**Test** mAP {test['mAP']:.3f}{interval}{extra} on {test['labels']}")
    else:
        lines.append("**Test** no scored test predictions for this run")
    lines.append(f"**Intended use** {card['intended_use']}")
    return lines
