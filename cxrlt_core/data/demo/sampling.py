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

Patients, studies, films. A patient has a geometric number of studies (mean as PadChest's films per patient, at
most ``MAX_STUDIES_PER_PATIENT``), on distinct, increasing dates; a study has 1, 2 or 3 films (``STUDY_SIZES``):
repeat acquisitions of the same chest and signs with other positioning, exposure, noise and possibly another
projection. Labels are sampled per study (the exact counts above are counts of studies; the films of a study share
its labels), so image-level prevalence matches the targets on average. Splits are made of whole patients.

Metadata (stream ``STREAM_META``): every patient has a sex (M/F, even odds), an age at the first study (normal, mean
60, s.d. 17, clipped to 18-95; older by whole years at later studies) and a site (``SITES``); every film a projection
(AP with probability ``AP_SHARE``, else PA; an AP film magnifies the heart by 12 %). One subgroup effect is
deliberate: ``site_C``'s detector shows every sign at ``SITE_SIGN_SCALE["site_C"]`` of its strength (fainter and
smaller), so a model is measurably worse on site_C films and a subgroup audit has something real to find.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
from pathlib import Path

import numpy as np

from cxrlt_core.errors import InputError
from cxrlt_core.labels import DEMO_LABEL_SPACE, LabelSpace, get_label_space

STATS_FILE = Path(__file__).with_name("padchest_stats.json")
FLOOR = 0.0075
GAMMA = 0.75
UNSEEN_RANGE = (0.03, 0.06)
PATIENT_SHARE = 0.5
MAX_STUDIES_PER_PATIENT = 6
STUDY_SIZES = {1: 0.75, 2: 0.17, 3: 0.08}  # films per study: repeat acquisitions
SITES = {"site_A": 0.45, "site_B": 0.35, "site_C": 0.2}
SITE_SIGN_SCALE = {"site_A": 1.0, "site_B": 1.0, "site_C": 0.55}
AP_SHARE = 0.25
IMPLIES = {"central venous catheter": "Support Devices"}
MUTUALLY_EXCLUSIVE = (("hyperinflated lung", "hypoexpansion"),)
SPLITS = ("train", "val", "test")
FIRST_DATE = dt.date(2009, 1, 1)
DATE_SPAN_DAYS = 9 * 365

# independent random streams derived from the data set seed (numpy SeedSequence entropy = [seed, stream, index])
STREAM_LABELS, STREAM_PATIENT, STREAM_IMAGE, STREAM_META, STREAM_ACQUISITION = 1, 2, 3, 4, 5


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
    space = space or get_label_space(DEMO_LABEL_SPACE)
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
    study_index: np.ndarray  # (n,) int: which study (films of one study share chest, signs and labels)
    study_ids: list[str]
    sex: np.ndarray  # (n,) str M / F
    age: np.ndarray  # (n,) int years at the study
    projection: np.ndarray  # (n,) str PA / AP
    site: np.ndarray  # (n,) str site_A / site_B / site_C

    def split(self, name: str) -> np.ndarray:
        """Row indices of split ``name``."""
        return np.flatnonzero(self.splits == name)

    def findings(self, row: int) -> list[str]:
        """Names of the findings (not Normal) positive on image ``row``."""
        return [c for c, y in zip(self.classes, self.labels[row]) if y and c != "Normal"]


def _patients(
    sizes: dict[str, int], rng: np.random.Generator, mean: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split, patient index and study index of every image; each patient's studies all land in one split."""
    p = min(1.0, 1.0 / max(mean, 1.0))
    study_sizes, study_odds = list(STUDY_SIZES), list(STUDY_SIZES.values())
    split_of, patient_of, study_of = [], [], []
    patient = study = 0
    for name in SPLITS:
        remaining = sizes[name]
        while remaining > 0:
            for _ in range(int(min(rng.geometric(p), MAX_STUDIES_PER_PATIENT))):
                count = int(min(rng.choice(study_sizes, p=study_odds), remaining))
                split_of += [name] * count
                patient_of += [patient] * count
                study_of += [study] * count
                study += 1
                remaining -= count
                if remaining == 0:
                    break
            patient += 1
    return np.array(split_of, dtype=object), np.array(patient_of, dtype=np.int64), np.array(study_of, dtype=np.int64)


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


def _numeric_ids(count: int, rng: np.random.Generator) -> list[str]:
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


def _study_labels(study_split: np.ndarray, z: np.ndarray, latent_names: list[str], space: LabelSpace) -> np.ndarray:
    """Exact-count labels of every study (rows of ``z``), split by split; Normal when no finding is drawn."""
    targets = target_prevalence(space)
    labels = np.zeros((len(z), len(space.classes)), dtype=np.uint8)
    order = [space.classes.index(c) for c in latent_names]
    for name in SPLITS:
        rows = np.flatnonzero(study_split == name)
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
    return labels


def _study_dates(patient_of_study: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Distinct, increasing study dates per patient (days since ``FIRST_DATE``)."""
    n_patients = int(patient_of_study.max()) + 1 if len(patient_of_study) else 0
    start_days = rng.integers(0, DATE_SPAN_DAYS, n_patients)
    days, previous = [], {}
    for patient in patient_of_study:
        day = previous.get(patient, start_days[patient] - 1) + int(rng.integers(1, 400))
        previous[patient] = day
        days.append(day)
    return np.array(days, dtype=np.int64)


def _metadata(patient_of: np.ndarray, days: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Sex, age at the film, site (per patient) and projection (per film): module docstring, stream STREAM_META."""
    rng = np.random.default_rng([seed, STREAM_META])
    n_patients = int(patient_of.max()) + 1
    sex = rng.choice(np.array(["M", "F"], dtype=object), n_patients)
    first_age = np.clip(np.round(rng.normal(60.0, 17.0, n_patients)), 18, 95).astype(np.int64)
    site = rng.choice(np.array(list(SITES), dtype=object), n_patients, p=list(SITES.values()))
    projection = np.where(rng.random(len(patient_of)) < AP_SHARE, "AP", "PA").astype(object)
    first_day = {}
    for patient, day in zip(patient_of, days):
        first_day.setdefault(patient, day)
    years = np.array([(day - first_day[p]) // 365 for p, day in zip(patient_of, days)], dtype=np.int64)
    return {
        "sex": sex[patient_of],
        "age": first_age[patient_of] + years,
        "site": site[patient_of],
        "projection": projection,
    }


def plan_cohort(n_train: int, n_val: int, n_test: int, seed: int = 0, space: LabelSpace | None = None) -> DemoCohort:
    """Sample the patients, studies, splits, dates, metadata and labels of a demo data set (no images; cheap)."""
    sizes = {"train": n_train, "val": n_val, "test": n_test}
    for name, value in sizes.items():
        if int(value) != value or value < 0:
            raise InputError(f"n_{name} must be a whole number >= 0, got {value!r}")
    if n_train + n_val + n_test == 0:
        raise InputError("the demo data set needs at least one image")
    space = space or get_label_space(DEMO_LABEL_SPACE)
    stats = load_stats()
    rng = np.random.default_rng([seed, STREAM_LABELS])
    splits, patient_of, study_of = _patients(sizes, rng, stats["images_per_patient_mean"])
    n_patients, n_studies = int(patient_of.max()) + 1, int(study_of.max()) + 1
    first_row = np.searchsorted(study_of, np.arange(n_studies))  # studies are numbered in row order
    patient_of_study, study_split = patient_of[first_row], splits[first_row]

    latent_names = list(stats["latent_classes"])
    correlation = np.asarray(stats["latent_correlation"], dtype=float)
    factor = np.linalg.cholesky(correlation + 1e-9 * np.eye(len(correlation)))
    z_patient = rng.standard_normal((n_patients, len(latent_names))) @ factor.T
    z_study = rng.standard_normal((n_studies, len(latent_names))) @ factor.T
    z = np.sqrt(PATIENT_SHARE) * z_patient[patient_of_study] + np.sqrt(1 - PATIENT_SHARE) * z_study
    labels = _study_labels(study_split, z, latent_names, space)[study_of]

    days = _study_dates(patient_of_study, rng)[study_of]
    dates = [int((FIRST_DATE + dt.timedelta(days=int(day))).strftime("%Y%m%d")) for day in days]
    patient_ids = _numeric_ids(n_patients, rng)
    study_ids = _numeric_ids(n_studies, np.random.default_rng([seed, STREAM_META, 1]))
    meta = _metadata(patient_of, days, seed)
    return DemoCohort(
        classes=space.classes,
        image_ids=[f"demo_{i:06d}.png" for i in range(len(splits))],
        patient_ids=[patient_ids[p] for p in patient_of],
        patient_index=patient_of,
        study_dates=np.array(dates, dtype=np.int64),
        splits=splits,
        labels=labels,
        study_index=study_of,
        study_ids=[study_ids[k] for k in study_of],
        **meta,
    )


def render_arguments(cohort: DemoCohort, seed: int, row: int) -> dict:
    """Keyword arguments of ``draw.render_case`` for image ``row``: the films of a study share the case stream (chest,
    signs) and the patient stream (habitus); each film has its own acquisition stream, projection, and the sign scale
    of its site."""
    study = int(cohort.study_index[row])
    first = int(np.searchsorted(cohort.study_index, study))  # the study's first film
    return {
        "findings": tuple(cohort.findings(row)),
        "seed": image_seed(seed, first),
        "patient_seed": patient_seed(seed, int(cohort.patient_index[row])),
        "acquisition_seed": [seed, STREAM_ACQUISITION, row],
        "projection": str(cohort.projection[row]),
        "sign_scale": SITE_SIGN_SCALE[str(cohort.site[row])],
    }


def image_seed(seed: int, row: int) -> list[int]:
    """The random stream of image ``row``: independent of worker count and order, so renders are reproducible."""
    return [seed, STREAM_IMAGE, row]


def patient_seed(seed: int, patient: int) -> list[int]:
    """The random stream of a patient's body habitus, shared by all of that patient's films."""
    return [seed, STREAM_PATIENT, patient]
