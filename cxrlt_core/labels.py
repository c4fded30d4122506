"""Label spaces of the CXR-LT challenges: ordered class names, in-distribution vs unseen, Normal.

A ``LabelSpace`` is the contract between CSV columns, model outputs and submission columns.
Registered spaces: ``cxrlt2026`` (PadChest based, 30 + 6 unseen), ``cxrlt2024`` (MIMIC-CXR based,
40 + 5 unseen) and ``nih14`` (ChestX-ray14, 14 findings + No Finding). Any other space can be
built from a CSV header with :func:`label_space_from_columns`.
"""

from __future__ import annotations

import csv
import dataclasses
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from cxrlt_core.errors import InputError
from cxrlt_core.registry import Registry

HEAD_THRESHOLD = 0.10
TAIL_THRESHOLD = 0.01
BUCKETS = ("head", "medium", "tail")


def fold_name(name: str) -> str:
    """Case- and spacing-insensitive key used to match column names to classes."""
    return " ".join(str(name).strip().lower().replace("_", " ").split())


@dataclasses.dataclass(frozen=True)
class LabelSpace:
    """An ordered set of classes.

    Attributes:
        name: registry name or a free name for a space read from a CSV.
        classes: every class, in-distribution first, in the order of model outputs and submissions.
        unseen: the classes held out of training (zero-shot, Task 2); a subset of ``classes``.
        normal: the "no finding" class used by normal gating, or ``None``.
        output_names: canonical name → spelling written in submission files (e.g. ``Goiter`` → ``goiter``).
        aliases: extra accepted input spellings → canonical name (case is always ignored).
    """

    name: str
    classes: tuple[str, ...]
    unseen: tuple[str, ...] = ()
    normal: str | None = None
    output_names: Mapping[str, str] = dataclasses.field(default_factory=dict)
    aliases: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", tuple(self.classes))
        object.__setattr__(self, "unseen", tuple(self.unseen))
        object.__setattr__(self, "output_names", dict(self.output_names))
        object.__setattr__(self, "aliases", dict(self.aliases))
        folded = [fold_name(c) for c in self.classes]
        if len(set(folded)) != len(folded):
            dupes = sorted({c for c in self.classes if folded.count(fold_name(c)) > 1})
            raise InputError(f"label space {self.name!r} repeats classes: {', '.join(dupes)}")
        for group, names in (
            ("unseen", self.unseen),
            ("output_names", self.output_names),
            ("aliases", self.aliases.values()),
        ):
            missing = [n for n in names if n not in self.classes]
            if missing:
                raise InputError(f"label space {self.name!r}: {group} names unknown classes {missing}")
        if self.normal is not None and self.normal not in self.classes:
            raise InputError(f"label space {self.name!r}: Normal class {self.normal!r} is not one of its classes")

    # -- views -------------------------------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_distribution(self) -> tuple[str, ...]:
        """Classes with training labels (Task 1), in order."""
        return tuple(c for c in self.classes if c not in self.unseen)

    @property
    def normal_index(self) -> int | None:
        """Index of the Normal class among ``in_distribution``, or ``None``."""
        return None if self.normal is None else self.in_distribution.index(self.normal)

    def subset(self, which: str) -> tuple[str, ...]:
        """``"all"``, ``"id"`` (in-distribution) or ``"unseen"`` classes."""
        if which == "all":
            return self.classes
        if which == "id":
            return self.in_distribution
        if which == "unseen":
            return self.unseen
        raise InputError(f"unknown class subset {which!r}; choose all, id or unseen")

    def output_name(self, name: str) -> str:
        """The spelling of ``name`` in submission files."""
        return self.output_names.get(name, name)

    def with_output_names(self, output_names: Mapping[str, str]) -> LabelSpace:
        """A copy whose submission spellings are ``output_names`` (canonical → spelling)."""
        return dataclasses.replace(self, output_names={**self.output_names, **output_names})

    # -- matching columns --------------------------------------------------------------------------------------
    def resolve(self, column: str) -> str | None:
        """The canonical class a column name stands for (case-insensitive, aliases), or ``None``."""
        key = fold_name(column)
        for name in self.classes:
            if fold_name(name) == key or fold_name(self.output_name(name)) == key:
                return name
        for alias, name in self.aliases.items():
            if fold_name(alias) == key:
                return name
        return None

    def match_columns(self, columns: Iterable[str]) -> dict[str, str]:
        """Map canonical class → column name for every column that names a class.

        Raises:
            InputError: two columns name the same class.
        """
        found: dict[str, str] = {}
        for column in columns:
            name = self.resolve(column)
            if name is None:
                continue
            if name in found:
                raise InputError(f"columns {found[name]!r} and {column!r} both name class {name!r}")
            found[name] = column
        return found

    def to_dict(self) -> dict[str, object]:
        """A JSON-friendly description (stored in checkpoints and predictions)."""
        return {
            "name": self.name,
            "classes": list(self.classes),
            "unseen": list(self.unseen),
            "normal": self.normal,
            "output_names": dict(self.output_names),
            "aliases": dict(self.aliases),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> LabelSpace:
        """Inverse of :meth:`to_dict`."""
        return cls(
            name=str(data["name"]),
            classes=tuple(data["classes"]),  # type: ignore[arg-type]
            unseen=tuple(data.get("unseen", ())),  # type: ignore[arg-type]
            normal=data.get("normal"),  # type: ignore[arg-type]
            output_names=dict(data.get("output_names", {})),  # type: ignore[arg-type]
            aliases=dict(data.get("aliases", {})),  # type: ignore[arg-type]
        )


LABEL_SPACES: Registry[LabelSpace] = Registry("label space")

CXRLT2026_ID = (
    "Normal", "aortic elongation", "cardiomegaly", "pleural effusion", "Nodule", "atelectasis",
    "pleural thickening", "aortic atheromatosis", "Support Devices", "alveolar pattern", "fracture", "Hernia",
    "Emphysema", "azygos lobe", "Hydropneumothorax", "Kyphosis", "Mass", "Pneumothorax", "Subcutaneous Emphysema",
    "pneumoperitoneo", "vascular hilar enlargement", "vertebral degenerative changes", "hyperinflated lung",
    "interstitial pattern", "central venous catheter", "hypoexpansion", "bronchiectasis", "hemidiaphragm elevation",
    "sternotomy", "calcified densities",
)  # fmt: skip
CXRLT2026_UNSEEN = ("Scoliosis", "Osteopenia", "Bulla", "Infarction", "Adenopathy", "Goiter")

# CXR-LT 2024 (MIMIC-CXR): the 40 Task 1 classes in the order of the overview paper's supplementary
# table 1 (spelling of "Enlarged Cardiomediastinum" corrected), then the 5 unseen classes of Task 3.
CXRLT2024_ID = (
    "Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Enlarged Cardiomediastinum", "Fracture", "Lung Lesion",
    "Lung Opacity", "Pleural Effusion", "Pneumonia", "Pneumothorax", "Support Devices", "Granuloma", "Normal",
    "Calcification of the Aorta", "Emphysema", "Fibrosis", "Hernia", "Infiltration", "Mass", "Nodule",
    "Pleural Thickening", "Pneumomediastinum", "Pneumoperitoneum", "Subcutaneous Emphysema", "Tortuous Aorta",
    "Adenopathy", "Azygos Lobe", "Clavicle Fracture", "Fissure", "Hydropneumothorax", "Infarction", "Kyphosis",
    "Lobar Atelectasis", "Pleural Other", "Pulmonary Embolism", "Pulmonary Hypertension", "Rib Fracture",
    "Round(ed) Atelectasis", "Tuberculosis",
)  # fmt: skip
CXRLT2024_UNSEEN = ("Bulla", "Cardiomyopathy", "Hilum", "Osteopenia", "Scoliosis")

NIH14 = (
    "No Finding", "Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
    "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia",
)  # fmt: skip

#: The registered label spaces' names: spelled here only; everything else imports them or reads them from data.
CXRLT2026_SPACE = "cxrlt2026"
CXRLT2024_SPACE = "cxrlt2024"
NIH14_SPACE = "nih14"
#: The demo data set's label space (``cxrlt data make-demo`` draws the CXR-LT 2026 classes).
DEMO_LABEL_SPACE = CXRLT2026_SPACE

LABEL_SPACES.add(
    CXRLT2026_SPACE,
    LabelSpace(CXRLT2026_SPACE, CXRLT2026_ID + CXRLT2026_UNSEEN, unseen=CXRLT2026_UNSEEN, normal="Normal"),
)
LABEL_SPACES.add(
    CXRLT2024_SPACE,
    LabelSpace(
        CXRLT2024_SPACE,
        CXRLT2024_ID + CXRLT2024_UNSEEN,
        unseen=CXRLT2024_UNSEEN,
        normal="Normal",
        aliases={
            "Rounded Atelectasis": "Round(ed) Atelectasis",
            "Enlarged Cardiomeastinum": "Enlarged Cardiomediastinum",
        },
    ),
)
LABEL_SPACES.add(
    NIH14_SPACE,
    LabelSpace(NIH14_SPACE, NIH14, normal="No Finding", aliases={"Pleural Thickening": "Pleural_Thickening"}),
)


def get_label_space(name: str) -> LabelSpace:
    """The registered label space called ``name`` (an ``InputError`` lists the choices otherwise)."""
    return LABEL_SPACES.get(name)


def as_label_space(value: LabelSpace | Mapping[str, object] | str | None) -> LabelSpace | None:
    """The label space a file names: a :class:`LabelSpace`, its :meth:`LabelSpace.to_dict` form (as stored in
    checkpoints, predictions and data-set descriptions) or a registered name; ``None`` when nothing is named.

    A stored space whose name is registered and whose classes match the registered ones is the registered space
    (with its aliases); any other stored space is rebuilt as stored.
    """
    if value is None or isinstance(value, LabelSpace):
        return value
    if isinstance(value, str):
        return get_label_space(value)
    if isinstance(value, Mapping):
        stored = LabelSpace.from_dict(value)
        if stored.name in LABEL_SPACES and LABEL_SPACES.get(stored.name).classes == stored.classes:
            return LABEL_SPACES.get(stored.name).with_output_names(dict(stored.output_names))
        return stored
    raise InputError(f"not a label space: {value!r}")


def list_label_spaces() -> list[str]:
    """Names of every registered label space."""
    return LABEL_SPACES.names()


DEFAULT_META_COLUMNS = (
    "ImageID", "image", "Image Index", "Path", "path", "StudyDate_DICOM", "StudyDate", "PatientID", "Patient ID",
    "subject_id", "study_id", "dicom_id", "Projection", "ViewPosition", "View Position", "MethodLabel", "split",
    "Sex", "Age", "Patient Age", "Patient Gender", "Follow-up #", "Finding Labels", "report",
    # canonical metadata and its aliases (cxrlt_core.data.metadata reads them; never classes)
    "sex", "age", "view", "site", "study", "PatientSex", "PatientSex_DICOM", "Patient Sex", "Gender", "PatientAge",
    "View", "Site", "Hospital", "Institution", "StudyID", "Study ID", "PatientBirth", "Patient Birth", "BirthYear",
    "Study Date",
)  # fmt: skip
NORMAL_NAMES = ("normal", "no finding")


def label_space_from_columns(
    columns: Sequence[str],
    name: str = "custom",
    meta_columns: Iterable[str] = DEFAULT_META_COLUMNS,
    unseen: Iterable[str] = (),
) -> LabelSpace:
    """Build a label space from a CSV header: every column that is not metadata is a class.

    The Normal class is the column called ``Normal`` or ``No Finding`` (any case), if present.
    """
    meta = {fold_name(c) for c in meta_columns}
    classes = tuple(c for c in columns if fold_name(c) not in meta and not c.startswith("Unnamed:"))
    if not classes:
        raise InputError(f"no class columns found among {list(columns)}")
    normal = next((c for c in classes if fold_name(c) in NORMAL_NAMES), None)
    return LabelSpace(name, classes, unseen=tuple(unseen), normal=normal)


def label_space_from_csv(path: str | os.PathLike[str], name: str | None = None, **kwargs: object) -> LabelSpace:
    """Read only the header of the CSV at ``path`` and build a label space from it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: labels file not found")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        header = next(csv.reader(handle), None)
    if not header:
        raise InputError(f"{path}: empty file, no CSV header")
    return label_space_from_columns(header, name=name or path.stem, **kwargs)  # type: ignore[arg-type]


def prevalence(labels: np.ndarray) -> np.ndarray:
    """Per-class share of images that are positive, among images whose label is known (NaN = unknown)."""
    labels = np.asarray(labels, dtype=float)
    known = ~np.isnan(labels)
    positives = np.where(known, labels > 0.5, False).sum(axis=0)
    counts = known.sum(axis=0)
    return np.divide(positives, counts, out=np.zeros(labels.shape[1]), where=counts > 0)


def assign_buckets(
    train_labels: np.ndarray,
    class_names: Sequence[str],
    head: float = HEAD_THRESHOLD,
    tail: float = TAIL_THRESHOLD,
) -> dict[str, str]:
    """Head / medium / tail per class by per-image prevalence in the training labels.

    CXR-LT convention (overview paper, table 5): head > 10 %, medium 1–10 %, tail < 1 %.
    """
    train_labels = np.asarray(train_labels, dtype=float)
    if train_labels.ndim != 2 or train_labels.shape[1] != len(class_names):
        raise InputError(f"training labels have shape {train_labels.shape}, expected (n, {len(class_names)})")
    prev = prevalence(train_labels)
    return {name: "head" if p > head else ("tail" if p < tail else "medium") for name, p in zip(class_names, prev)}
