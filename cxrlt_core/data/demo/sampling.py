"""Labels, patients and splits of the demo data set: PadChest's prevalence and co-occurrence with a flattened tail.

Target prevalence (``target_prevalence``). PadChest's frontal prevalence ``p`` of each finding (``padchest_stats.json``,
made by ``scripts/make_padchest_stats.py``) is flattened by

    p' = f + (p_top - f) * (p / p_top) ** gamma,    f = 0.0075, gamma = 0.75,

with ``p_top`` the largest in-distribution prevalence (Support Devices, 11.7 %). The map is strictly increasing (the
long-tailed order is kept), leaves the most common finding unchanged and lifts the rarest towards ``f``, so every
in-distribution class has at least 15 positives among 2,000 training images (Hydropneumothorax: 0.03 % → 0.87 %).
The six unseen classes get ``clip(p', 0.03, 0.06)`` in validation and test (Infarction, never seen in PadChest,
gets 3 %), and never occur in training images. ``Normal`` is not sampled: it is 1 exactly when no finding at all
(in-distribution or unseen) is drawn, as in PadChest, where Normal co-occurs with an unseen finding in < 0.2 % of
images. It comes out at about 42 % of training and 36 % of val/test images (PadChest frontal: 33 %, but 22 % of
PadChest images carry no label of the 36 at all).

Co-occurrence. Labels follow a Gaussian copula: each image gets a latent vector ``z ~ N(0, R)`` with ``R`` the
tetrachoric correlations of PadChest (``latent_correlation``), so pairs that co-occur in PadChest (effusion and
atelectasis, catheter and devices) co-occur here. Images of one patient share part of their latent vector
(``z = sqrt(s) z_patient + sqrt(1 - s) z_image``, ``s = PATIENT_SHARE``), so follow-up films repeat chronic findings.
Within each split, class ``c`` is positive on exactly ``round(p'_c n)`` images: those with the largest ``z_c``
(an exact-count copula: the marginals are met exactly, the dependence comes from the ranks). Two constraints from
PadChest are enforced: a central venous catheter is a support device (``IMPLIES``), and hypoexpansion and a
hyperinflated lung never co-occur (``MUTUALLY_EXCLUSIVE``).

Patients have a geometric number of frontal films (mean as in PadChest, at most ``MAX_IMAGES_PER_PATIENT``);
splits are made of whole patients.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
from pathlib import Path

import numpy as np

from cxrlt_core.errors import InputError
from cxrlt_core.labels import LabelSpace, get_label_space

STATS_FILE = Path(__file__).with_name("padchest_stats.json")
FLOOR = 0.0075
GAMMA = 0.75
UNSEEN_RANGE = (0.03, 0.06)
PATIENT_SHARE = 0.5
MAX_IMAGES_PER_PATIENT = 6
IMPLIES = {"central venous catheter": "Support Devices"}
MUTUALLY_EXCLUSIVE = (("hyperinflated lung", "hypoexpansion"),)
SPLITS = ("train", "val", "test")
FIRST_DATE = dt.date(2009, 1, 1)
DATE_SPAN_DAYS = 9 * 365

# independent random streams derived from the data set seed (numpy SeedSequence entropy = [seed, stream, index])
STREAM_LABELS, STREAM_PATIENT, STREAM_IMAGE = 1, 2, 3


@functools.lru_cache(maxsize=1)
def load_stats() -> dict:
    """The committed PadChest aggregate statistics (prevalence, co-occurrence, latent correlation)."""
    return json.loads(STATS_FILE.read_text(encoding="utf-8"))


def flatten_prevalence(p: np.ndarray | float, p_top: float, floor: float = FLOOR, gamma: float = GAMMA) -> np.ndarray:
    """``floor + (p_top - floor) * (p / p_top) ** gamma``: the demo's flattened tail (module docstring)."""
    p = np.asarray(p, dtype=float)
    return floor + (p_top - floor) * (p / p_top) ** gamma


def target_prevalence(space: LabelSpace | None = None) -> dict[str, float]:
    """Target prevalence of every finding (all classes but Normal) in the demo data set; unseen ones in val/test."""
    space = space or get_label_space("cxrlt2026")
    stats = load_stats()
    real = dict(zip(stats["classes"], stats["prevalence"]))
    findings = [c for c in space.classes if c != space.normal]
    p_top = max(real[c] for c in space.in_distribution if c != space.normal)
    targets = {}
    for name in findings:
        value = float(flatten_prevalence(real[name], p_top))
        if name in space.unseen:
            value = float(np.clip(value, *UNSEEN_RANGE))
        targets[name] = round(value, 6)
    return targets


def positives_count(prevalence: float, n: int) -> int:
    """The exact number of positives of a class with target ``prevalence`` among ``n`` images (half up)."""
    return int(np.floor(prevalence * n + 0.5))


@dataclasses.dataclass
class DemoCohort:
    """Who is in the demo data set: one row per image, in file order (train, then val, then test)."""

    classes: tuple[str, ...]
    image_ids: list[str]
    patient_ids: list[str]
    patient_index: np.ndarray  # (n,) int: which patient, for seeding the body habitus
    study_dates: np.ndarray  # (n,) int YYYYMMDD
    splits: np.ndarray  # (n,) str: train / val / test
    labels: np.ndarray  # (n, len(classes)) uint8, every class including Normal and the unseen ones

    def split(self, name: str) -> np.ndarray:
        """Row indices of split ``name``."""
        return np.flatnonzero(self.splits == name)

    def findings(self, row: int) -> list[str]:
        """Names of the findings (not Normal) positive on image ``row``."""
        return [c for c, y in zip(self.classes, self.labels[row]) if y and c != "Normal"]


def _patients(sizes: dict[str, int], rng: np.random.Generator, mean: float) -> tuple[np.ndarray, np.ndarray]:
    """Split label and patient index of every image; each patient's films all land in one split."""
    p = min(1.0, 1.0 / max(mean, 1.0))
    split_of, patient_of = [], []
    patient = 0
    for name in SPLITS:
        remaining = sizes[name]
        while remaining > 0:
            count = int(min(rng.geometric(p), MAX_IMAGES_PER_PATIENT, remaining))
            split_of += [name] * count
            patient_of += [patient] * count
            patient += 1
            remaining -= count
    return np.array(split_of, dtype=object), np.array(patient_of, dtype=np.int64)


def _processing_order(targets: dict[str, float]) -> list[str]:
    """Rarest first, with every implied class after the classes that imply it."""
    order = sorted(targets, key=lambda c: (targets[c], c))
    for child, parent in IMPLIES.items():
        if order.index(child) > order.index(parent):
            order.remove(child)
            order.insert(order.index(parent), child)
    return order


def _assign(z: np.ndarray, names: list[str], counts: dict[str, int]) -> np.ndarray:
    """Exact-count thresholding of latent scores ``z`` (n, k) into 0/1 labels, honouring IMPLIES and exclusions."""
    n = len(z)
    labels = np.zeros((n, len(names)), dtype=np.uint8)
    column = {c: i for i, c in enumerate(names)}
    exclusive = {a: b for a, b in MUTUALLY_EXCLUSIVE} | {b: a for a, b in MUTUALLY_EXCLUSIVE}
    children = {parent: [c for c, p in IMPLIES.items() if p == parent] for parent in IMPLIES.values()}
    for name in _processing_order(counts):  # type: ignore[arg-type]
        forced = np.zeros(n, dtype=bool)
        for child in children.get(name, []):
            forced |= labels[:, column[child]] > 0
        eligible = ~forced
        if name in exclusive:
            eligible &= labels[:, column[exclusive[name]]] == 0
        extra = max(0, min(counts[name] - int(forced.sum()), int(eligible.sum())))
        chosen = np.flatnonzero(forced)
        if extra:
            candidates = np.flatnonzero(eligible)
            # stable sort on -z: ties (never in practice) break by row order, so results are reproducible
            top = candidates[np.argsort(-z[candidates, column[name]], kind="stable")[:extra]]
            chosen = np.concatenate([chosen, top])
        labels[chosen, column[name]] = 1
    return labels


def _patient_ids(count: int, rng: np.random.Generator) -> list[str]:
    """Distinct 20-digit numeric strings: like PadChest's, they must be read as text (as floats they collide)."""
    ids: list[str] = []
    seen: set[str] = set()
    while len(ids) < count:
        high, low = rng.integers(10**9, 10**10), rng.integers(0, 10**10)
        text = f"{high}{low:010d}"
        if text not in seen:
            seen.add(text)
            ids.append(text)
    return ids


def plan_cohort(n_train: int, n_val: int, n_test: int, seed: int = 0, space: LabelSpace | None = None) -> DemoCohort:
    """Sample the patients, splits, dates and labels of a demo data set (no images; cheap, deterministic)."""
    sizes = {"train": n_train, "val": n_val, "test": n_test}
    for name, value in sizes.items():
        if int(value) != value or value < 0:
            raise InputError(f"n_{name} must be a whole number >= 0, got {value!r}")
    if n_train + n_val + n_test == 0:
        raise InputError("the demo data set needs at least one image")
    space = space or get_label_space("cxrlt2026")
    stats = load_stats()
    rng = np.random.default_rng([seed, STREAM_LABELS])
    splits, patient_of = _patients(sizes, rng, stats["images_per_patient_mean"])
    n_images, n_patients = len(splits), int(patient_of.max()) + 1

    latent_names = list(stats["latent_classes"])
    correlation = np.asarray(stats["latent_correlation"], dtype=float)
    factor = np.linalg.cholesky(correlation + 1e-9 * np.eye(len(correlation)))
    z_patient = rng.standard_normal((n_patients, len(latent_names))) @ factor.T
    z_image = rng.standard_normal((n_images, len(latent_names))) @ factor.T
    z = np.sqrt(PATIENT_SHARE) * z_patient[patient_of] + np.sqrt(1 - PATIENT_SHARE) * z_image

    targets = target_prevalence(space)
    labels = np.zeros((n_images, len(space.classes)), dtype=np.uint8)
    order = [space.classes.index(c) for c in latent_names]
    for name in SPLITS:
        rows = np.flatnonzero(splits == name)
        if not len(rows):
            continue
        counts = {
            c: 0 if (name == "train" and c in space.unseen) else positives_count(targets[c], len(rows))
            for c in latent_names
        }
        labels[np.ix_(rows, order)] = _assign(z[rows], latent_names, counts)
    if space.normal is not None:
        findings = [i for i, c in enumerate(space.classes) if c != space.normal]
        labels[:, space.classes.index(space.normal)] = labels[:, findings].max(axis=1) == 0

    start_days = rng.integers(0, DATE_SPAN_DAYS, n_patients)
    dates, previous = [], {}
    for patient in patient_of:
        day = previous.get(patient, start_days[patient] - 1) + int(rng.integers(1, 400))
        previous[patient] = day
        dates.append(int((FIRST_DATE + dt.timedelta(days=int(day))).strftime("%Y%m%d")))
    patient_ids = _patient_ids(n_patients, rng)
    return DemoCohort(
        classes=space.classes,
        image_ids=[f"demo_{i:06d}.png" for i in range(n_images)],
        patient_ids=[patient_ids[p] for p in patient_of],
        patient_index=patient_of,
        study_dates=np.array(dates, dtype=np.int64),
        splits=splits,
        labels=labels,
    )


def image_seed(seed: int, row: int) -> list[int]:
    """The random stream of image ``row``: independent of worker count and order, so renders are reproducible."""
    return [seed, STREAM_IMAGE, row]


def patient_seed(seed: int, patient: int) -> list[int]:
    """The random stream of a patient's body habitus, shared by all of that patient's films."""
    return [seed, STREAM_PATIENT, patient]
