"""Drawing the 35 finding signs on a phantom chest, and rendering one radiograph.

Each finding has a *plan* step (sample where and how strong the sign is, and edit the anatomy for signs that change
it: a wider heart, a higher diaphragm, a curved spine) and a *draw* step (overlay opacities, lucencies and devices
on the attenuation layers after the normal chest is drawn). A sign's ``strength`` in [0, 1] scales its size and
contrast; instances get a random strength in ``STRENGTH_RANGE`` so faint and obvious cases both occur.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable

import cv2
import numpy as np

from cxrlt_core.data.demo import boxes
from cxrlt_core.data.demo.anatomy import (
    SIDES,
    Anatomy,
    Canvas,
    draw_anatomy,
    expose,
    pose_matrix,
    ribs,
    sample_acquisition,
    sample_anatomy,
)
from cxrlt_core.data.demo.findings import SIGNS
from cxrlt_core.errors import InputError
from cxrlt_core.registry import Registry

STRENGTH_RANGE = (0.35, 1.0)
BIT_DEPTH = 12  # stored in 16-bit PNGs, like most PadChest images (12-bit detectors)


@dataclasses.dataclass
class Instance:
    """One drawn finding: what the report says about it and the geometry the drawing used."""

    finding: str
    strength: float
    side: str = "right"
    sides: str = "right"
    zone: str = "mid"
    detail: str = ""
    geo: dict[str, object] = dataclasses.field(default_factory=dict)
    undo: dict[str, object] = dataclasses.field(default_factory=dict, repr=False)  # anatomy fields before the plan

    @property
    def size(self) -> str:
        return "small" if self.strength < 0.55 else ("medium" if self.strength < 0.8 else "large")


Plan = Callable[[Instance, Anatomy, np.random.Generator, frozenset[str]], None]
Draw = Callable[[Canvas, Anatomy, Instance, np.random.Generator], None]
PLANS: Registry[Plan] = Registry("phantom sign plan")  # finding → samples the instance, edits the anatomy
DRAWS: Registry[Draw] = Registry("phantom sign drawing")  # finding → draws on the layers after the anatomy
plans, draws = PLANS.register, DRAWS.register


def _side(rng: np.random.Generator, bilateral: float = 0.0) -> tuple[str, str]:
    """A random side, and the words for the sides involved ("right", "left" or "bilateral")."""
    side = SIDES[int(rng.integers(2))]
    return side, ("bilateral" if rng.random() < bilateral else side)


def _sides(inst: Instance) -> tuple[str, ...]:
    return SIDES if inst.sides == "bilateral" else (inst.side,)


def _lerp(strength: float, low: float, high: float) -> float:
    return low + (high - low) * strength


# -- signs that change the anatomy ---------------------------------------------------------------------------------
@plans("aortic elongation")
def _plan_aortic_elongation(inst: Instance, anat: Anatomy, rng: np.random.Generator, present: frozenset[str]) -> None:
    s = inst.strength
    anat.aorta_elongation += _lerp(s, 0.02, 0.05)
    anat.knob_radius *= _lerp(s, 1.05, 1.35)
    kx, ky = anat.knob_center
    anat.knob_center = (kx + _lerp(s, 0.003, 0.016), ky - _lerp(s, 0.003, 0.02))
    inst.detail = "a large aortic knob widens the left upper mediastinum"


@plans("cardiomegaly")
def _plan_cardiomegaly(inst: Instance, anat: Anatomy, rng: np.random.Generator, present: frozenset[str]) -> None:
    anat.heart_scale *= _lerp(inst.strength, 1.15, 1.4)
    anat.heart_height *= _lerp(inst.strength, 1.04, 1.14)


@plans("Emphysema")
def _plan_emphysema(inst: Instance, anat: Anatomy, rng: np.random.Generator, present: frozenset[str]) -> None:
    inst.sides = "bilateral"
    anat.upper_lung_density *= _lerp(inst.strength, 0.85, 0.55)
    anat.upper_marking_gain = _lerp(inst.strength, 0.7, 0.3)


@plans("Kyphosis")
def _plan_kyphosis(inst: Instance, anat: Anatomy, rng: np.random.Generator, present: frozenset[str]) -> None:
    anat.rib_crowding = _lerp(inst.strength, 0.2, 0.4)
    anat.vertebra_density = _lerp(inst.strength, 0.12, 0.25)


@plans("vascular hilar enlargement")
def _plan_hilar(inst: Instance, anat: Anatomy, rng: np.random.Generator, present: frozenset[str]) -> None:
    inst.sides = "bilateral"
    anat.hilum_scale = _lerp(inst.strength, 1.5, 2.2)


@plans("hyperinflated lung")
def _plan_hyperinflated(inst: Instance, anat: Anatomy, rng: np.random.Generator, present: frozenset[str]) -> None:
    drop = _lerp(inst.strength, 0.04, 0.08)
    anat.dome_y = [y + drop for y in anat.dome_y]
    anat.dome_depth *= _lerp(inst.strength, 0.7, 0.4)
    anat.half_width += 0.01
    anat.heart_scale *= 0.9
    anat.heart_y += drop * 0.8


@plans("hypoexpansion")
def _plan_hypoexpansion(inst: Instance, anat: Anatomy, rng: np.random.Generator, present: frozenset[str]) -> None:
    rise = _lerp(inst.strength, 0.045, 0.085)
    anat.dome_y = [y - rise for y in anat.dome_y]
    anat.heart_y -= rise * 0.8
    anat.marking_gain *= 1.3


@plans("hemidiaphragm elevation")
def _plan_hemidiaphragm(inst: Instance, anat: Anatomy, rng: np.random.Generator, present: frozenset[str]) -> None:
    inst.side, inst.sides = _side(rng)
    index = SIDES.index(inst.side)
    anat.dome_y[index] -= _lerp(inst.strength, 0.08, 0.13)
    if inst.side == "left":
        anat.heart_y -= 0.02


@plans("Scoliosis")
def _plan_scoliosis(inst: Instance, anat: Anatomy, rng: np.random.Generator, present: frozenset[str]) -> None:
    anat.spine_curve = _lerp(inst.strength, 0.035, 0.065) * rng.choice([-1.0, 1.0])
    anat.spine_phase = rng.uniform(-0.6, 0.6)


@plans("Osteopenia")
def _plan_osteopenia(inst: Instance, anat: Anatomy, rng: np.random.Generator, present: frozenset[str]) -> None:
    anat.bone_density = _lerp(inst.strength, 0.5, 0.2)


@plans("Goiter")
def _plan_goiter(inst: Instance, anat: Anatomy, rng: np.random.Generator, present: frozenset[str]) -> None:
    inst.side, inst.sides = _side(rng)
    anat.upper_mediastinum = _lerp(inst.strength, 0.085, 0.12)
    # the mass pushes the trachea away from its larger lobe: towards the side named in the report
    anat.trachea_shift = anat.side_sign(inst.side) * _lerp(inst.strength, 0.02, 0.04)
    inst.geo["lobe"] = -anat.side_sign(inst.side)


@draws("Goiter")
def _draw_goiter(c: Canvas, anat: Anatomy, inst: Instance, rng: np.random.Generator) -> None:
    center = (anat.midline + float(inst.geo["lobe"]) * 0.03, 0.11)
    c.ellipse(c.tissue, center, (anat.upper_mediastinum + 0.02, 0.085), 1.05)
    c.line(
        c.tissue,
        np.array([[anat.midline, -0.02], [anat.midline + anat.trachea_shift, 0.12], [anat.midline, 0.3]]),
        0.62,
        0.036,
    )


# -- pleura ---------------------------------------------------------------------------------------------------------
@plans("pleural effusion")
def _plan_effusion(inst: Instance, anat: Anatomy, rng: np.random.Generator, present: frozenset[str]) -> None:
    inst.side, inst.sides = _side(rng, bilateral=0.25)
    inst.zone = "lower"


def _effusion_polygon(anat: Anatomy, side: str, height: float, reach: float) -> np.ndarray:
    """Fluid in the costophrenic recess: a meniscus rising along the lateral wall."""
    wall, cp_y = anat.costophrenic(side)
    sign = anat.side_sign(side)
    inner_x = wall - sign * reach
    u = np.linspace(0.0, 1.0, 14)
    xs = wall - sign * reach * u
    floor = anat.diaphragm_y(side, xs)
    top = cp_y - height
    meniscus_y = top + (anat.diaphragm_y(side, np.array([inner_x]))[0] - top) * u**1.6
    upper = np.stack([xs, np.minimum(meniscus_y, floor)], 1)
    lower = np.stack([xs[::-1], floor[::-1] + 0.02], 1)
    wall_pts = np.array([[wall + sign * 0.01, cp_y + 0.02], [wall + sign * 0.01, top]])
    return np.concatenate([upper, lower, wall_pts]).astype(np.float32)


@draws("pleural effusion")
def _draw_effusion(c: Canvas, anat: Anatomy, inst: Instance, rng: np.random.Generator) -> None:
    for side in _sides(inst):
        height = _lerp(inst.strength, 0.05, 0.17) * rng.uniform(0.85, 1.1)
        reach = anat.half_width * _lerp(inst.strength, 0.55, 0.85)
        polygon = _effusion_polygon(anat, side, height, reach)
        c.fill(c.tissue, [polygon], 0.78)
        c.fill(c.marking_mask, [polygon], 0.0)


@plans("pleural thickening")
def _plan_thickening(inst: Instance, anat: Anatomy, rng: np.random.Generator, present: frozenset[str]) -> None:
    inst.side, inst.sides = _side(rng, bilateral=0.2)
    apical = rng.random() < 0.5
    inst.geo["apical"] = apical
    inst.detail = "apex (apical cap)" if apical else "lateral chest wall"


@draws("pleural thickening")
def _draw_thickening(c: Canvas, anat: Anatomy, inst: Instance, rng: np.random.Generator) -> None:
    width = _lerp(inst.strength, 0.01, 0.022)
    for side in _sides(inst):
        outline = anat.lung_polygon(side)[:24]  # apex → costophrenic angle along the lateral wall
        part = outline[:9] if inst.geo["apical"] else outline[8:23]
        sign = anat.side_sign(side)
        inset = part + np.array([-sign * width, width if inst.geo["apical"] else 0.0], np.float32)
        c.line(c.lesion, inset, _lerp(inst.strength, 0.3, 0.5), width)


def _pneumothorax_region(anat: Anatomy, side: str, depth: float, extent: float) -> tuple[np.ndarray, np.ndarray]:
    """The pleural air space (polygon) along the apex and lateral wall, and the visceral pleural line bounding it."""
    outline = anat.lung_polygon(side)[:24]
    stop = max(3, int(len(outline) * extent))
    part = outline[:stop]
    sign = anat.side_sign(side)
    taper = np.linspace(1.0, 0.15, stop) ** 0.8
    inner = part.copy()
    inner[:, 0] -= sign * depth * taper
    inner[:, 1] += depth * taper * np.linspace(1.0, 0.0, stop)
    return np.concatenate([part, inner[::-1]]).astype(np.float32), inner


@plans("Pneumothorax")
def _plan_pneumothorax(inst: Instance, anat: Anatomy, rng: np.random.Generator, present: frozenset[str]) -> None:
    inst.side, inst.sides = _side(rng)
    inst.zone = "upper"


@draws("Pneumothorax")
def _draw_pneumothorax(c: Canvas, anat: Anatomy, inst: Instance, rng: np.random.Generator) -> None:
    depth = _lerp(inst.strength, 0.035, 0.09)
    region, pleura = _pneumothorax_region(anat, inst.side, depth, _lerp(inst.strength, 0.55, 0.85))
    c.fill(c.tissue, [region], 0.06)
    c.fill(c.marking_mask, [region], 0.0)
    c.line(c.lesion, pleura, 0.16, 0.005)


@plans("Hydropneumothorax")
def _plan_hydropneumothorax(inst: Instance, anat: Anatomy, rng: np.random.Generator, present: frozenset[str]) -> None:
    inst.side, inst.sides = _side(rng)
    inst.zone = "lower"


@draws("Hydropneumothorax")
def _draw_hydropneumothorax(c: Canvas, anat: Anatomy, inst: Instance, rng: np.random.Generator) -> None:
    side = inst.side
    depth = _lerp(inst.strength, 0.05, 0.1)
    region, pleura = _pneumothorax_region(anat, side, depth, 1.0)
    c.fill(c.tissue, [region], 0.06)
    c.fill(c.marking_mask, [region], 0.0)
    c.line(c.lesion, pleura[: len(pleura) * 2 // 3], 0.14, 0.005)
    _, cp_y = anat.costophrenic(side)
    level = int(round((cp_y - _lerp(inst.strength, 0.1, 0.18)) * c.size))
    # fluid fills the hemithorax below a level that is horizontal whatever the lung outline
    fluid = np.zeros_like(c.lesion)
    c.fill(fluid, [anat.lung_polygon(side)], 0.5)
    fluid[: max(level, 0)] = 0.0
    c.lesion += fluid
    c.marking_mask[fluid > 0] = 0.0


# -- lung opacities and lucencies -----------------------------------------------------------------------------------
def _plan_lung_lesion(inst: Instance, anat: Anatomy, rng: np.random.Generator, zones: Iterable[str]) -> None:
    inst.side, inst.sides = _side(rng)
    inst.zone = str(rng.choice(list(zones)))
    inst.geo["center"] = anat.sample_lung_point(rng, inst.side, inst.zone, inset=0.04)


@plans("Nodule")
def _plan_nodule(inst: Instance, anat: Anatomy, rng: np.random.Generator, present: frozenset[str]) -> None:
    # upper-zone predominance (as for most primary lung cancers), strong here so the sign has a typical place
    _plan_lung_lesion(inst, anat, rng, ("upper",) * 17 + ("mid",) * 3)
    extra = int(rng.choice([0, 1, 2], p=[0.5, 0.3, 0.2]))  # smaller nodules in the same lung
    inst.geo["others"] = [anat.sample_lung_point(rng, inst.side, inst.zone, 0.04) for _ in range(extra)]
    inst.detail = {0: "", 1: " and one more smaller nodule", 2: " and two more smaller nodules"}[extra]


@draws("Nodule")
def _draw_nodule(c: Canvas, anat: Anatomy, inst: Instance, rng: np.random.Generator) -> None:
    radius = _lerp(inst.strength, 0.024, 0.036)
    value = _lerp(inst.strength, 0.35, 0.52)
    c.ellipse(c.lesion, inst.geo["center"], (radius, radius * rng.uniform(0.85, 1.1)), value)
    for center in inst.geo["others"]:  # type: ignore[union-attr]
        c.ellipse(c.lesion, center, (radius * 0.8, radius * 0.8), value)


@plans("Mass")
def _plan_mass(inst: Instance, anat: Anatomy, rng: np.random.Generator, present: frozenset[str]) -> None:
    _plan_lung_lesion(inst, anat, rng, ("upper", "mid"))
    inst.detail = "lobulated" if rng.random() < 0.5 else "round"


@draws("Mass")
def _draw_mass(c: Canvas, anat: Anatomy, inst: Instance, rng: np.random.Generator) -> None:
    radius = _lerp(inst.strength, 0.045, 0.075)
    cx, cy = inst.geo["center"]
    value = _lerp(inst.strength, 0.28, 0.45)
    c.ellipse(c.lesion, (cx, cy), (radius, radius * rng.uniform(0.85, 1.0)), value, rng.uniform(0, 180))
    if inst.detail == "lobulated":
        for angle in rng.uniform(0, 2 * math.pi, 3):
            bump = (cx + 0.8 * radius * math.cos(angle), cy + 0.8 * radius * math.sin(angle))
            c.ellipse(c.lesion, bump, (radius * 0.5, radius * 0.5), value)


@plans("alveolar pattern")
def _plan_alveolar(inst: Instance, anat: Anatomy, rng: np.random.Generator, present: frozenset[str]) -> None:
    inst.side, inst.sides = _side(rng, bilateral=0.3)
    inst.zone = str(rng.choice(["mid", "lower"]))


@draws("alveolar pattern")
def _draw_alveolar(c: Canvas, anat: Anatomy, inst: Instance, rng: np.random.Generator) -> None:
    def patches(layer: np.ndarray) -> None:
        for side in _sides(inst):
            cx, cy = anat.sample_lung_point(rng, side, inst.zone, inset=0.06)
            for _ in range(int(rng.integers(5, 9))):
                center = (cx + rng.normal(0, 0.04), cy + rng.normal(0, 0.03))
                axes = (rng.uniform(0.025, 0.05) * _lerp(inst.strength, 0.8, 1.3), rng.uniform(0.02, 0.04))
                c.ellipse(layer, center, axes, _lerp(inst.strength, 0.2, 0.32), rng.uniform(0, 180))

    c.add(c.lesion, patches, blur=0.012)


@plans("atelectasis")
def _plan_atelectasis(inst: Instance, anat: Anatomy, rng: np.random.Generator, present: frozenset[str]) -> None:
    inst.side, inst.sides = _side(rng)
    inst.zone = "lower"


@draws("atelectasis")
def _draw_atelectasis(c: Canvas, anat: Anatomy, inst: Instance, rng: np.random.Generator) -> None:
    sign = anat.side_sign(inst.side)
    hx, hy = anat.hilum(inst.side)
    base_in = anat.midline + sign * 0.06
    base_out = base_in + sign * _lerp(inst.strength, 0.1, 0.17)
    floor = anat.diaphragm_y(inst.side, np.array([base_in, base_out]))
    wedge = np.array([[hx, hy + 0.04], [base_out, floor[1] + 0.01], [base_in, floor[0] + 0.01]], np.float32)

    def draw(layer: np.ndarray) -> None:
        c.fill(layer, [wedge], _lerp(inst.strength, 0.22, 0.36))

    c.add(c.lesion, draw, blur=0.006)


@plans("Infarction")
def _plan_infarction(inst: Instance, anat: Anatomy, rng: np.random.Generator, present: frozenset[str]) -> None:
    inst.side, inst.sides = _side(rng)
    inst.zone = "lower"


@draws("Infarction")
def _draw_infarction(c: Canvas, anat: Anatomy, inst: Instance, rng: np.random.Generator) -> None:
    sign = anat.side_sign(inst.side)
    wall, cp_y = anat.costophrenic(inst.side)
    y = cp_y - rng.uniform(0.1, 0.16)
    half = _lerp(inst.strength, 0.04, 0.065)
    depth = _lerp(inst.strength, 0.08, 0.12)
    apex = (wall - sign * depth, y + rng.uniform(-0.01, 0.01))
    wedge = np.array([[wall + sign * 0.01, y - half], [wall + sign * 0.01, y + half], apex], np.float32)

    def draw(layer: np.ndarray) -> None:
        c.fill(layer, [wedge], _lerp(inst.strength, 0.25, 0.38))
        c.ellipse(layer, apex, (depth * 0.2, half * 0.45), _lerp(inst.strength, 0.25, 0.38))  # rounded apex (hump)

    c.add(c.lesion, draw, blur=0.006)


@plans("interstitial pattern")
def _plan_interstitial(inst: Instance, anat: Anatomy, rng: np.random.Generator, present: frozenset[str]) -> None:
    inst.sides = "bilateral"
    inst.zone = "lower" if rng.random() < 0.7 else "mid and lower"


@draws("interstitial pattern")
def _draw_interstitial(c: Canvas, anat: Anatomy, inst: Instance, rng: np.random.Generator) -> None:
    zones = ("lower",) if inst.zone == "lower" else ("mid", "lower")
    count = int(_lerp(inst.strength, 50, 110))
    # segments anywhere in the zone band; the lung mask multiplying the markings layer keeps them inside the lungs
    y0 = min(anat.lung_zone_y(side, zones[0])[0] for side in SIDES)
    y1 = max(anat.lung_zone_y(side, "lower")[1] for side in SIDES)
    sign = np.where(rng.random(count) < 0.5, -1.0, 1.0)
    start = np.stack([anat.midline + sign * rng.uniform(0.06, anat.half_width, count), rng.uniform(y0, y1, count)], 1)
    angle = rng.uniform(0, math.pi, count)
    step = rng.uniform(0.015, 0.035, count)[:, None] * np.stack([np.cos(angle), np.sin(angle)], 1)
    c.line(c.markings, np.stack([start, start + step], 1), _lerp(inst.strength, 0.13, 0.2), 0.006)


@plans("bronchiectasis")
def _plan_bronchiectasis(inst: Instance, anat: Anatomy, rng: np.random.Generator, present: frozenset[str]) -> None:
    inst.side, inst.sides = _side(rng, bilateral=0.3)
    inst.zone = "lower"


@draws("bronchiectasis")
def _draw_bronchiectasis(c: Canvas, anat: Anatomy, inst: Instance, rng: np.random.Generator) -> None:
    value = _lerp(inst.strength, 0.2, 0.32)
    for side in _sides(inst):
        sign = anat.side_sign(side)
        hx, hy = anat.hilum(side)
        cx, cy = hx + sign * 0.07, (hy + anat.dome(side)) / 2 + 0.03
        for _ in range(int(_lerp(inst.strength, 5, 10))):
            center = (cx + rng.normal(0, 0.035), cy + rng.normal(0, 0.03))
            radius = rng.uniform(0.009, 0.014)
            c.ellipse(c.lesion, center, (radius, radius), value, thickness=0.006)
        for _ in range(2):
            x, y = cx + rng.normal(0, 0.03), cy + rng.normal(0, 0.03)
            for offset in (-0.008, 0.008):
                c.line(
                    c.lesion, np.array([[x + offset, y - 0.03], [x + offset + sign * 0.015, y + 0.02]]), value, 0.004
                )


@plans("calcified densities")
def _plan_calcified(inst: Instance, anat: Anatomy, rng: np.random.Generator, present: frozenset[str]) -> None:
    # granulomas cluster in one zone (typically the upper zones, as after healed tuberculosis)
    count = int(rng.integers(5, 12))
    inst.side, inst.sides = _side(rng, bilateral=0.5)
    inst.zone = "upper" if rng.random() < 0.85 else "mid"
    inst.geo["points"] = [
        anat.sample_lung_point(rng, SIDES[k % 2] if inst.sides == "bilateral" else inst.side, inst.zone, 0.02)
        for k in range(count)
    ]
    inst.detail = f"{count}"


@draws("calcified densities")
def _draw_calcified(c: Canvas, anat: Anatomy, inst: Instance, rng: np.random.Generator) -> None:
    for point in inst.geo["points"]:  # type: ignore[union-attr]
        radius = rng.uniform(0.008, 0.012) * _lerp(inst.strength, 0.9, 1.25)
        c.ellipse(c.lesion, point, (radius, radius), _lerp(inst.strength, 0.6, 1.0))


@plans("Bulla")
def _plan_bulla(inst: Instance, anat: Anatomy, rng: np.random.Generator, present: frozenset[str]) -> None:
    inst.side, inst.sides = _side(rng)
    inst.zone = "upper"
    inst.geo["center"] = anat.sample_lung_point(rng, inst.side, "upper", inset=0.05)


@draws("Bulla")
def _draw_bulla(c: Canvas, anat: Anatomy, inst: Instance, rng: np.random.Generator) -> None:
    radius = _lerp(inst.strength, 0.045, 0.075)
    axes = (radius, radius * rng.uniform(0.8, 1.0))
    c.ellipse(c.tissue, inst.geo["center"], axes, 0.05)
    c.ellipse(c.marking_mask, inst.geo["center"], axes, 0.0)
    c.ellipse(c.lesion, inst.geo["center"], axes, 0.14, thickness=0.005)


# -- hila and mediastinum -------------------------------------------------------------------------------------------
@plans("Adenopathy")
def _plan_adenopathy(inst: Instance, anat: Anatomy, rng: np.random.Generator, present: frozenset[str]) -> None:
    inst.side, inst.sides = _side(rng, bilateral=0.6)


@draws("Adenopathy")
def _draw_adenopathy(c: Canvas, anat: Anatomy, inst: Instance, rng: np.random.Generator) -> None:
    value = _lerp(inst.strength, 0.25, 0.4)

    def nodes(layer: np.ndarray) -> None:
        for side in _sides(inst):
            hx, hy = anat.hilum(side)
            sign = anat.side_sign(side)
            for _ in range(int(rng.integers(3, 6))):
                center = (hx + sign * rng.uniform(0.0, 0.035), hy + rng.uniform(-0.05, 0.05))
                radius = _lerp(inst.strength, 0.014, 0.022) * rng.uniform(0.8, 1.2)
                c.ellipse(layer, center, (radius, radius), value)
        for k in range(int(rng.integers(2, 4))):  # right paratracheal chain
            center = (anat.midline - 0.055 - rng.uniform(0, 0.015), 0.2 + 0.035 * k)
            c.ellipse(layer, center, (0.017, 0.016), value)

    c.add(c.lesion, nodes, blur=0.003)


@plans("azygos lobe")
def _plan_azygos(inst: Instance, anat: Anatomy, rng: np.random.Generator, present: frozenset[str]) -> None:
    inst.side = inst.sides = "right"
    inst.zone = "upper"


@draws("azygos lobe")
def _draw_azygos(c: Canvas, anat: Anatomy, inst: Instance, rng: np.random.Generator) -> None:
    m = anat.midline
    top = (m - rng.uniform(0.1, 0.14), anat.apex_y + 0.01)
    tear = (m - 0.06, _lerp(rng.random(), 0.25, 0.29))
    u = np.linspace(0, 1, 10)[:, None]
    bend = np.array([0.03, 0.0])
    curve = (
        (1 - u) ** 2 * np.array(top) + 2 * u * (1 - u) * (np.array(top) + bend + [0.0, 0.08]) + u**2 * np.array(tear)
    )
    value = _lerp(inst.strength, 0.3, 0.45)
    c.line(c.lesion, curve, value, 0.008)
    c.ellipse(c.lesion, tear, (0.018, 0.028), value + 0.2, 30)


@plans("Hernia")
def _plan_hernia(inst: Instance, anat: Anatomy, rng: np.random.Generator, present: frozenset[str]) -> None:
    inst.zone = "lower"


@draws("Hernia")
def _draw_hernia(c: Canvas, anat: Anatomy, inst: Instance, rng: np.random.Generator) -> None:
    radius = _lerp(inst.strength, 0.028, 0.05)
    center = (anat.midline + rng.uniform(0.0, 0.04), anat.heart_y - radius * 0.6)
    scratch = np.zeros_like(c.lesion)
    c.ellipse(scratch, center, (radius * 1.1, radius), -_lerp(inst.strength, 0.18, 0.35))
    level = int(round((center[1] + radius * 0.2) * c.size))
    scratch[max(level, 0) :, :] *= -0.2  # fluid below the level: slightly denser than the heart around it
    c.lesion += scratch
    c.ellipse(c.lesion, center, (radius * 1.1, radius), 0.1, thickness=0.004)


# -- bones ---------------------------------------------------------------------------------------------------------
@plans("fracture")
def _plan_fracture(inst: Instance, anat: Anatomy, rng: np.random.Generator, present: frozenset[str]) -> None:
    inst.side, inst.sides = _side(rng)
    count = 2 + int(rng.random() < inst.strength)
    first = int(rng.integers(3, 8 - count + 1))
    inst.geo["ribs"] = list(range(first, first + count))
    names = ["1st", "2nd", "3rd"] + [f"{k}th" for k in range(4, 11)]
    ordinals = [names[k] for k in inst.geo["ribs"]]  # type: ignore[union-attr]
    inst.detail = f"the {', '.join(ordinals[:-1])} and {ordinals[-1]} ribs"


@draws("fracture")
def _draw_fracture(c: Canvas, anat: Anatomy, inst: Instance, rng: np.random.Generator) -> None:
    posterior, _ = ribs(anat, inst.side)
    for k in inst.geo["ribs"]:  # type: ignore[union-attr]
        rib = posterior[k]
        at = rng.uniform(0.65, 0.85) * (len(rib) - 1)
        i = int(at)
        point = rib[i] + (rib[i + 1] - rib[i]) * (at - i)
        direction = rib[i + 1] - rib[i]
        normal = np.array([-direction[1], direction[0]]) / (np.linalg.norm(direction) + 1e-9)
        gap = np.stack([point - normal * 0.014, point + normal * 0.014])
        c.line(c.lesion, gap, -0.1, _lerp(inst.strength, 0.007, 0.011))
        callus = _lerp(inst.strength, 0.016, 0.026)
        c.ellipse(
            c.lesion,
            tuple(point + normal * 0.004),
            (callus, callus * 0.8),
            _lerp(inst.strength, 0.22, 0.36),
            math.degrees(math.atan2(direction[1], direction[0])),
        )


@plans("vertebral degenerative changes")
def _plan_degenerative(inst: Instance, anat: Anatomy, rng: np.random.Generator, present: frozenset[str]) -> None:
    inst.sides = "bilateral"


@draws("vertebral degenerative changes")
def _draw_degenerative(c: Canvas, anat: Anatomy, inst: Instance, rng: np.random.Generator) -> None:
    spurs = []
    levels = rng.choice(np.arange(0.33, 0.95, 0.043), size=int(_lerp(inst.strength, 4, 9)), replace=False)
    length = _lerp(inst.strength, 0.014, 0.024)
    for y in levels:
        x = float(anat.spine_x(y))
        for sign in (-1.0, 1.0):
            if rng.random() < 0.75:
                base = x + sign * 0.037
                spurs.append(np.array([[base, y - 0.004], [base + sign * length, y + 0.004], [base, y + 0.012]]))
    c.fill(c.lesion, spurs or [np.array([[0, 0], [0, 0], [0, 0]])], _lerp(inst.strength, 0.25, 0.4))


# -- soft tissue and abdomen ----------------------------------------------------------------------------------------
@plans("Subcutaneous Emphysema")
def _plan_subcutaneous(inst: Instance, anat: Anatomy, rng: np.random.Generator, present: frozenset[str]) -> None:
    inst.side, inst.sides = _side(rng, bilateral=0.3)


@draws("Subcutaneous Emphysema")
def _draw_subcutaneous(c: Canvas, anat: Anatomy, inst: Instance, rng: np.random.Generator) -> None:
    streaks = []
    for side in _sides(inst):
        sign = anat.side_sign(side)
        wall = anat.wall_x(side)
        for _ in range(int(_lerp(inst.strength, 8, 16))):
            x = wall + sign * rng.uniform(0.015, 0.045)
            y = rng.uniform(0.15, 0.6)
            dx, dy = sign * rng.uniform(-0.01, 0.01), rng.uniform(0.025, 0.05)
            streaks.append(np.array([[x, y], [x + dx, y + dy]]))
        for _ in range(3):  # over the shoulder girdle
            x = anat.midline + sign * rng.uniform(0.2, 0.32)
            y = rng.uniform(0.14, 0.2)
            streaks.append(np.array([[x, y], [x + sign * 0.04, y + rng.uniform(-0.01, 0.01)]]))
    c.line(c.lesion, streaks, -_lerp(inst.strength, 0.3, 0.5), 0.008)


@plans("pneumoperitoneo")
def _plan_pneumoperitoneum(inst: Instance, anat: Anatomy, rng: np.random.Generator, present: frozenset[str]) -> None:
    inst.side = inst.sides = "right"


@draws("pneumoperitoneo")
def _draw_pneumoperitoneum(c: Canvas, anat: Anatomy, inst: Instance, rng: np.random.Generator) -> None:
    wall = anat.wall_x("right")
    xs = np.linspace(wall + 0.02, anat.midline - 0.06, 16)
    top = anat.diaphragm_y("right", xs) + 0.008
    u = np.linspace(0, 1, 16)
    thickness = _lerp(inst.strength, 0.014, 0.03) * np.sin(math.pi * u) ** 0.7
    crescent = np.concatenate([np.stack([xs, top], 1), np.stack([xs[::-1], (top + thickness)[::-1]], 1)])
    c.fill(c.lesion, [crescent.astype(np.float32)], -_lerp(inst.strength, 0.4, 0.6))


# -- devices -------------------------------------------------------------------------------------------------------
DEVICES = ("endotracheal tube", "ECG electrodes", "nasogastric tube", "pacemaker")


@plans("Support Devices")
def _plan_devices(inst: Instance, anat: Anatomy, rng: np.random.Generator, present: frozenset[str]) -> None:
    # a central venous catheter is itself a support device; other devices come with it only sometimes
    count = int(rng.integers(1, 3))
    if "central venous catheter" in present:
        count = int(rng.random() < 0.35)
    chosen = sorted(rng.choice(len(DEVICES), size=count, replace=False).tolist()) if count else []
    inst.geo["devices"] = [DEVICES[k] for k in chosen]
    words = list(inst.geo["devices"]) + (["a central venous catheter"] if "central venous catheter" in present else [])
    inst.detail = ", ".join(words)


@draws("Support Devices")
def _draw_devices(c: Canvas, anat: Anatomy, inst: Instance, rng: np.random.Generator) -> None:
    m = anat.midline
    for device in inst.geo["devices"]:  # type: ignore[union-attr]
        if device == "endotracheal tube":
            tip = rng.uniform(0.22, 0.28)
            c.line(c.metal, np.array([[m + anat.trachea_shift * 0.5, -0.02], [m, tip]]), 0.32, 0.012)
        elif device == "nasogastric tube":
            path = np.array(
                [
                    [m + 0.01, -0.02],
                    [m + 0.005, 0.4],
                    [m + 0.03, anat.dome("left")],
                    [m + 0.12, anat.dome("left") + 0.06],
                ]
            )
            c.line(c.metal, path, 0.4, 0.007)
        elif device == "ECG electrodes":
            for _ in range(int(rng.integers(3, 6))):
                x = m + rng.choice([-1, 1]) * rng.uniform(0.15, anat.half_width + 0.03)
                y = rng.uniform(0.1, 0.35)
                c.ellipse(c.metal, (x, y), (0.016, 0.016), 0.7, thickness=0.006)
                c.ellipse(c.metal, (x, y), (0.004, 0.004), 0.9)
        else:  # pacemaker generator in the left upper chest with a lead into the heart
            box = (m + rng.uniform(0.22, 0.3), rng.uniform(0.14, 0.2))
            lead = np.array([box, [m + 0.08, 0.2], [m - 0.03, 0.38], [m - 0.02, anat.heart_y - 0.08]])
            c.line(c.metal, lead, 0.6, 0.006)
            c.ellipse(c.metal, box, (0.045, 0.032), 1.4, rng.uniform(-20, 20))


@plans("central venous catheter")
def _plan_catheter(inst: Instance, anat: Anatomy, rng: np.random.Generator, present: frozenset[str]) -> None:
    inst.side, inst.sides = _side(rng)
    inst.detail = "subclavian" if rng.random() < 0.6 else "jugular"


@draws("central venous catheter")
def _draw_catheter(c: Canvas, anat: Anatomy, inst: Instance, rng: np.random.Generator) -> None:
    m = anat.midline
    sign = anat.side_sign(inst.side)
    tip = (m - 0.04, rng.uniform(0.36, 0.44))
    svc = (m - 0.05, 0.24)
    if inst.detail == "subclavian":
        path = [(m + sign * 0.28, 0.15), (m + sign * 0.15, 0.18), (m + sign * 0.06, 0.2), svc, tip]
    else:
        path = [(m + sign * 0.07, -0.02), (m + sign * 0.065, 0.12), (m + sign * 0.05, 0.2), svc, tip]
    c.line(c.metal, np.array(path), _lerp(inst.strength, 0.35, 0.5), 0.006)


@plans("sternotomy")
def _plan_sternotomy(inst: Instance, anat: Anatomy, rng: np.random.Generator, present: frozenset[str]) -> None:
    inst.geo["wires"] = int(rng.integers(5, 8))
    inst.detail = f"{inst.geo['wires']}"


@draws("sternotomy")
def _draw_sternotomy(c: Canvas, anat: Anatomy, inst: Instance, rng: np.random.Generator) -> None:
    wires = int(inst.geo["wires"])  # type: ignore[arg-type]
    top = rng.uniform(0.25, 0.3)
    step = rng.uniform(0.04, 0.05)
    for k in range(wires):
        center = (anat.midline + rng.normal(0, 0.004), top + k * step)
        c.ellipse(c.metal, center, (0.014, 0.008), 1.0, rng.uniform(-15, 15), thickness=0.005)
    c.line(
        c.metal, np.array([[anat.midline, top - 0.02], [anat.midline, top + (wires - 1) * step + 0.02]]), 0.15, 0.003
    )


@draws("aortic atheromatosis")
def _draw_atheromatosis(c: Canvas, anat: Anatomy, inst: Instance, rng: np.random.Generator) -> None:
    r = anat.knob_radius * 0.92
    kx, ky = anat.knob_center
    start = rng.uniform(-120, -60)
    angles = np.radians(np.linspace(start, start + _lerp(inst.strength, 110, 180), 12))
    arc = np.stack([kx + r * np.cos(angles), ky + r * 1.1 * np.sin(angles)], 1)
    c.line(c.lesion, arc, _lerp(inst.strength, 0.6, 1.0), 0.009)


# -- rendering -----------------------------------------------------------------------------------------------------
def plan_findings(
    findings: Iterable[str],
    anat: Anatomy,
    rng: np.random.Generator,
    strength: float | None = None,
    scale: float = 1.0,
) -> list[Instance]:
    """Sample an instance of every finding (in the order of ``SIGNS``) and apply its edits to ``anat``.

    Each instance's strength is drawn from ``STRENGTH_RANGE`` (or fixed to ``strength``) and multiplied by ``scale``
    (a detector that shows every sign fainter and smaller: ``sampling.SITE_SIGN_SCALE``). The anatomy fields a plan
    changed are kept in ``Instance.undo`` with their earlier values, for locating the sign.
    """
    present = frozenset(findings)
    unknown = sorted(present - SIGNS.keys())
    if unknown:
        raise InputError(f"no phantom sign for {unknown}; known findings: {', '.join(SIGNS)}")
    instances = []
    for name in SIGNS:
        if name not in present:
            continue
        level = float(rng.uniform(*STRENGTH_RANGE)) if strength is None else float(strength)
        inst = Instance(name, level * scale)
        if name in PLANS:
            before = dataclasses.asdict(anat)
            PLANS.get(name)(inst, anat, rng, present)
            inst.undo = boxes.anatomy_edits(before, dataclasses.asdict(anat))
        instances.append(inst)
    return instances


@dataclasses.dataclass
class Phantom:
    """A rendered radiograph, the findings drawn on it, and where each (non-diffuse) sign lies on the film."""

    image: np.ndarray  # uint16, values in [0, 2**BIT_DEPTH - 1]
    instances: list[Instance]
    anatomy: Anatomy
    boxes: dict[str, boxes.Box] = dataclasses.field(default_factory=dict)  # finding → (x0, y0, x1, y1), film pixels


def _draw_signs(canvas: Canvas, anat: Anatomy, instances: list[Instance], rng: np.random.Generator) -> dict:
    """Draw the normal chest and every sign on ``canvas``; returns finding → mask of the canvas pixels it changed."""
    vessel_state = rng.bit_generator.state
    draw_anatomy(canvas, anat, rng)
    drawn = boxes.chest(canvas) if any(inst.undo for inst in instances) else None
    masks = {}
    for inst in instances:
        if inst.undo and inst.finding not in boxes.DIFFUSE:
            masks[inst.finding] = boxes.anatomy_change(anat, inst.undo, drawn, vessel_state)
    for inst in instances:
        if inst.finding in DRAWS:
            located = inst.finding not in boxes.DIFFUSE
            before = boxes.signature(canvas) if located else None
            DRAWS.get(inst.finding)(canvas, anat, inst, rng)
            if before is not None:
                change = boxes.draw_change(before, canvas)
                masks[inst.finding] = masks[inst.finding] | change if inst.finding in masks else change
    return masks


def render_case(
    findings: Iterable[str],
    seed: int | Iterable[int] | np.random.Generator,
    size: int = 256,
    patient_seed: int | Iterable[int] | None = None,
    strength: float | None = None,
    acquisition_seed: int | Iterable[int] | None = None,
    projection: str | None = None,
    sign_scale: float = 1.0,
) -> Phantom:
    """Render one frontal radiograph showing ``findings`` (class names of the cxrlt2026 space; empty = normal).

    Args:
        findings: the findings to draw ("Normal" alone, or nothing, gives a normal chest).
        seed: the case's random stream (an int, a sequence of ints for ``numpy.random.default_rng``, or a Generator):
            breath-hold, signs, vessels, and (without ``acquisition_seed``) the acquisition too.
        size: output height and width in pixels.
        patient_seed: when given, the body habitus comes from this stream, so images of one patient look alike.
        strength: fix every sign's strength in [0, 1] (the gallery uses 1); random per instance when ``None``.
        acquisition_seed: when given, exposure, positioning and noise come from this stream: films of one study share
            ``seed`` (the same chest and signs) and differ here (repeat acquisitions).
        projection: "PA" or "AP" (AP magnifies the heart by 12 %); drawn at random when ``None``.
        sign_scale: multiplies every sign's strength (a detector that shows signs fainter).
    """
    if size < 32:
        raise InputError(f"image size {size} is too small for a phantom radiograph (need at least 32 px)")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    body_rng = np.random.default_rng(patient_seed) if patient_seed is not None else rng
    anat = sample_anatomy(body_rng, projection)
    anat.dome_y = [y + rng.uniform(-0.012, 0.012) for y in anat.dome_y]  # breath-hold varies between films
    names = [name for name in findings if name != "Normal"]
    instances = plan_findings(names, anat, rng, strength, sign_scale)
    canvas = Canvas(size)
    masks = _draw_signs(canvas, anat, instances, rng)
    acq_rng = rng if acquisition_seed is None else np.random.default_rng(acquisition_seed)
    acquisition = sample_acquisition(acq_rng)
    image = expose(canvas, acquisition, acq_rng, anat.bone_density)
    matrix = pose_matrix(acquisition, size)
    located = {name: box for name, mask in masks.items() if (box := boxes.film_box(mask, matrix)) is not None}
    top = (1 << BIT_DEPTH) - 1
    return Phantom(np.round(image * top).astype(np.uint16), instances, anat, located)


def render_phantom(
    findings: Iterable[str],
    seed: int | Iterable[int] | np.random.Generator = 0,
    size: int = 256,
    strength: float | None = None,
) -> np.ndarray:
    """One phantom radiograph as a ``size`` x ``size`` uint16 array (12-bit values), see :func:`render_case`."""
    return render_case(findings, seed, size, strength=strength).image


def to_uint8(image: np.ndarray) -> np.ndarray:
    """A 12-bit phantom as an 8-bit image for display."""
    return cv2.convertScaleAbs(image, alpha=255.0 / ((1 << BIT_DEPTH) - 1))
