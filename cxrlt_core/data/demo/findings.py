"""The visual vocabulary of the phantom findings: attributes, and one attribute combination per CXR-LT 2026 class.

Every sign is a combination of four attributes (shape, size, density, location). The six unseen classes are new
combinations of attribute values that in-distribution signs also use, so a model that learned the attributes from
training images and reports can in principle recognise an unseen finding from its description alone (zero-shot):

- Bulla = ring (bronchiectasis) + large (Mass) + lucent (Emphysema, Pneumothorax) + upper zone (Emphysema);
- Infarction = wedge (atelectasis, Kyphosis) + opaque + lower zone (atelectasis) + periphery (pleural thickening);
- Adenopathy = lobulated (Mass) + opaque + hilum (vascular hilar enlargement) + upper mediastinum (azygos lobe);
- Goiter = widening (cardiomegaly, aortic elongation) + upper mediastinum (aortic elongation) + trachea (Support
  Devices' tube);
- Scoliosis = curve (aortic atheromatosis, azygos lobe) + spine (vertebral degenerative changes, Kyphosis);
- Osteopenia = lucent (Emphysema) + diffuse (interstitial pattern) + bones (fracture, Kyphosis).

``SIGNS`` is the table (data, not code); ``draw.py`` draws each sign and ``reports.py`` words it.
"""

from __future__ import annotations

import dataclasses

SHAPES = (
    "round", "lobulated", "wedge", "band", "meniscus", "crescent", "line", "curve", "ring", "reticular", "patchy",
    "streaks", "dots", "spurs", "loops", "gap", "level", "widening", "elevation", "flattening", "lucency",
)  # fmt: skip
SIZES = ("small", "medium", "large", "diffuse")
DENSITIES = ("opaque", "lucent", "calcified", "metallic")
LOCATIONS = (
    "apex", "upper zone", "mid zone", "lower zone", "periphery", "base", "costophrenic angle", "hilum", "heart",
    "upper mediastinum", "mediastinum", "aorta", "trachea", "retrocardiac", "spine", "ribs", "bones", "soft tissue",
    "diaphragm", "below diaphragm", "lung",
)  # fmt: skip
ATTRIBUTES = {"shape": SHAPES, "size": SIZES, "density": DENSITIES, "location": LOCATIONS}


@dataclasses.dataclass(frozen=True)
class Sign:
    """The visual sign of one class.

    Attributes:
        shape, size, density: one value each from ``SHAPES``, ``SIZES``, ``DENSITIES``.
        location: one or more values from ``LOCATIONS``.
        words: how reports name the finding (plain English; class names such as "pneumoperitoneo" are not).
        description: the sign in attribute words, without side or zone (reports add those); also a ready prompt.
        templates: report sentences; ``{size}``, ``{side}``, ``{sides}``, ``{zone}`` and ``{detail}`` are filled
            from the drawn instance.
        taboo: for unseen classes, words that would give the finding away; training reports never contain them.
    """

    shape: str
    size: str
    density: str
    location: tuple[str, ...]
    words: str
    description: str
    templates: tuple[str, ...]
    taboo: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for field, allowed in (("shape", SHAPES), ("size", SIZES), ("density", DENSITIES)):
            if getattr(self, field) not in allowed:
                raise ValueError(f"sign attribute {field}={getattr(self, field)!r} is not in the vocabulary")
        unknown = [place for place in self.location if place not in LOCATIONS]
        if unknown:
            raise ValueError(f"sign locations {unknown} are not in the vocabulary")

    @property
    def attributes(self) -> tuple[str, str, str, tuple[str, ...]]:
        return self.shape, self.size, self.density, self.location


SIGNS: dict[str, Sign] = {
    "aortic elongation": Sign(
        "widening", "medium", "opaque", ("aorta", "upper mediastinum"), "elongated aorta",
        "enlarged aortic knob widening the upper mediastinum on the left, with a long descending aorta",
        ("Elongated aorta: {detail}.", "The aortic knob is prominent and the aorta elongated, widening the left "
         "upper mediastinum."),
    ),
    "cardiomegaly": Sign(
        "widening", "large", "opaque", ("heart",), "cardiomegaly",
        "large, wide heart shadow",
        ("Cardiomegaly: the heart shadow is {size} and wide.", "Enlarged cardiac silhouette ({size} cardiomegaly)."),
    ),
    "pleural effusion": Sign(
        "meniscus", "medium", "opaque", ("base", "costophrenic angle"), "pleural effusion",
        "meniscus-shaped opacity at the base blunting the costophrenic angle",
        ("{Size} {sides} pleural effusion: a meniscus-shaped opacity at the {sides} base blunting the costophrenic "
         "angle.", "Blunted {sides} costophrenic angle with a meniscus opacity, a {size} pleural effusion."),
    ),
    "Nodule": Sign(
        "round", "small", "opaque", ("upper zone", "lung"), "nodule",
        "small round opacity in the lung, mostly in the upper zone",
        ("{Size} round opaque nodule in the {side} {zone} zone{detail}.", "A {size} round nodule projects over the "
         "{side} {zone} zone{detail}."),
    ),
    "atelectasis": Sign(
        "wedge", "medium", "opaque", ("lower zone", "heart"), "atelectasis",
        "wedge-shaped opacity at the lung base beside the heart",
        ("Atelectasis: a {size} wedge-shaped opacity at the {side} base beside the heart.", "Wedge-shaped {side} "
         "paracardiac opacity in keeping with atelectasis."),
    ),
    "pleural thickening": Sign(
        "band", "small", "opaque", ("periphery", "apex"), "pleural thickening",
        "thin opaque band along the chest wall",
        ("Pleural thickening: an opaque band along the {side} {detail}.", "{Size} band of pleural thickening along "
         "the {side} {detail}."),
    ),
    "aortic atheromatosis": Sign(
        "curve", "small", "calcified", ("aorta",), "aortic atheromatosis",
        "calcified curved line in the aortic knob",
        ("Aortic atheromatosis: a calcified curved line in the aortic knob.", "Calcification curves along the aortic "
         "knob (atheromatosis)."),
    ),
    "Support Devices": Sign(
        "line", "small", "metallic", ("trachea", "soft tissue"), "support devices",
        "metallic tubes, leads or electrodes",
        ("Support devices: {detail}.", "Medical devices in place: {detail}."),
    ),
    "alveolar pattern": Sign(
        "patchy", "large", "opaque", ("lung",), "alveolar pattern",
        "patchy ill-defined airspace opacity",
        ("Alveolar pattern: {size} patchy ill-defined opacity in the {sides} {zone} zone.", "Patchy airspace "
         "consolidation in the {sides} {zone} zone (alveolar pattern)."),
    ),
    "fracture": Sign(
        "gap", "small", "lucent", ("ribs", "bones", "periphery"), "rib fracture",
        "lucent gap across a rib with a bright callus",
        ("Fractures of {detail} on the {side}: lucent gaps across the ribs with callus.", "{Side} rib fractures with "
         "small lucent gaps and callus ({detail})."),
    ),
    "Hernia": Sign(
        "round", "medium", "lucent", ("retrocardiac", "diaphragm"), "hiatal hernia",
        "round lucent area with an air-fluid level behind the heart",
        ("Hiatal hernia: a {size} round lucent area with an air-fluid level behind the heart.", "Retrocardiac round "
         "lucency with a fluid level, a hiatal hernia."),
    ),
    "Emphysema": Sign(
        "lucency", "diffuse", "lucent", ("upper zone", "apex"), "emphysema",
        "hyperlucent upper zones with sparse lung markings",
        ("Emphysema: the upper zones are hyperlucent with sparse markings.", "{Size} emphysema with lucent upper "
         "zones and few vessels."),
    ),
    "azygos lobe": Sign(
        "curve", "small", "opaque", ("apex", "upper mediastinum"), "azygos lobe",
        "thin curved line from the right apex ending in a small teardrop beside the upper mediastinum",
        ("Azygos lobe: a thin curved fissure line at the right apex ending in a small teardrop.", "Azygos fissure "
         "crossing the right apex down to the upper mediastinum."),
    ),
    "Hydropneumothorax": Sign(
        "level", "medium", "lucent", ("base", "periphery"), "hydropneumothorax",
        "lucent pleural space over a horizontal air-fluid level at the base",
        ("Hydropneumothorax on the {side}: lucent pleural air over a horizontal air-fluid level.", "{Side} "
         "hydropneumothorax with a straight air-fluid level at the base."),
    ),
    "Kyphosis": Sign(
        "wedge", "medium", "opaque", ("spine", "ribs"), "kyphosis",
        "wedge-shaped dense mid-thoracic vertebrae with crowded upper ribs",
        ("Kyphosis: wedge-shaped dense mid-thoracic vertebrae and crowded upper ribs.", "Thoracic kyphosis with "
         "wedged vertebral bodies."),
    ),
    "Mass": Sign(
        "lobulated", "large", "opaque", ("lung",), "mass",
        "large round or lobulated opacity in the lung",
        ("{Size} {detail} opaque mass in the {side} {zone} zone.", "A {detail} mass in the {side} {zone} lung, "
         "{size}."),
    ),
    "Pneumothorax": Sign(
        "line", "medium", "lucent", ("apex", "periphery"), "pneumothorax",
        "lucent rim at the apex and chest wall without lung markings, behind a thin pleural line",
        ("{Size} {side} pneumothorax: a lucent rim without lung markings along the apex and chest wall.", "{Side} "
         "apical pneumothorax with a visible pleural line."),
    ),
    "Subcutaneous Emphysema": Sign(
        "streaks", "medium", "lucent", ("soft tissue",), "subcutaneous emphysema",
        "lucent streaks of air in the soft tissue of the chest wall",
        ("Subcutaneous emphysema: lucent streaks of air in the {side} chest wall soft tissue.", "Air streaks in the "
         "{sides} soft tissues (subcutaneous emphysema)."),
    ),
    "pneumoperitoneo": Sign(
        "crescent", "small", "lucent", ("below diaphragm",), "pneumoperitoneum",
        "lucent crescent of free air under the right hemidiaphragm",
        ("Pneumoperitoneum: a lucent crescent of free air under the right hemidiaphragm.", "Free air below the "
         "diaphragm, a {size} lucent crescent (pneumoperitoneum)."),
    ),
    "vascular hilar enlargement": Sign(
        "widening", "medium", "opaque", ("hilum",), "vascular hilar enlargement",
        "enlarged smooth hilar vessel shadows on both sides",
        ("Vascular hilar enlargement: both hila are {size} and widened.", "Enlarged hilar vessels bilaterally."),
    ),
    "vertebral degenerative changes": Sign(
        "spurs", "small", "calcified", ("spine",), "vertebral degenerative changes",
        "small calcified spurs at the vertebral margins",
        ("Degenerative changes of the spine with small calcified spurs at the vertebral margins.", "Vertebral "
         "osteophytes, small calcified spurs along the spine."),
    ),
    "hyperinflated lung": Sign(
        "flattening", "large", "lucent", ("diaphragm",), "hyperinflated lungs",
        "low flat diaphragm under large lucent lungs",
        ("Hyperinflated lungs with a low, flat diaphragm.", "The lungs are large and the diaphragm flattened "
         "(hyperinflation)."),
    ),
    "interstitial pattern": Sign(
        "reticular", "diffuse", "opaque", ("lower zone", "lung"), "interstitial pattern",
        "fine reticular network of lines in the lungs",
        ("Interstitial pattern: a fine reticular network of lines in the {zone} zones.", "Reticular interstitial "
         "markings, {size}, in the {zone} zones."),
    ),
    "central venous catheter": Sign(
        "line", "small", "metallic", ("upper mediastinum", "mediastinum"), "central venous catheter",
        "thin bright line from the neck down the mediastinum",
        ("Central venous catheter: a thin bright line from the {side} {detail} down to the mediastinum.", "{Side} "
         "{detail} central line with its tip in the superior vena cava."),
    ),
    "hypoexpansion": Sign(
        "elevation", "large", "opaque", ("diaphragm",), "low lung volumes",
        "high diaphragm on both sides with small lungs",
        ("Hypoexpansion: low lung volumes with both hemidiaphragms high.", "Poor inspiration, small lungs under a "
         "high diaphragm."),
    ),
    "bronchiectasis": Sign(
        "ring", "small", "opaque", ("lower zone",), "bronchiectasis",
        "clustered small thick-walled rings in the lower zone",
        ("Bronchiectasis: clustered small thick-walled rings in the {sides} lower zone.", "Small ring shadows with "
         "thick walls at the {sides} base (bronchiectasis)."),
    ),
    "hemidiaphragm elevation": Sign(
        "elevation", "medium", "opaque", ("diaphragm",), "hemidiaphragm elevation",
        "one hemidiaphragm higher than the other",
        ("Elevated {side} hemidiaphragm.", "The {side} hemidiaphragm is high ({size} elevation)."),
    ),
    "sternotomy": Sign(
        "loops", "small", "metallic", ("mediastinum",), "sternotomy",
        "stacked metallic wire loops along the midline",
        ("Sternotomy wires: stacked metallic loops along the midline.", "Median sternotomy with {detail} wire loops."),
    ),
    "calcified densities": Sign(
        "dots", "small", "calcified", ("upper zone", "lung"), "calcified densities",
        "clustered small calcified dots in the lungs",
        ("Calcified densities: {detail} small calcified dots in the {sides} {zone} zone.", "Small calcified "
         "granulomas ({detail}) in the {sides} {zone} zone."),
    ),
    "Scoliosis": Sign(
        "curve", "large", "opaque", ("spine",), "scoliosis",
        "the spine curves to the side",
        ("Scoliosis: the thoracic spine is curved.", "{Size} scoliotic curve of the spine."),
        taboo=("scolio", "spine curves", "curved spine", "spine is curved", "curve of the spine", "spinal curve"),
    ),
    "Osteopenia": Sign(
        "lucency", "diffuse", "lucent", ("bones", "ribs", "spine"), "osteopenia",
        "faint lucent bones with thin cortices",
        ("Osteopenia: the bones are faint and lucent.", "Diffuse osteopenia, faint ribs and spine."),
        taboo=("osteopeni", "faint bones", "bones are faint", "faint ribs", "demineral", "lucent bones", "thin cortic"),
    ),
    "Bulla": Sign(
        "ring", "large", "lucent", ("upper zone", "apex"), "bulla",
        "large thin-walled lucent round area in the upper zone",
        ("Bulla: a {size} thin-walled lucent area in the {side} upper zone.", "{Side} apical bulla, a large lucent "
         "ring."),
        taboo=("bulla", "bullae", "bullous", "thin-walled", "thin walled", "lucent ring"),
    ),
    "Infarction": Sign(
        "wedge", "medium", "opaque", ("lower zone", "periphery"), "pulmonary infarction",
        "wedge-shaped pleural-based opacity at the lung periphery",
        ("Pulmonary infarction: a wedge-shaped pleural-based opacity in the {side} lower zone.", "{Side} peripheral "
         "wedge opacity at the base, an infarct."),
        taboo=("infarct", "pleural-based", "pleural based", "hampton", "peripheral wedge"),
    ),
    "Adenopathy": Sign(
        "lobulated", "medium", "opaque", ("hilum", "upper mediastinum"), "adenopathy",
        "lobulated opacities of enlarged lymph nodes at the hilum and beside the trachea",
        ("Adenopathy: lobulated enlarged lymph nodes at the {sides} hilum.", "Lobulated hilar and paratracheal "
         "lymphadenopathy."),
        taboo=("adenopath", "lymph", "lobulated hil", "paratracheal", "node"),
    ),
    "Goiter": Sign(
        "widening", "large", "opaque", ("upper mediastinum", "trachea"), "goiter",
        "widened upper mediastinum at the thoracic inlet pushing the trachea to the side",
        ("Goiter: a wide opaque upper mediastinum at the thoracic inlet displacing the trachea to the {side}.",
         "Thyroid enlargement widening the thoracic inlet, trachea displaced."),
        taboo=("goiter", "goitre", "thyroid", "thoracic inlet", "trachea displaced", "displacing the trachea",
               "tracheal deviation", "tracheal shift"),
    ),
}  # fmt: skip
