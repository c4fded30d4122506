"""The synthetic demo data set: reproducible files in the CXR-LT 2026 shapes, PadChest-like labels, leak-free reports,
patient-grouped splits, learnable signs, and the CLI.
"""

from __future__ import annotations

import filecmp
import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

from cxrlt_core.cli import main
from cxrlt_core.data.demo import SIGNS, generate_demo_dataset, make_gallery, plan_cohort, render_case, render_phantom
from cxrlt_core.data.demo.anatomy import pose_matrix, sample_acquisition
from cxrlt_core.data.demo.draw import DRAWS, PLANS, STRENGTH_RANGE
from cxrlt_core.data.demo.findings import ATTRIBUTES
from cxrlt_core.data.demo.reports import NEGATIVES, NORMAL_REPORTS, assert_no_unseen_words, unseen_words
from cxrlt_core.data.demo.sampling import (
    FLOOR,
    MUTUALLY_EXCLUSIVE,
    SITE_SIGN_SCALE,
    flatten_prevalence,
    load_stats,
    positives_count,
    render_arguments,
    target_prevalence,
)
from cxrlt_core.data.images import Preprocess, load_image, read_radiograph
from cxrlt_core.data.manifest import read_manifest
from cxrlt_core.errors import InputError
from cxrlt_core.labels import get_label_space

SPACE = get_label_space("cxrlt2026")
ID = list(SPACE.in_distribution)
ALL = list(SPACE.classes)
TINY = {"n_train": 40, "n_val": 20, "n_test": 34, "image_size": 64, "seed": 3}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny demo data set, built once, in process."""
    out = tmp_path_factory.mktemp("demo") / "data"
    return generate_demo_dataset(out, workers=1, progress=lambda done, total: None, **TINY)


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# -- files -----------------------------------------------------------------------------------------------------------
def test_same_seed_gives_byte_identical_files_whatever_the_workers(demo: Path, tmp_path: Path) -> None:
    again = generate_demo_dataset(tmp_path / "again", workers=2, progress=lambda done, total: None, **TINY)
    names = _tree(demo)
    assert names == _tree(again)
    match, mismatch, errors = filecmp.cmpfiles(demo, again, names, shallow=False)
    assert mismatch == [] and errors == [] and len(match) == len(names) == 94 + 9
    other = generate_demo_dataset(tmp_path / "other", workers=1, progress=lambda d, t: None, **{**TINY, "seed": 4})
    assert (other / "train.csv").read_bytes() != (demo / "train.csv").read_bytes()
    assert (other / "images" / "demo_000000.png").read_bytes() != (demo / "images" / "demo_000000.png").read_bytes()


def test_csv_columns_are_the_challenge_shapes(demo: Path) -> None:
    read = {
        name: pd.read_csv(demo / name, dtype=str, keep_default_na=False)
        for name in (
            "train.csv",
            "val.csv",
            "test.csv",
            "val_labels.csv",
            "test_labels.csv",
            "reports.csv",
            "heldout_reports.csv",
        )
    }
    extra = ["StudyID", "PatientSex", "PatientAge", "Projection", "Site"]
    meta = ["ImageID", "StudyDate_DICOM", "PatientID"] + extra
    assert list(read["train.csv"].columns) == meta + ID
    assert list(read["val.csv"].columns) == meta + ID
    assert list(read["test.csv"].columns) == ["ImageID"] + extra
    assert list(read["val_labels.csv"].columns) == ["ImageID"] + extra + ALL
    assert list(read["test_labels.csv"].columns) == ["ImageID"] + extra + ALL
    assert list(read["reports.csv"].columns) == ["ImageID", "report"]
    assert [len(read[n]) for n in ("train.csv", "val.csv", "test.csv")] == [40, 20, 34]
    for name in ("train.csv", "val.csv", "val_labels.csv", "test_labels.csv"):
        table = read[name]
        assert set(table["PatientSex"]) <= {"M", "F"} and set(table["Projection"]) <= {"PA", "AP"}
        assert set(table["Site"]) <= {"site_A", "site_B", "site_C"} and table["PatientAge"].str.fullmatch(r"\d+").all()
        assert table["StudyID"].str.fullmatch(r"\d{20}").all()
        cells = table.drop(columns=[c for c in meta if c in table.columns]).to_numpy()
        assert set(np.unique(cells)) <= {"0", "1"}
    train = read["train.csv"]
    assert train["ImageID"].str.fullmatch(r"demo_\d{6}\.png").all()
    assert train["PatientID"].str.fullmatch(r"\d{20}").all()  # must be read as text: as floats they would collide
    assert train["StudyDate_DICOM"].str.fullmatch(r"20\d{6}").all()
    assert list(read["test_labels.csv"]["ImageID"]) == list(read["test.csv"]["ImageID"])
    assert set(read["reports.csv"]["ImageID"]) == set(train["ImageID"]) | set(read["val.csv"]["ImageID"])
    info = json.loads((demo / "dataset.json").read_text())
    assert info["sizes"] == {"train": 40, "val": 20, "test": 34} and info["seed"] == 3 and info["image_size"] == 64
    assert info["label_space"]["classes"] == ALL
    assert info["unseen_present"]["train"] == [] and set(info["unseen_present"]["test"]) == set(SPACE.unseen)


def test_manifest_reader_reads_every_csv_cleanly(demo: Path) -> None:
    train_csv = pd.read_csv(demo / "train.csv", dtype=str)
    for name, labelled in (("train.csv", True), ("val.csv", True), ("test.csv", False), ("test_labels.csv", True)):
        manifest = read_manifest(
            demo / name,
            image_root=demo / "images",
            label_space="cxrlt2026",
            require_labels=labelled,
            check_images=True,
            strict_columns=True,
        )
        assert manifest.extra_columns == ()
        assert not np.isnan(manifest.labels).any()
    train = read_manifest(demo / "train.csv", image_root=demo / "images", label_space="cxrlt2026")
    assert train.classes == tuple(ID) and train.missing_classes == SPACE.unseen
    assert list(train.patients) == list(train_csv["PatientID"])
    labels = read_manifest(demo / "test_labels.csv", label_space="cxrlt2026")
    assert labels.classes == SPACE.classes


def test_png_is_16_bit_and_round_trips_through_the_image_loader(demo: Path) -> None:
    cohort = plan_cohort(TINY["n_train"], TINY["n_val"], TINY["n_test"], seed=TINY["seed"])
    for row in (0, 45, 93):
        path = demo / "images" / cohort.image_ids[row]
        raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert raw.dtype == np.uint16 and raw.shape == (64, 64)
        expected = render_case(size=64, **render_arguments(cohort, 3, row)).image
        np.testing.assert_array_equal(read_radiograph(path), expected)
        assert 0 < expected.max() <= 4095  # 12-bit values in a 16-bit container, like PadChest
        model_input = load_image(path, Preprocess(image_size=32))
        assert model_input.dtype == np.uint8 and model_input.shape == (32, 32) and model_input.std() > 20


# -- labels ----------------------------------------------------------------------------------------------------------
def test_flattening_rule_keeps_the_order_and_lifts_the_tail() -> None:
    stats = load_stats()
    real = dict(zip(stats["classes"], stats["prevalence"]))
    targets = target_prevalence()
    p_top = max(real[c] for c in ID if c != "Normal")
    assert flatten_prevalence(p_top, p_top) == pytest.approx(p_top)
    assert flatten_prevalence(0.0, p_top) == pytest.approx(FLOOR)
    assert flatten_prevalence(0.01, 0.1) == pytest.approx(0.0075 + 0.0925 * 0.1**0.75)
    findings = [c for c in ID if c != "Normal"]
    by_real = sorted(findings, key=lambda c: real[c])
    assert [targets[c] for c in by_real] == sorted(targets[c] for c in findings)  # long-tailed order kept
    assert min(positives_count(targets[c], 2000) for c in findings) >= 15
    assert all(0.03 <= targets[c] <= 0.06 for c in SPACE.unseen) and targets["Infarction"] == 0.03


def test_labels_meet_the_targets_exactly_and_keep_padchest_co_occurrence() -> None:
    cohort = plan_cohort(4000, 1500, 1500, seed=11)
    targets = target_prevalence()
    labels = cohort.labels.astype(bool)
    col = {c: i for i, c in enumerate(ALL)}
    first = np.searchsorted(cohort.study_index, np.arange(cohort.study_index.max() + 1))  # one film per study
    for split in ("train", "val", "test"):
        rows = cohort.split(split)
        studies = first[cohort.splits[first] == split]
        for name, target in targets.items():
            expected = 0 if split == "train" and name in SPACE.unseen else positives_count(target, len(studies))
            assert labels[studies, col[name]].sum() == expected, (split, name)  # exact per study
            # films inherit their study's labels: image prevalence is on target within sampling error (design
            # effect of 2-3 film studies at most 2, four standard errors)
            spread = 4 * np.sqrt(target * (1 - target) * 2 / len(rows))
            assert abs(labels[rows, col[name]].mean() - target * (expected > 0)) < spread, (split, name)
        findings = labels[rows][:, [col[c] for c in ALL if c != "Normal"]]
        np.testing.assert_array_equal(labels[rows, col["Normal"]], ~findings.any(axis=1))
    assert not (labels[:, col["central venous catheter"]] & ~labels[:, col["Support Devices"]]).any()
    for a, b in MUTUALLY_EXCLUSIVE:
        assert not (labels[:, col[a]] & labels[:, col[b]]).any()

    stats = load_stats()
    counts = np.asarray(stats["cooccurrence"], dtype=float)
    n = stats["n_images"]

    def lift(matrix: np.ndarray, total: float, a: str, b: str) -> float:
        i, j = stats["classes"].index(a), stats["classes"].index(b)
        return matrix[i, j] * total / (matrix[i, i] * matrix[j, j])

    demo_counts = labels.T.astype(float) @ labels.astype(float)
    for a, b in (
        ("pleural effusion", "atelectasis"),
        ("aortic elongation", "cardiomegaly"),
        ("alveolar pattern", "interstitial pattern"),
        ("Pneumothorax", "Subcutaneous Emphysema"),
    ):
        assert lift(counts, n, a, b) > 2 and lift(demo_counts, len(labels), a, b) > 1.5, (a, b)


def test_splits_are_grouped_by_patient_with_several_films_each() -> None:
    cohort = plan_cohort(600, 150, 150, seed=5)
    frame = pd.DataFrame(
        {"patient": cohort.patient_ids, "split": cohort.splits, "date": cohort.study_dates, "study": cohort.study_ids}
    )
    assert (frame.groupby("patient")["split"].nunique() == 1).all()
    studies = frame.drop_duplicates("study")
    assert 1.3 < studies.groupby("patient").size().mean() < 2.2
    assert studies.groupby("patient")["date"].apply(lambda d: d.is_monotonic_increasing and d.is_unique).all()
    assert len(set(cohort.patient_ids)) == cohort.patient_index.max() + 1


def test_studies_are_repeat_films_sharing_patient_date_labels_and_chest() -> None:
    cohort = plan_cohort(600, 150, 150, seed=5)
    frame = pd.DataFrame({"study": cohort.study_ids, "patient": cohort.patient_ids, "date": cohort.study_dates})
    sizes = frame.groupby("study").size()
    assert set(sizes) == {1, 2, 3} and 0.15 < (sizes > 1).mean() < 0.4  # STUDY_SIZES: 25 % of studies repeat
    assert (frame.groupby("study")[["patient", "date"]].nunique() == 1).all().all()
    for study in sizes[sizes > 1].index[:40]:
        rows = np.flatnonzero(np.array(cohort.study_ids) == study)
        assert (cohort.labels[rows] == cohort.labels[rows[0]]).all()
        assert len(set(cohort.age[rows])) == 1 and len(set(cohort.site[rows])) == 1
    rows = np.flatnonzero(np.array(cohort.study_ids) == sizes[sizes == 2].index[0])
    films = [render_case(size=64, **render_arguments(cohort, 5, int(row))) for row in rows]
    # the same chest and signs, another exposure and pose: the drawn findings agree, the pixels do not
    assert [i.finding for i in films[0].instances] == [i.finding for i in films[1].instances]
    assert [i.strength for i in films[0].instances] == [i.strength for i in films[1].instances]
    assert not np.array_equal(films[0].image, films[1].image)


def test_metadata_columns_have_their_documented_distributions() -> None:
    cohort = plan_cohort(4000, 10, 10, seed=2)
    assert abs((cohort.projection == "AP").mean() - 0.25) < 0.03
    patients = pd.DataFrame({"p": cohort.patient_index, "site": cohort.site, "sex": cohort.sex}).drop_duplicates("p")
    assert abs((patients["site"] == "site_C").mean() - 0.2) < 0.04 and abs((patients["sex"] == "M").mean() - 0.5) < 0.05
    assert cohort.age.min() >= 18 and 50 < cohort.age.mean() < 70
    assert (pd.DataFrame({"p": cohort.patient_index, "site": cohort.site}).groupby("p")["site"].nunique() == 1).all()


# -- sign boxes and the subgroup effect ------------------------------------------------------------------------------
def test_box_holds_the_drawn_nodule_at_its_known_place() -> None:
    """A nodule of known centre and radius: the pose maps its centre into the box, the box is about 2 r wide."""
    size = 128
    for k in range(6):
        phantom = render_case(["Nodule"], [4, k], size, strength=1.0, acquisition_seed=[9, k])
        inst = phantom.instances[0]
        assert not inst.geo["others"] or k > 0  # extra nodules widen the box; check the lone ones below
        if inst.geo["others"]:
            continue
        acq_rng = np.random.default_rng([9, k])
        matrix = pose_matrix(sample_acquisition(acq_rng), size)
        cx, cy = matrix @ np.array([inst.geo["center"][0] * size, inst.geo["center"][1] * size, 1.0])
        x0, y0, x1, y1 = phantom.boxes["Nodule"]
        assert x0 <= cx < x1 and y0 <= cy < y1
        zoom = float(np.hypot(*matrix[0, :2]))
        # radius at strength 1, times the zoom, plus the blur margin (MARGIN: ceil(0.012 * 128) = 2 px) each side
        diameter = 2 * 0.036 * size * zoom + 2 * 2
        assert abs((x1 - x0) - diameter) <= 3, ((x0, y0, x1, y1), diameter)


class _Without:
    """A registry stand-in that hides one finding (to render a film with that sign left out)."""

    def __init__(self, registry: object, hidden: str):
        self.registry, self.hidden = registry, hidden

    def __contains__(self, name: object) -> bool:
        return name != self.hidden and name in self.registry  # type: ignore[operator]

    def get(self, name: str) -> object:
        return self.registry.get(name)  # type: ignore[attr-defined]


@pytest.mark.parametrize("finding", ["Mass", "fracture", "central venous catheter", "cardiomegaly", "Bulla"])
def test_box_contains_the_pixels_that_the_sign_changed(finding: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same film with the sign's draw (or, for an anatomy sign, its plan) left out, all streams equal: the
    pixels that changed clearly lie inside the sign's box."""
    import cxrlt_core.data.demo.draw as draw

    kwargs = {"size": 96, "acquisition_seed": [5, 1], "patient_seed": [6, 1], "strength": 1.0, "projection": "PA"}
    with_sign = render_case([finding], [3, 1], **kwargs)
    x0, y0, x1, y1 = with_sign.boxes[finding]
    assert 0 <= x0 < x1 <= 96 and 0 <= y0 < y1 <= 96
    if finding in DRAWS:
        monkeypatch.setattr(draw, "DRAWS", _Without(DRAWS, finding))
    else:
        monkeypatch.setattr(draw, "PLANS", _Without(PLANS, finding))
    without = render_case([finding], [3, 1], **kwargs).image
    diff = np.abs(with_sign.image.astype(float) - without.astype(float))
    strong = diff > 0.25 * diff.max()
    inside = np.zeros_like(strong)
    inside[y0:y1, x0:x1] = True
    assert strong.any() and (strong & inside).sum() >= 0.95 * strong.sum(), (finding, (strong & ~inside).sum())
    assert (x1 - x0) * (y1 - y0) < 0.3 * 96 * 96  # and the box is tight, not the whole film


def test_diffuse_signs_get_no_box_and_boxes_csv_matches_the_images(demo: Path) -> None:
    assert not render_case(["Emphysema", "Osteopenia"], [1, 2], 64).boxes
    boxes = pd.read_csv(demo / "boxes.csv")
    assert list(boxes.columns) == ["ImageID", "finding", "x0", "y0", "x1", "y1"]
    labels = pd.concat([pd.read_csv(demo / n) for n in ("train.csv", "val_labels.csv", "test_labels.csv")])
    labels = labels.drop_duplicates("ImageID").set_index("ImageID")
    for row in boxes.itertuples():
        assert labels.loc[row.ImageID, row.finding] == 1  # a box only for a drawn (positive) finding
        assert 0 <= row.x0 < row.x1 <= 64 and 0 <= row.y0 < row.y1 <= 64
    assert not boxes.duplicated(["ImageID", "finding"]).any() and len(boxes) > 20


def test_site_c_shows_every_sign_fainter(monkeypatch: pytest.MonkeyPatch) -> None:
    """The deliberate subgroup effect: site_C draws signs at SITE_SIGN_SCALE of their strength."""
    assert SITE_SIGN_SCALE == {"site_A": 1.0, "site_B": 1.0, "site_C": 0.55}
    cohort = plan_cohort(300, 0, 0, seed=8)
    strengths = {"site_A": [], "site_C": []}
    for row in range(len(cohort.image_ids)):
        site = str(cohort.site[row])
        if site in strengths and cohort.findings(row):
            phantom = render_case(size=32, **render_arguments(cohort, 8, row))
            strengths[site] += [inst.strength for inst in phantom.instances]
    low, high = STRENGTH_RANGE
    assert min(strengths["site_A"]) >= low and max(strengths["site_A"]) <= high
    assert max(strengths["site_C"]) <= 0.55 * high + 1e-9 and min(strengths["site_C"]) >= 0.55 * low - 1e-9
    # a nodule at site_C is smaller and less dense: its pixels change the film less (sign left out, streams equal)
    import cxrlt_core.data.demo.draw as draw

    contrast = []
    for scale in (1.0, 0.55):
        kwargs = {"strength": 1.0, "acquisition_seed": [2, 3], "sign_scale": scale, "projection": "PA"}
        phantom = render_case(["Nodule"], [2, 2], 128, **kwargs)
        with monkeypatch.context() as patch:
            patch.setattr(draw, "DRAWS", _Without(DRAWS, "Nodule"))
            normal = render_case(["Nodule"], [2, 2], 128, **kwargs).image
        contrast.append(float(np.abs(phantom.image.astype(float) - normal).sum()))
    # radius x 0.85 (area 0.72) and density 0.44 instead of 0.52 at strength 0.55: about 0.6 of the change
    assert 0.4 * contrast[0] < contrast[1] < 0.75 * contrast[0]


# -- unseen findings stay out of training ------------------------------------------------------------------------------
def test_unseen_findings_never_reach_training_labels_images_or_reports(demo: Path) -> None:
    train = pd.read_csv(demo / "train.csv")
    assert not set(SPACE.unseen) & set(train.columns)
    cohort = plan_cohort(4000, 10, 10, seed=1)
    train_rows = cohort.split("train")
    assert not cohort.labels[np.ix_(train_rows, [ALL.index(c) for c in SPACE.unseen])].any()
    trainable = pd.read_csv(demo / "reports.csv")["report"]
    assert_no_unseen_words(trainable, SPACE.unseen)
    # the check can fail: the held-out reports do name the unseen findings drawn in val and test
    heldout = pd.read_csv(demo / "heldout_reports.csv")["report"]
    with pytest.raises(InputError, match="unseen finding"):
        assert_no_unseen_words(heldout, SPACE.unseen, "held-out reports")


def test_no_training_text_template_names_or_describes_an_unseen_finding() -> None:
    texts = [t for name in ID if name != "Normal" for t in SIGNS[name].templates]
    texts += [SIGNS[name].description for name in ID if name != "Normal"] + list(NORMAL_REPORTS)
    texts += [n for phrases in NEGATIVES.values() for n in phrases]
    for name, words in unseen_words(SPACE.unseen).items():
        assert len(words) >= 4
        for text in texts:
            assert not any(w in text.lower() for w in words), (name, text)


def test_each_unseen_sign_is_a_new_combination_of_seen_attribute_values() -> None:
    assert set(SIGNS) == set(ALL) - {"Normal"}
    assert set(SIGNS) <= set(PLANS) | set(DRAWS)  # every finding is actually drawn
    seen = [SIGNS[c] for c in ID if c != "Normal"]
    for name in SPACE.unseen:
        sign = SIGNS[name]
        assert all(sign.attributes != s.attributes for s in seen), name
        assert sign.shape in {s.shape for s in seen} and sign.density in {s.density for s in seen}, name
        assert sign.size in {s.size for s in seen}, name
        assert set(sign.location) <= {place for s in seen for place in s.location}, name
    for sign in SIGNS.values():
        assert sign.shape in ATTRIBUTES["shape"] and set(sign.location) <= set(ATTRIBUTES["location"])


# -- rendering -------------------------------------------------------------------------------------------------------
def test_render_phantom_gives_a_12_bit_image_and_rejects_bad_input() -> None:
    image = render_phantom({"cardiomegaly", "Goiter"}, seed=0, size=96)
    assert image.dtype == np.uint16 and image.shape == (96, 96) and 0 < image.max() <= 4095
    np.testing.assert_array_equal(image, render_phantom(["Goiter", "cardiomegaly"], seed=0, size=96))
    with pytest.raises(InputError, match="no phantom sign"):
        render_phantom({"Pneumonia"})
    with pytest.raises(InputError, match="too small"):
        render_phantom(set(), size=16)


@pytest.mark.parametrize("finding", ["cardiomegaly", "pleural effusion", "Emphysema", "hyperinflated lung", "Goiter"])
def test_strong_signs_are_learnable_from_downsampled_pixels(finding: str) -> None:
    """A few strong signs separate from normal films with logistic regression on 16 x 16 pixels."""
    images, labels = [], []
    for k in range(48):
        positive = k % 2
        image = render_phantom([finding] if positive else [], seed=[7, k], size=64, strength=0.8)
        images.append(cv2.resize(image.astype(np.float32), (16, 16), interpolation=cv2.INTER_AREA).ravel())
        labels.append(positive)
    x = np.array(images) / 4095.0
    x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-6)
    auc = cross_val_score(LogisticRegression(C=0.1, max_iter=500), x, np.array(labels), cv=4, scoring="roc_auc")
    assert auc.mean() > 0.85, (finding, auc)


def test_gallery_has_one_named_tile_per_class(tmp_path: Path) -> None:
    path = make_gallery(tmp_path / "gallery.png", size=64, columns=6)
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image.dtype == np.uint8 and image.ndim == 3
    band = 14
    assert image.shape == (6 * (64 + band), 6 * 64, 3)
    assert image[:band, :64].max() > 200  # the "Normal" name is written in the first tile's band
    assert image[-64:, -64:].std() > 5  # the 36th tile (Goiter) is drawn
    with pytest.raises(InputError, match="PNG"):
        make_gallery(tmp_path / "gallery.jpg", size=64)


# -- building and the CLI --------------------------------------------------------------------------------------------
def test_build_is_idempotent_and_refuses_to_clobber(demo: Path, tmp_path: Path) -> None:
    before = (demo / "dataset.json").stat().st_mtime_ns
    assert generate_demo_dataset(demo, workers=1, progress=lambda d, t: None, **TINY) == demo
    assert (demo / "dataset.json").stat().st_mtime_ns == before  # same settings: nothing rebuilt
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="already exists"):
        generate_demo_dataset(occupied, workers=1, progress=lambda d, t: None, **TINY)
    assert (occupied / "notes.txt").read_text() == "mine"


def test_interrupted_build_leaves_no_partial_data_set(tmp_path: Path) -> None:
    def stop(done: int, total: int) -> None:
        if done == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate_demo_dataset(tmp_path / "data", workers=1, progress=stop, **TINY)
    assert list(tmp_path.iterdir()) == []


def test_cli_make_demo_and_gallery(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    args = [
        "data",
        "make-demo",
        "--out",
        str(out),
        "--n-train",
        "12",
        "--n-val",
        "4",
        "--n-test",
        "4",
        "--image-size",
        "48",
        "--seed",
        "2",
        "--workers",
        "1",
    ]
    assert main(args) == 0
    assert "12 images" in capsys.readouterr().out
    assert len(list((out / "images").glob("*.png"))) == 20
    assert main([*args[:-2], "--workers", "1", "--n-train", "13"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main([*args, "--overwrite", "--n-train", "13"]) == 0
    assert len(pd.read_csv(out / "train.csv")) == 13
    assert main(["data", "make-demo", "--out", str(tmp_path / "x"), "--image-size", "8"]) == 1
    assert main(["data", "demo-gallery", "--out", str(tmp_path / "g.png"), "--size", "64"]) == 0
    assert (tmp_path / "g.png").is_file()


@pytest.mark.slow
def test_committed_statistics_come_from_the_padchest_matrix(shared_data: Path, tmp_path: Path) -> None:
    import importlib.util

    script = Path(__file__).resolve().parent.parent / "scripts" / "make_padchest_stats.py"
    spec = importlib.util.spec_from_file_location("make_padchest_stats", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    labels = shared_data / "padchest-label-matrix" / "padchest_cxrlt2026_labels.csv.gz"
    assert module.main(["--labels", str(labels), "--out", str(tmp_path / "stats.json")]) == 0
    assert json.loads((tmp_path / "stats.json").read_text()) == load_stats()
