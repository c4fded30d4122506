"""Write the demo data set: 16-bit PNGs, CXR-LT 2026-shaped CSVs, reports and a ``dataset.json``, reproducibly.

Layout of ``out_dir``::

    images/demo_000000.png ...   16-bit grayscale PNG (12-bit values), one per image
    train.csv, val.csv           ImageID, StudyDate_DICOM, PatientID, StudyID, PatientSex, PatientAge, Projection,
                                 Site + the 30 in-distribution classes (0/1)
    test.csv                     ImageID + the same metadata columns
    val_labels.csv               ImageID + metadata + all 36 classes (the 6 unseen included): for tuning prompts
    test_labels.csv              ImageID + metadata + all 36 classes: the hidden answers
    boxes.csv                    ImageID, finding, x0, y0, x1, y1: where each (non-diffuse) sign was drawn, in pixels
                                 of the saved PNG (``image[y0:y1, x0:x1]``; ``boxes`` module)
    reports.csv                  ImageID, report: train and val images, never mentioning an unseen finding (a val
                                 film's unseen findings are left out of its text): what a CLIP may train on
    heldout_reports.csv          ImageID, report: val and test images, full text (names unseen findings)
    dataset.json                 generator version, seed, sizes, label space, targets, counts, unseen per split

Every image is rendered from its study's random stream ``[seed, 3, first row of the study]``, its own acquisition
stream ``[seed, 5, row]`` and its patient's ``[seed, 2, patient]`` (``sampling.render_arguments``), so the files are
byte-identical whatever the number of workers. The data set is built in a hidden folder beside
``out_dir`` and renamed into place at the end: an interrupted build never looks complete.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from cxrlt_core.atomic import write_json
from cxrlt_core.data.demo.draw import BIT_DEPTH, render_case
from cxrlt_core.data.demo.findings import ATTRIBUTES, SIGNS
from cxrlt_core.data.demo.reports import assert_no_unseen_words, write_report
from cxrlt_core.data.demo.sampling import (
    FLOOR,
    GAMMA,
    PATIENT_SHARE,
    SITE_SIGN_SCALE,
    SITES,
    SPLITS,
    STUDY_SIZES,
    UNSEEN_RANGE,
    DemoCohort,
    plan_cohort,
    render_arguments,
    target_prevalence,
)
from cxrlt_core.errors import InputError
from cxrlt_core.labels import CXRLT2026_UNSEEN as UNSEEN
from cxrlt_core.labels import DEMO_LABEL_SPACE, get_label_space

GENERATOR_VERSION = "2.0"
META_COLUMNS = ("StudyID", "PatientSex", "PatientAge", "Projection", "Site")
BOX_COLUMNS = ("ImageID", "finding", "x0", "y0", "x1", "y1")
DEFAULT_SIZES = {"n_train": 2000, "n_val": 400, "n_test": 600}
DEFAULT_IMAGE_SIZE = 256
ProgressCallback = Callable[[int, int], None]


Task = tuple[int, dict, int, str]
Rendered = tuple[int, str, str, list[tuple]]


def _render_one(task: Task) -> Rendered:
    """Render and save one image; returns its row, full report, report without unseen findings, and sign boxes."""
    row, arguments, size, path = task
    phantom = render_case(size=size, **arguments)
    if not cv2.imwrite(path, phantom.image):
        raise OSError(f"{path}: could not write PNG")
    projection = phantom.anatomy.projection
    rng = np.random.default_rng(arguments["acquisition_seed"] + [1])  # the report's words: the film's own stream
    # both texts from the same stream state, so they differ only by the hidden findings
    state = rng.bit_generator.state
    full = write_report(phantom.instances, rng, projection)
    rng.bit_generator.state = state
    redacted = write_report(phantom.instances, rng, projection, hidden=UNSEEN)
    boxes = [(name, *box) for name, box in phantom.boxes.items()]
    return row, full, redacted, boxes


def _init_worker() -> None:
    cv2.setNumThreads(1)  # one process per core already; OpenCV's own threads would only contend


def _tasks(cohort: DemoCohort, seed: int, size: int, image_dir: Path) -> list[Task]:
    return [
        (row, render_arguments(cohort, seed, row), size, str(image_dir / cohort.image_ids[row]))
        for row in range(len(cohort.image_ids))
    ]


def render_images(
    cohort: DemoCohort,
    image_dir: Path,
    seed: int,
    size: int,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[list[str], list[str], list[list[tuple]]]:
    """Render every image of ``cohort`` into ``image_dir``; returns the full and redacted reports and the sign boxes
    ``(finding, x0, y0, x1, y1)`` of every image, in row order.

    ``workers`` processes (default: the CPU count) share the work; ``progress(done, total)`` is called as images
    finish, or a tqdm bar is shown when it is ``None``.
    """
    tasks = _tasks(cohort, seed, size, image_dir)
    total = len(tasks)
    workers = max(1, min(int(workers or os.cpu_count() or 1), total))
    reports: list[str] = [""] * total
    redacted: list[str] = [""] * total
    boxes: list[list[tuple]] = [[] for _ in range(total)]
    bar = None
    if progress is None:
        bar = tqdm(total=total, desc="rendering demo images", unit="img")

        def progress(done: int, total: int) -> None:
            bar.update(done - bar.n)

    try:
        if workers == 1:
            for done, task in enumerate(tasks, 1):
                row, reports[row], redacted[row], boxes[row] = _render_one(task)
                progress(done, total)
        else:
            # spawn, not fork: callers (the dashboard) may hold threads that a forked child would inherit locked
            context = multiprocessing.get_context("spawn")
            with context.Pool(workers, initializer=_init_worker) as pool:
                chunk = max(1, min(32, total // (workers * 8)))
                for done, (row, full, short, drawn) in enumerate(
                    pool.imap_unordered(_render_one, tasks, chunksize=chunk), 1
                ):
                    reports[row], redacted[row], boxes[row] = full, short, drawn
                    progress(done, total)
    finally:
        if bar is not None:
            bar.close()
    return reports, redacted, boxes


def _config(n_train: int, n_val: int, n_test: int, image_size: int, seed: int) -> dict:
    return {
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "image_size": image_size,
        "sizes": {"train": n_train, "val": n_val, "test": n_test},
    }


def _metadata_table(cohort: DemoCohort) -> pd.DataFrame:
    """ImageID, StudyDate_DICOM, PatientID and the ``META_COLUMNS`` of every image, in row order."""
    return pd.DataFrame(
        {
            "ImageID": np.array(cohort.image_ids, dtype=object),
            "StudyDate_DICOM": cohort.study_dates,
            "PatientID": cohort.patient_ids,
            "StudyID": cohort.study_ids,
            "PatientSex": cohort.sex,
            "PatientAge": cohort.age,
            "Projection": cohort.projection,
            "Site": cohort.site,
        }
    )


def _box_table(cohort: DemoCohort, boxes: list[list[tuple]]) -> pd.DataFrame:
    """One row per image and located sign: ``BOX_COLUMNS``."""
    rows = [(cohort.image_ids[row], *box) for row, drawn in enumerate(boxes) for box in drawn]
    return pd.DataFrame(rows, columns=list(BOX_COLUMNS)).astype({c: np.int64 for c in BOX_COLUMNS[2:]})


def _write_tables(
    cohort: DemoCohort, reports: list[str], redacted: list[str], boxes: list[list[tuple]], folder: Path
) -> dict:
    space = get_label_space(DEMO_LABEL_SPACE)
    ids = np.array(cohort.image_ids, dtype=object)
    labels = pd.DataFrame(cohort.labels.astype(np.int64), columns=list(space.classes))
    meta = _metadata_table(cohort)
    per_image = ["ImageID", *META_COLUMNS]
    report_table = pd.DataFrame({"ImageID": ids, "report": reports})
    trainable = pd.DataFrame({"ImageID": ids, "report": redacted})
    files: dict[str, str] = {}

    def save(name: str, table: pd.DataFrame, what: str) -> None:
        table.to_csv(folder / name, index=False, lineterminator="\n")
        files[name] = what

    for split in ("train", "val"):
        rows = cohort.split(split)
        save(
            f"{split}.csv",
            pd.concat([meta.iloc[rows], labels.iloc[rows][list(space.in_distribution)]], axis=1),
            f"{split} labels: ImageID, StudyDate_DICOM, PatientID, {', '.join(META_COLUMNS)} "
            f"+ the {len(space.in_distribution)} classes",
        )
    test = cohort.split("test")
    save("test.csv", meta.iloc[test][per_image], f"test images: ImageID, {', '.join(META_COLUMNS)}")
    for split in ("val", "test"):
        rows = cohort.split(split)
        save(
            f"{split}_labels.csv",
            pd.concat([meta.iloc[rows][per_image], labels.iloc[rows]], axis=1),
            f"{split} answers: ImageID, metadata + all {space.num_classes} classes, unseen included",
        )
    save("boxes.csv", _box_table(cohort, boxes), "ImageID, finding, x0, y0, x1, y1: where each sign was drawn (px)")
    train_val = np.concatenate([cohort.split("train"), cohort.split("val")])
    assert_no_unseen_words(trainable["report"].iloc[train_val], space.unseen)
    save("reports.csv", trainable.iloc[train_val], "train and val reports; never mention the unseen findings")
    heldout = np.concatenate([cohort.split("val"), test])
    save("heldout_reports.csv", report_table.iloc[heldout], "validation and test reports (may name unseen findings)")
    return files


def _summary(cohort: DemoCohort, files: dict, config: dict) -> dict:
    space = get_label_space(DEMO_LABEL_SPACE)
    positives, unseen_present, patients = {}, {}, {}
    for split in SPLITS:
        rows = cohort.split(split)
        counts = cohort.labels[rows].sum(axis=0)
        positives[split] = {c: int(n) for c, n in zip(space.classes, counts)}
        unseen_present[split] = [c for c in space.unseen if positives[split][c] > 0]
        patients[split] = len(set(cohort.patient_index[rows].tolist()))
    return {
        "name": "cxrlt-demo",
        "description": "Synthetic phantom chest radiographs in the CXR-LT 2026 format (cxrlt_core.data.demo).",
        **config,
        "bit_depth": BIT_DEPTH,
        "image_format": "16-bit grayscale PNG",
        "files": files,
        "label_space": space.to_dict(),
        "patients": patients,
        "positives": positives,
        "unseen_present": unseen_present,
        "target_prevalence": target_prevalence(space),
        "sampling": {
            "rule": "p' = f + (p_top - f) * (p / p_top) ** gamma; unseen clip(p', lo, hi) in val/test only; "
            "exact counts per split from a Gaussian copula with PadChest's tetrachoric correlations",
            "floor": FLOOR,
            "gamma": GAMMA,
            "unseen_range": list(UNSEEN_RANGE),
            "patient_share": PATIENT_SHARE,
            "study_sizes": {str(k): v for k, v in STUDY_SIZES.items()},
            "sites": SITES,
        },
        "subgroup_effect": {
            "column": "Site",
            "sign_scale": SITE_SIGN_SCALE,
            "rule": f"every sign on a site_C film is drawn at {SITE_SIGN_SCALE['site_C']} of its strength "
            "(fainter, smaller)",
        },
        "studies": {split: len(set(cohort.study_index[cohort.split(split)].tolist())) for split in SPLITS},
        "normal_rule": "Normal = 1 exactly when no finding (in-distribution or unseen) is drawn",
        "attributes": {key: list(values) for key, values in ATTRIBUTES.items()},
        "signs": {
            name: {
                "shape": s.shape,
                "size": s.size,
                "density": s.density,
                "location": list(s.location),
                "description": s.description,
            }
            for name, s in SIGNS.items()
        },
    }


def read_dataset_info(folder: str | os.PathLike[str]) -> dict | None:
    """The ``dataset.json`` of a built demo data set, or ``None`` when there is none."""
    path = Path(folder) / "dataset.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def generate_demo_dataset(
    out_dir: str | os.PathLike[str],
    n_train: int = DEFAULT_SIZES["n_train"],
    n_val: int = DEFAULT_SIZES["n_val"],
    n_test: int = DEFAULT_SIZES["n_test"],
    image_size: int = DEFAULT_IMAGE_SIZE,
    seed: int = 0,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
    overwrite: bool = False,
) -> Path:
    """Build the synthetic demo data set in ``out_dir`` and return its path.

    If ``out_dir`` already holds a demo data set built with the same version, seed, sizes and image size, it is
    returned as is (building is idempotent). Another non-empty ``out_dir`` is an error unless ``overwrite``, which
    always rebuilds.

    Args:
        out_dir: destination folder (created; its parent must be writable).
        n_train, n_val, n_test: images per split (whole patients per split, so sizes are exact).
        image_size: height and width in pixels (at least 32).
        seed: everything (labels, patients, images, reports) follows from it.
        workers: rendering processes (default: CPU count; 1 renders in this process).
        progress: ``progress(done, total)`` after each image; a tqdm bar when ``None``.
        overwrite: rebuild and replace whatever ``out_dir`` holds.
    """
    out = Path(out_dir)
    if int(image_size) != image_size or image_size < 32:
        raise InputError(f"image size must be a whole number >= 32 px, got {image_size!r}")
    if int(seed) != seed or seed < 0:
        raise InputError(f"seed must be a whole number >= 0, got {seed!r}")
    config = _config(int(n_train), int(n_val), int(n_test), int(image_size), int(seed))
    existing = read_dataset_info(out)
    if not overwrite and existing is not None and {k: existing.get(k) for k in config} == config:
        return out
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise InputError(f"{out} already exists and is not this demo data set; choose another folder or overwrite")

    cohort = plan_cohort(config["sizes"]["train"], config["sizes"]["val"], config["sizes"]["test"], seed=int(seed))
    out.parent.mkdir(parents=True, exist_ok=True)
    building = out.parent / f".{out.name}.building-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    (building / "images").mkdir(parents=True)
    try:
        reports, redacted, boxes = render_images(
            cohort, building / "images", int(seed), int(image_size), workers, progress
        )
        files = _write_tables(cohort, reports, redacted, boxes, building)
        files["images/"] = f"{len(cohort.image_ids)} 16-bit grayscale PNGs"
        write_json(building / "dataset.json", _summary(cohort, files, config))
        if out.exists():
            trash = out.parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, trash)
            os.replace(building, out)
            if trash.is_dir():
                shutil.rmtree(trash, ignore_errors=True)
            else:
                trash.unlink(missing_ok=True)
        else:
            os.replace(building, out)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return out
