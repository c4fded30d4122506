"""``cxrlt capsule check``: verify a capsule's hashes, re-score its figures, optionally re-run its inference."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from cxrlt_core.capsule import (
    CAPSULE_KIND,
    CAPSULE_VERSION,
    DIFFERS,
    MANIFEST_FILE,
    REPRODUCED,
    RERUN_FIGURE_TOLERANCE,
    RERUN_PROBABILITY_TOLERANCE,
    RESCORE_TOLERANCE,
    UNCHECKED,
)
from cxrlt_core.capsule.hashes import parse_sha256_lines, sha256_file
from cxrlt_core.capsule.scoring import ScorerSpec, compare, score
from cxrlt_core.data.manifest import read_manifest
from cxrlt_core.errors import CxrltError, InputError
from cxrlt_core.inference.predict import predict
from cxrlt_core.predictions import read_predictions

PathLike = str | os.PathLike[str]
Progress = Callable[[int, int], None]
MAX_NAMED = 20  # changed or missing images named one by one; the rest are counted


@dataclasses.dataclass
class CheckItem:
    """One verdict: a file, an image, a figure or the re-run predictions."""

    kind: str
    name: str
    status: str
    detail: str = ""

    def line(self) -> str:
        return f"{self.status:<17}  {self.kind} {self.name}" + (f": {self.detail}" if self.detail else "")


@dataclasses.dataclass
class CheckReport:
    """Every verdict of a capsule check."""

    capsule: Path
    items: list[CheckItem]

    def count(self, status: str) -> int:
        return sum(item.status == status for item in self.items)

    @property
    def reproduced(self) -> bool:
        return all(item.status == REPRODUCED for item in self.items)

    def summary(self) -> str:
        counts = ", ".join(f"{self.count(s)} {s}" for s in (REPRODUCED, DIFFERS, UNCHECKED) if self.count(s))
        verdict = "reproduced" if self.reproduced else "NOT reproduced"
        return f"{self.capsule}: {verdict} ({counts})"


@contextlib.contextmanager
def open_capsule(path: PathLike) -> Iterator[tuple[Path, dict[str, Any]]]:
    """The capsule's folder (a zip is extracted to a temporary folder, member names checked) and its manifest."""
    path = Path(path)
    if path.is_dir():
        yield path, _read_manifest(path)
        return
    if not path.is_file():
        raise InputError(f"{path}: capsule not found")
    if not zipfile.is_zipfile(path):
        raise InputError(f"{path}: not a capsule folder or zip")
    with tempfile.TemporaryDirectory(prefix="cxrlt-capsule-") as tmp, zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            pure = PurePosixPath(name)
            if pure.is_absolute() or ".." in pure.parts or "\\" in name:
                raise InputError(f"{path}: member {name!r} would leave the capsule; not extracted")
        archive.extractall(tmp)
        yield Path(tmp), _read_manifest(Path(tmp), path)


def _read_manifest(folder: Path, source: Path | None = None) -> dict[str, Any]:
    where = source or folder
    try:
        manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{where}: no {MANIFEST_FILE}; not a cxrlt capsule") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{where}: {MANIFEST_FILE} is not readable JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("kind") != CAPSULE_KIND:
        raise InputError(f"{where}: {MANIFEST_FILE} is not a cxrlt capsule manifest")
    if manifest.get("version") != CAPSULE_VERSION:
        raise InputError(f"{where}: capsule version {manifest.get('version')} is not {CAPSULE_VERSION}")
    return manifest


def _file_item(kind: str, entry: Mapping[str, Any], path: Path | None = None) -> CheckItem:
    """A recorded file's digest now: reproduced, differs (naming the file) or cannot be checked (missing)."""
    path = path or Path(entry["path"])
    if not path.is_file():
        return CheckItem(kind, str(path), UNCHECKED, "file missing")
    try:
        digest = sha256_file(path)
    except InputError as exc:
        return CheckItem(kind, str(path), UNCHECKED, str(exc))
    if digest != entry["sha256"]:
        return CheckItem(kind, str(path), DIFFERS, f"sha256 {digest[:12]}… is not the recorded {entry['sha256'][:12]}…")
    return CheckItem(kind, str(path), REPRODUCED, "sha256 matches")


def _copies(folder: Path, manifest: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    entries = [manifest["predictions"], *manifest.get("recipes", []), *manifest.get("extra_files", [])]
    entries += [e for e in (manifest["predictions"].get("sidecar"),) if e]
    entries += [c["sidecar"] for c in manifest.get("checkpoints", []) if c.get("sidecar")]
    return entries


def file_items(folder: Path, manifest: Mapping[str, Any], labels: Path | None) -> list[CheckItem]:
    """The capsule's own copies, then the label CSVs, checkpoints and calibration where the manifest says."""
    items = [_file_item("capsule file", e, folder / e["copy"]) for e in _copies(folder, manifest)]
    items.append(_file_item("ids file", manifest["ids"]))
    if manifest.get("labels"):
        items.append(_file_item("labels file", manifest["labels"], labels))
    if manifest.get("train_labels"):
        items.append(_file_item("training labels file", manifest["train_labels"]))
    for entry in manifest.get("checkpoints", []):
        items.append(_file_item("checkpoint", entry))
        if entry.get("sidecar"):
            items.append(_file_item("checkpoint sidecar", entry["sidecar"]))
    if manifest.get("calibration"):
        items.append(_file_item("calibration file", manifest["calibration"]))
    items += [_file_item("packed file", entry) for entry in manifest.get("extra_files", [])]
    return items


def image_items(folder: Path, manifest: Mapping[str, Any], root: Path, progress: Progress | None) -> list[CheckItem]:
    """Every listed image's digest under ``root``: each changed or missing one named (up to ``MAX_NAMED``)."""
    info = manifest["images"]
    listing = _file_item("capsule file", {"sha256": info["sha256"]}, folder / info["list"])
    if listing.status != REPRODUCED:
        return [listing]
    if not root.is_dir():
        return [CheckItem("images", str(root), UNCHECKED, "image folder missing (give --images DIR)")]
    rows = parse_sha256_lines((folder / info["list"]).read_text(encoding="utf-8"), info["list"])
    bad: list[CheckItem] = []
    resolved_root = root.resolve()
    for i, (digest, rel) in enumerate(rows):
        path = (root / rel).resolve()
        if resolved_root not in path.parents:
            item = CheckItem("image", rel, UNCHECKED, "path leaves the image folder; not opened")
        else:
            item = _file_item("image", {"sha256": digest}, path)
        if item.status != REPRODUCED:
            bad.append(item)
        if progress is not None:
            progress(i + 1, len(rows))
    named = bad[:MAX_NAMED]
    if len(bad) > MAX_NAMED:
        named.append(CheckItem("images", "…", bad[-1].status, f"{len(bad) - MAX_NAMED} more not reproduced"))
    whole = DIFFERS if any(b.status == DIFFERS for b in bad) else (UNCHECKED if bad else REPRODUCED)
    summary = CheckItem("images", str(root), whole, f"{len(rows) - len(bad)} of {len(rows)} files match")
    return [*named, summary]


def figure_items(
    reported: Mapping[str, float | None], found: Mapping[str, float | None] | None, tolerance: float, prefix: str,
    missing: str = "",
) -> list[CheckItem]:  # fmt: skip
    """One item per reported figure: reproduced / differs within ``tolerance`` / cannot be checked (``missing``)."""
    items = []
    for name, value in reported.items():
        if found is None:
            items.append(CheckItem(prefix, name, UNCHECKED, missing))
            continue
        now = found.get(name)
        same = compare(value, now, tolerance)
        detail = f"reported {_fmt(value)}, {prefix} {_fmt(now)} (tolerance {tolerance:g})"
        items.append(CheckItem(prefix, name, REPRODUCED if same else DIFFERS, detail))
    return items


def _fmt(value: float | None) -> str:
    return "none" if value is None else f"{value:.6f}"


def _rescore(pred: Any, manifest: Mapping[str, Any], labels: Path | None) -> tuple[dict | None, str]:
    """Figures of ``pred`` with the capsule's scorer, or ``None`` and why they cannot be computed."""
    if not manifest.get("labels"):
        return None, "the capsule has no labels"
    labels = labels or Path(manifest["labels"]["path"])
    if not labels.is_file():
        return None, f"labels file missing: {labels}"
    train = manifest.get("train_labels")
    if train and not Path(train["path"]).is_file():
        return None, f"training labels file missing: {train['path']}"
    spec = ScorerSpec.from_dict(manifest["scorer"], MANIFEST_FILE)
    try:
        return score(pred, labels, train["path"] if train else None, spec), ""
    except CxrltError as exc:
        return None, f"scoring failed: {exc}"


def check_capsule(
    capsule: PathLike,
    images: PathLike | None = None,
    labels: PathLike | None = None,
    rerun_inference: bool = False,
    progress: Progress | None = None,
) -> CheckReport:
    """Check every hash of ``capsule``, re-score its figures and, with ``rerun_inference``, predict again.

    Args:
        images: the image folder (default: where the capsule says).
        labels: the labels CSV (default: where the capsule says).
        progress: ``progress(done, total)`` while hashing images.
    """
    with open_capsule(capsule) as (folder, manifest):
        labels_path = Path(labels) if labels else None
        try:
            root = Path(images) if images else Path(manifest["images"]["root"])
            items = file_items(folder, manifest, labels_path)
            items += image_items(folder, manifest, root, progress)
            pred = read_predictions(folder / manifest["predictions"]["copy"])
            reported = manifest.get("figures") or {}
            found, why = _rescore(pred, manifest, labels_path)
            items += figure_items(reported, found, RESCORE_TOLERANCE, "re-scored", why)
            if rerun_inference:
                items += rerun_items(manifest, pred, root, labels_path)
        except (KeyError, TypeError, AttributeError) as exc:
            raise InputError(f"{capsule}: {MANIFEST_FILE} is malformed ({type(exc).__name__}: {exc})") from None
    return CheckReport(Path(capsule), items)


def rerun_items(manifest: Mapping[str, Any], pred: Any, root: Path, labels: Path | None) -> list[CheckItem]:
    """Predict the listed images again with the recorded checkpoints and settings; compare and re-score."""
    reported = manifest.get("figures") or {}
    missing = [e["path"] for e in manifest.get("checkpoints", []) if not Path(e["path"]).is_file()]
    if not root.is_dir():
        missing.append(f"image folder {root}")
    why = "missing: " + ", ".join(missing) if missing else ""
    if not manifest.get("checkpoints"):
        why = "the predictions name no cxrlt checkpoint (zero-shot scores are re-checked by re-scoring only)"
    if why:
        return [CheckItem("re-run", "predictions", UNCHECKED, why), *figure_items(reported, None, 0, "re-run", why)]
    with tempfile.TemporaryDirectory(prefix="cxrlt-rerun-") as tmp:
        out = Path(tmp) / "rerun.parquet"
        try:
            _predict_again(manifest, root, out)
        except CxrltError as exc:
            why = f"inference failed: {exc}"
            return [CheckItem("re-run", "predictions", UNCHECKED, why), *figure_items(reported, None, 0, "re-run", why)]
        again = read_predictions(out)
        items = [_probability_item(pred, again)]
        found, why = _rescore(again, manifest, labels)
    return items + figure_items(reported, found, RERUN_FIGURE_TOLERANCE, "re-run", why)


def _predict_again(manifest: Mapping[str, Any], root: Path, out: Path) -> None:
    provenance = manifest["predictions"]["provenance"]
    gating = provenance.get("gating") or {}
    calibration = manifest.get("calibration")
    ids = read_manifest(manifest["ids"]["path"], image_root=root, require_labels=False,
                        label_space=manifest["scorer"].get("label_space"))  # fmt: skip
    predict(
        [e["path"] for e in manifest["checkpoints"]], ids, out, weights=provenance.get("weights"),
        tta=(provenance.get("tta") or {}).get("set", "none"), merge=provenance.get("merge", "mean"),
        gating_alpha=float(gating.get("alpha", 0.0)), gating_form=gating.get("form", "power"),
        calibration=calibration["path"] if calibration else None, num_workers=0, show_progress=False,
    )  # fmt: skip


def _probability_item(pred: Any, again: Any) -> CheckItem:
    """The largest difference between the capsule's probabilities and the re-run's (rows by id, columns by name)."""
    if list(pred.classes) != list(again.classes) or set(pred.ids) != set(again.ids):
        return CheckItem("re-run", "predictions", DIFFERS, "the re-run predicts other images or classes")
    order = {image_id: i for i, image_id in enumerate(again.ids)}
    aligned = again.scores[[order[i] for i in pred.ids]]
    gap = np.abs(aligned - pred.scores)
    worst = np.unravel_index(int(np.argmax(gap)), gap.shape)
    detail = (f"max |Δ probability| {gap.max():.2e} (tolerance {RERUN_PROBABILITY_TOLERANCE:g}) at "
              f"{pred.ids[worst[0]]} / {pred.classes[worst[1]]}")  # fmt: skip
    status = REPRODUCED if gap.max() <= RERUN_PROBABILITY_TOLERANCE else DIFFERS
    return CheckItem("re-run", "predictions", status, detail)
