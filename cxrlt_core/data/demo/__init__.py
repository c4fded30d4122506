"""The embedded demo data set: synthetic "phantom" chest radiographs in the CXR-LT 2026 format, with reports.

A newcomer has no PadChest and nothing can be downloaded, so cxrlt ships a deterministic generator of frontal chest
radiographs whose files, labels and reports have the shapes of the challenge data (``generate.py``), whose labels
follow PadChest's prevalence and co-occurrence with a flattened tail (``sampling.py``), and whose 35 findings each
have a distinct, anatomically placed sign that a small model learns in minutes on a CPU (``anatomy.py``,
``draw.py``). ``Normal`` is the absence of every finding.

Modules: ``anatomy`` (the normal chest and the acquisition), ``findings`` (the attribute vocabulary and the sign
table), ``draw`` (drawing each sign, rendering one film), ``boxes`` (where each sign lies on the film),
``sampling`` (labels, patients, studies, metadata, splits, the site effect), ``reports`` (report text),
``generate`` (writing a data set with parallel workers), ``gallery`` (one example per class). User guide:
``docs/demo.md``.

The signs, as attribute combinations (shape / size / density / location):

==============================  ===========  =======  =========  =======================================
class                           shape        size     density    location
==============================  ===========  =======  =========  =======================================
aortic elongation               widening     medium   opaque     aorta, upper mediastinum
cardiomegaly                    widening     large    opaque     heart
pleural effusion                meniscus     medium   opaque     base, costophrenic angle
Nodule                          round        small    opaque     upper zone, lung
atelectasis                     wedge        medium   opaque     lower zone, heart
pleural thickening              band         small    opaque     periphery, apex
aortic atheromatosis            curve        small    calcified  aorta
Support Devices                 line         small    metallic   trachea, soft tissue
alveolar pattern                patchy       large    opaque     lung
fracture                        gap          small    lucent     ribs, bones, periphery
Hernia                          round        medium   lucent     retrocardiac, diaphragm
Emphysema                       lucency      diffuse  lucent     upper zone, apex
azygos lobe                     curve        small    opaque     apex, upper mediastinum
Hydropneumothorax               level        medium   lucent     base, periphery
Kyphosis                        wedge        medium   opaque     spine, ribs
Mass                            lobulated    large    opaque     lung
Pneumothorax                    line         medium   lucent     apex, periphery
Subcutaneous Emphysema          streaks      medium   lucent     soft tissue
pneumoperitoneo                 crescent     small    lucent     below diaphragm
vascular hilar enlargement      widening     medium   opaque     hilum
vertebral degenerative changes  spurs        small    calcified  spine
hyperinflated lung              flattening   large    lucent     diaphragm
interstitial pattern            reticular    diffuse  opaque     lower zone, lung
central venous catheter         line         small    metallic   upper mediastinum, mediastinum
hypoexpansion                   elevation    large    opaque     diaphragm
bronchiectasis                  ring         small    opaque     lower zone
hemidiaphragm elevation         elevation    medium   opaque     diaphragm
sternotomy                      loops        small    metallic   mediastinum
calcified densities             dots         small    calcified  upper zone, lung
Scoliosis (unseen)              curve        large    opaque     spine
Osteopenia (unseen)             lucency      diffuse  lucent     bones, ribs, spine
Bulla (unseen)                  ring         large    lucent     upper zone, apex
Infarction (unseen)             wedge        medium   opaque     lower zone, periphery
Adenopathy (unseen)             lobulated    medium   opaque     hilum, upper mediastinum
Goiter (unseen)                 widening     large    opaque     upper mediastinum, trachea
==============================  ===========  =======  =========  =======================================

Each unseen class is a combination no in-distribution class has, made of values that in-distribution classes use
(``findings`` module docstring). Unseen findings are drawn only in validation and test images: they never appear
in training labels or images, ``val.csv`` carries only the 30 in-distribution columns (``val_labels.csv`` and
``test_labels.csv`` all 36), and ``reports.csv`` (train and val reports, what a CLIP may learn from) never names or
describes them; ``heldout_reports.csv`` holds the full val and test reports.
"""

from __future__ import annotations

from cxrlt_core.data.demo.draw import Phantom, render_case, render_phantom
from cxrlt_core.data.demo.findings import ATTRIBUTES, SIGNS, Sign
from cxrlt_core.data.demo.gallery import make_gallery
from cxrlt_core.data.demo.generate import DEFAULT_IMAGE_SIZE, DEFAULT_SIZES, generate_demo_dataset, read_dataset_info
from cxrlt_core.data.demo.sampling import DemoCohort, plan_cohort, target_prevalence

__all__ = [
    "ATTRIBUTES",
    "DEFAULT_IMAGE_SIZE",
    "DEFAULT_SIZES",
    "SIGNS",
    "DemoCohort",
    "Phantom",
    "Sign",
    "generate_demo_dataset",
    "make_gallery",
    "plan_cohort",
    "read_dataset_info",
    "render_case",
    "render_phantom",
    "target_prevalence",
]
