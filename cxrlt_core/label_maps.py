"""Label maps between label spaces, by meaning: score a model trained in one space on another data set's labels.

A map names a source and a target space and, for each target class it covers, the source classes it stands for:
one member renames a class (NIH ``Effusion`` -> CXR-LT 2026 ``pleural effusion``), several merge (CXR-LT 2024
``Fracture``, ``Rib Fracture``, ``Clavicle Fracture`` -> ``fracture``) and a source class in no entry is dropped
(NIH ``Pneumonia``: no CXR-LT 2026 class means it). A merged score is the maximum of its members' scores (the
probability that at least one is present is at least that); a merged label is positive when any member is, negative
when every member is negative, and unknown otherwise. Maps are read from the registry (``LABEL_MAPS``) or from a
YAML/JSON file ``{name, source, target, map: {target class: [source classes]}}``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import yaml

from cxrlt_core.data.manifest import Manifest
from cxrlt_core.errors import InputError
from cxrlt_core.labels import CXRLT2024_SPACE, CXRLT2026_SPACE, NIH14_SPACE, get_label_space
from cxrlt_core.predictions import Predictions
from cxrlt_core.registry import Registry


@dataclasses.dataclass(frozen=True)
class LabelMap:
    """``entries``: target class -> source classes (in the source space's spelling), in target order."""

    name: str
    source: str
    target: str
    entries: Mapping[str, tuple[str, ...]]
    note: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "entries", {t: tuple(m) for t, m in self.entries.items()})
        seen: dict[str, str] = {}
        for target, members in self.entries.items():
            if not members:
                raise InputError(f"label map {self.name!r}: {target!r} has no source class")
            for member in members:
                if member in seen:
                    raise InputError(f"label map {self.name!r}: {member!r} feeds both {seen[member]!r} and {target!r}")
                seen[member] = target

    def check(self, source_classes: Sequence[str], target_classes: Sequence[str] | None = None) -> None:
        """Every source member must be a source class, every target a target class (when given)."""
        unknown = sorted({m for ms in self.entries.values() for m in ms} - set(source_classes))
        if unknown:
            raise InputError(f"label map {self.name!r}: {unknown} are not classes of {self.source!r}")
        if target_classes is not None:
            extra = sorted(set(self.entries) - set(target_classes))
            if extra:
                raise InputError(f"label map {self.name!r}: {extra} are not classes of {self.target!r}")

    def dropped(self, source_classes: Sequence[str]) -> list[str]:
        """Source classes no target class stands for."""
        used = {m for ms in self.entries.values() for m in ms}
        return [c for c in source_classes if c not in used]

    def apply(self, matrix: np.ndarray, classes: Sequence[str], kind: str = "scores") -> tuple[np.ndarray, list[str]]:
        """Map an (n, C) matrix whose columns are ``classes`` (source space) to the target classes it covers.

        ``kind="scores"``: max of the members. ``kind="labels"``: 1 if any member is 1, 0 if all are 0, else NaN.
        Target classes whose members are all absent from ``classes`` are left out.
        """
        matrix = np.asarray(matrix, dtype=np.float64)
        index = {c: j for j, c in enumerate(classes)}
        columns, names = [], []
        for target, members in self.entries.items():
            present = [index[m] for m in members if m in index]
            if not present:
                continue
            block = matrix[:, present]
            if kind == "labels":
                any_pos = np.nan_to_num(block, nan=0.0).max(axis=1) == 1
                all_neg = (block == 0).all(axis=1)
                columns.append(np.where(any_pos, 1.0, np.where(all_neg, 0.0, np.nan)))
            else:
                columns.append(block.max(axis=1))
            names.append(target)
        if not names:
            raise InputError(f"label map {self.name!r}: none of its source classes is among {list(classes)[:6]}")
        return np.stack(columns, axis=1), names


LABEL_MAPS: Registry[LabelMap] = Registry("label map")

LABEL_MAPS.add(
    "nih14_to_cxrlt2026",
    LabelMap(
        "nih14_to_cxrlt2026",
        NIH14_SPACE,
        CXRLT2026_SPACE,
        {
            "Normal": ("No Finding",),
            "cardiomegaly": ("Cardiomegaly",),
            "pleural effusion": ("Effusion",),
            "Nodule": ("Nodule",),
            "atelectasis": ("Atelectasis",),
            "pleural thickening": ("Pleural_Thickening",),
            "Hernia": ("Hernia",),
            "Emphysema": ("Emphysema",),
            "Mass": ("Mass",),
            "Pneumothorax": ("Pneumothorax",),
        },  # fmt: skip
        note="dropped: Infiltration, Pneumonia, Consolidation, Edema, Fibrosis (no CXR-LT 2026 class means them; "
        "infiltration and consolidation are diagnoses or descriptions that span alveolar and interstitial patterns)",
    ),
)
LABEL_MAPS.add(
    "cxrlt2024_to_cxrlt2026",
    LabelMap(
        "cxrlt2024_to_cxrlt2026",
        CXRLT2024_SPACE,
        CXRLT2026_SPACE,
        {
            "Normal": ("Normal",),
            "aortic elongation": ("Tortuous Aorta",),
            "cardiomegaly": ("Cardiomegaly",),
            "pleural effusion": ("Pleural Effusion",),
            "Nodule": ("Nodule",),
            "atelectasis": ("Atelectasis", "Lobar Atelectasis", "Round(ed) Atelectasis"),
            "pleural thickening": ("Pleural Thickening",),
            "aortic atheromatosis": ("Calcification of the Aorta",),
            "Support Devices": ("Support Devices",),
            "fracture": ("Fracture", "Rib Fracture", "Clavicle Fracture"),
            "Hernia": ("Hernia",),
            "Emphysema": ("Emphysema",),
            "azygos lobe": ("Azygos Lobe",),
            "Hydropneumothorax": ("Hydropneumothorax",),
            "Kyphosis": ("Kyphosis",),
            "Mass": ("Mass",),
            "Pneumothorax": ("Pneumothorax",),
            "Subcutaneous Emphysema": ("Subcutaneous Emphysema",),
            "pneumoperitoneo": ("Pneumoperitoneum",),
            "Scoliosis": ("Scoliosis",),
            "Osteopenia": ("Osteopenia",),
            "Bulla": ("Bulla",),
            "Infarction": ("Infarction",),
            "Adenopathy": ("Adenopathy",),
        },  # fmt: skip
        note="merged: fracture (3 MIMIC classes), atelectasis (3); dropped: the MIMIC classes without a CXR-LT 2026 "
        "counterpart (Consolidation, Edema, Lung Opacity, Pneumonia, ...)",
    ),
)


def _from_mapping(data: Mapping[str, object], source: str) -> LabelMap:
    try:
        entries = {str(t): (m,) if isinstance(m, str) else tuple(str(x) for x in m)  # type: ignore[union-attr]
                   for t, m in dict(data["map"]).items()}  # type: ignore[arg-type]  # fmt: skip
        return LabelMap(str(data.get("name", Path(source).stem)), str(data["source"]), str(data["target"]), entries)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{source}: not a label map (needs source, target and map: {exc})") from None


def load_label_map(spec: str | os.PathLike[str]) -> LabelMap:
    """A registered map by name, or a ``.yaml`` / ``.json`` map file; checked against the registered spaces."""
    text = str(spec)
    if text in LABEL_MAPS:
        label_map = LABEL_MAPS.get(text)
    elif Path(text).suffix.lower() in (".yaml", ".yml", ".json"):
        path = Path(text)
        try:
            raw = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"{path}: cannot read label map ({exc.strerror or exc})") from None
        try:
            data = json.loads(raw) if path.suffix.lower() == ".json" else yaml.safe_load(raw)
        except (ValueError, yaml.YAMLError) as exc:
            raise InputError(f"{path}: not valid {path.suffix[1:].upper()}: {exc}") from None
        if not isinstance(data, Mapping):
            raise InputError(f"{path}: a label map must be a mapping")
        label_map = _from_mapping(data, str(path))
    else:
        LABEL_MAPS.get(text)  # raises with the registered names
        raise AssertionError("unreachable")
    label_map.check(get_label_space(label_map.source).classes, get_label_space(label_map.target).classes)
    return label_map


def _in_space(classes: Sequence[str], space_name: str) -> list[str] | None:
    """The canonical names of ``classes`` in a registered space, or ``None`` if any is not one of its classes."""
    space = get_label_space(space_name)
    resolved = [space.resolve(c) for c in classes]
    return None if any(r is None for r in resolved) else resolved  # type: ignore[return-value]


def map_predictions(pred: Predictions, label_map: LabelMap) -> tuple[Predictions, bool]:
    """``pred`` in the map's target space (max over merged members); ``False`` when it already was in the target."""
    if _in_space(pred.classes, label_map.target) is not None:
        return pred, False
    source = _in_space(pred.classes, label_map.source)
    if source is None:
        raise InputError(f"{pred.name}: its classes are in neither {label_map.source!r} nor {label_map.target!r}")
    scores, names = label_map.apply(pred.scores, source, kind="scores")
    metadata = {**pred.metadata, "label_map": label_map.name}
    return dataclasses.replace(pred, scores=scores, classes=tuple(names), metadata=metadata), True


def map_manifest(manifest: Manifest, label_map: LabelMap) -> tuple[Manifest, bool]:
    """``manifest``'s labels in the target space (any member positive); ``False`` when already in the target."""
    if _in_space(manifest.classes, label_map.target) is not None:
        return manifest, False
    source = _in_space(manifest.classes, label_map.source)
    if source is None:
        raise InputError(f"{manifest.name}: its classes are in neither {label_map.source!r} nor {label_map.target!r}")
    labels, names = label_map.apply(manifest.labels, source, kind="labels")
    target = get_label_space(label_map.target)
    return dataclasses.replace(manifest, labels=labels.astype(np.float32), classes=tuple(names), label_space=target,
                               missing_classes=tuple(c for c in target.classes if c not in names)), True  # fmt: skip
