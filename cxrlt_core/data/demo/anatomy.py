"""The normal phantom chest: anatomy parameters, drawing layers, and the acquisition that turns them into a radiograph.

Coordinates are normalised to the image (x to the right, y down, both in [0, 1]); the patient's right is the image's
left, as on a PA radiograph. Everything is drawn with OpenCV primitives (``fillPoly``, ``ellipse``, ``polylines``) on
float32 attenuation layers, so rendering costs a few milliseconds at 256 px and needs no per-pixel Python.

The intensity model is Beer-Lambert: a pixel's brightness is ``1 - exp(-k * A)`` where ``A`` is the summed attenuation
of soft tissue, bone, lung markings, findings and metal along the ray, so dense structures are bright and air is dark.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import cv2
import numpy as np

SHIFT = 4  # OpenCV fixed-point bits: coordinates are drawn at 1/16 px precision
SCALE = 1 << SHIFT
SIDES = ("right", "left")  # the patient's sides; "right" is drawn on the image's left


@dataclasses.dataclass
class Anatomy:
    """Geometry and densities of one phantom chest (normalised units). Findings edit these before drawing.

    Attributes:
        midline: x of the spine and trachea.
        half_width: distance from the midline to the lateral lung wall.
        apex_y: height of the lung apices.
        dome_y: top of the right and left hemidiaphragm domes.
        dome_depth: how far the costophrenic angle lies below its dome (flat diaphragm: small).
        heart_y, heart_width, heart_height, heart_angle: the cardiac silhouette: a right-atrial and a left-ventricular
            ellipse resting on the diaphragm (an AP projection magnifies it by ~12 %).
        heart_scale: widens the silhouette (cardiomegaly: 1.25-1.5).
        knob_center, knob_radius: the aortic knob; ``aorta_elongation``: how far the descending aorta bulges left.
        hilum_scale: size of the hilar vessel shadows (1 = normal).
        upper_mediastinum: half width of the upper mediastinum at the thoracic inlet.
        trachea_shift: lateral displacement of the trachea (a goiter pushes it aside).
        spine_curve: lateral amplitude of a scoliotic spine curve (0 = straight); ``spine_phase`` its shape.
        rib_spacing: vertical spacing of the posterior ribs; ``rib_crowding`` > 0 packs the upper ribs together.
        vertebra_density: extra density of wedged mid-thoracic vertebrae (kyphosis).
        bone_density: multiplies every bone's attenuation (osteopenia: < 1).
        lung_density: attenuation of aerated lung; ``upper_lung_density`` applies above the hila (emphysema: lower).
        marking_gain: strength of the vascular markings; ``upper_marking_gain`` above the hila.
        projection: ``"PA"`` or ``"AP"``.
    """

    midline: float = 0.5
    half_width: float = 0.38
    apex_y: float = 0.13
    dome_y: list[float] = dataclasses.field(default_factory=lambda: [0.65, 0.67])
    dome_depth: float = 0.08
    heart_y: float = 0.6
    heart_width: float = 0.3
    heart_height: float = 0.2
    heart_scale: float = 1.0
    heart_angle: float = -18.0
    knob_center: tuple[float, float] = (0.565, 0.31)
    knob_radius: float = 0.03
    aorta_elongation: float = 0.0
    hilum_scale: float = 1.0
    upper_mediastinum: float = 0.05
    trachea_shift: float = 0.0
    spine_curve: float = 0.0
    spine_phase: float = 0.0
    rib_spacing: float = 0.052
    rib_crowding: float = 0.0
    vertebra_density: float = 0.0
    bone_density: float = 1.0
    lung_density: float = 0.25
    upper_lung_density: float = 0.25
    marking_gain: float = 1.0
    upper_marking_gain: float = 1.0
    projection: str = "PA"

    # -- landmarks ---------------------------------------------------------------------------------------------------
    def side_sign(self, side: str) -> float:
        """-1 for the patient's right (image left), +1 for the left."""
        return -1.0 if side == "right" else 1.0

    def wall_x(self, side: str) -> float:
        """x of the lateral chest wall (inner rib margin) on ``side``."""
        return self.midline + self.side_sign(side) * self.half_width

    def dome(self, side: str) -> float:
        return self.dome_y[0 if side == "right" else 1]

    def costophrenic(self, side: str) -> tuple[float, float]:
        """The costophrenic angle: where the diaphragm meets the lateral wall."""
        return self.wall_x(side), self.dome(side) + self.dome_depth

    def hilum(self, side: str) -> tuple[float, float]:
        """Centre of the hilum (the left one is a little higher, as in most people)."""
        y = self.apex_y + 0.31 * (self.dome(side) - self.apex_y) + 0.06
        return self.midline + self.side_sign(side) * 0.085, y - (0.012 if side == "left" else 0.0)

    def spine_x(self, y: np.ndarray | float) -> np.ndarray | float:
        """x of the spine's centre line at height ``y`` (a sine curve when scoliotic)."""
        return self.midline + self.spine_curve * np.sin(2.2 * math.pi * (np.asarray(y) - 0.1) + self.spine_phase)

    def diaphragm_y(self, side: str, x: np.ndarray) -> np.ndarray:
        """Height of the diaphragm dome on ``side`` at abscissae ``x`` (a parabola through the costophrenic angle)."""
        sign = self.side_sign(side)
        peak_x = self.midline + sign * 0.55 * self.half_width
        reach = self.half_width * 0.45
        offset = (np.asarray(x) - peak_x) * sign
        # steep towards the costophrenic angle, shallow towards the heart (the cardiophrenic angle)
        steepness = np.where(offset > 0, 1.0, 0.25)
        return self.dome(side) + steepness * self.dome_depth * (offset / reach) ** 2

    def lung_polygon(self, side: str, points: int = 24) -> np.ndarray:
        """Outline of one lung: apex, lateral wall, costophrenic angle, diaphragm dome, medial border."""
        sign = self.side_sign(side)
        wall = self.wall_x(side)
        medial = self.midline + sign * 0.055
        apex_x = self.midline + sign * 0.45 * self.half_width
        cp_y = self.dome(side) + self.dome_depth
        theta = np.linspace(0.0, math.pi / 2, points)
        lateral = np.stack([apex_x + (wall - apex_x) * np.sin(theta), cp_y - (cp_y - self.apex_y) * np.cos(theta)], 1)
        xs = np.linspace(wall, medial, points)[1:]
        diaphragm = np.stack([xs, self.diaphragm_y(side, xs)], 1)
        top = self.apex_y + 0.05
        medial_edge = np.array([[medial, top + 0.02], [medial - sign * 0.6 * (medial - apex_x), self.apex_y + 0.005]])
        return np.concatenate([lateral, diaphragm, medial_edge]).astype(np.float32)

    def lung_zone_y(self, side: str, zone: str) -> tuple[float, float]:
        """Vertical span of the upper, mid or lower zone of one lung."""
        top, bottom = self.apex_y + 0.03, self.dome(side) + 0.02
        third = (bottom - top) / 3
        start = {"upper": 0, "mid": 1, "lower": 2}[zone]
        return top + start * third, top + (start + 1) * third

    def sample_lung_point(
        self, rng: np.random.Generator, side: str, zone: str, inset: float = 0.03
    ) -> tuple[float, float]:
        """A random point inside the lung on ``side`` within ``zone``, at least ``inset`` from its outline."""
        polygon = self.lung_polygon(side)
        y0, y1 = self.lung_zone_y(side, zone)
        inner = min(abs(self.wall_x(side) - self.midline), 0.4)
        for _ in range(64):
            x = self.midline + self.side_sign(side) * rng.uniform(0.1, inner)
            y = rng.uniform(y0, y1)
            if cv2.pointPolygonTest(polygon, (float(x), float(y)), True) >= inset:
                return float(x), float(y)
        hx, hy = self.hilum(side)
        return (hx + self.wall_x(side)) / 2, (y0 + y1) / 2


def sample_anatomy(rng: np.random.Generator, projection: str | None = None) -> Anatomy:
    """A normal chest with the natural variation of body habitus, heart size and diaphragm height.

    ``projection`` ("PA" or "AP") fixes the view; when ``None`` it is drawn from ``rng`` (AP with probability 0.25).
    """
    dome_right = rng.uniform(0.62, 0.68)
    sampled = "AP" if rng.random() < 0.25 else "PA"
    projection = projection or sampled
    if projection not in ("PA", "AP"):
        raise ValueError(f"projection must be PA or AP, got {projection!r}")
    magnification = 1.12 if projection == "AP" else 1.0
    return Anatomy(
        midline=0.5 + rng.uniform(-0.01, 0.01),
        half_width=rng.uniform(0.36, 0.405),
        apex_y=rng.uniform(0.11, 0.15),
        dome_y=[dome_right, dome_right + rng.uniform(0.0, 0.035)],
        dome_depth=rng.uniform(0.07, 0.095),
        heart_y=dome_right + rng.uniform(-0.01, 0.01),
        heart_width=rng.uniform(0.28, 0.33) * magnification,
        heart_height=rng.uniform(0.18, 0.22) * magnification,
        heart_angle=rng.uniform(-24.0, -12.0),
        knob_center=(0.562 + rng.uniform(-0.008, 0.01), 0.31 + rng.uniform(-0.02, 0.015)),
        knob_radius=rng.uniform(0.022, 0.036),
        aorta_elongation=rng.uniform(0.0, 0.02),
        rib_spacing=rng.uniform(0.048, 0.056),
        lung_density=(density := rng.uniform(0.21, 0.29)),
        upper_lung_density=density * rng.uniform(0.88, 1.05),
        marking_gain=rng.uniform(0.8, 1.2),
        projection=projection,
    )


class Canvas:
    """Float32 attenuation layers at one image size, with drawing helpers taking normalised coordinates.

    Layers: ``tissue`` (soft tissue and air, blurred most), ``bone`` (scaled by bone density), ``markings`` (lung
    vessels, multiplied by ``marking_mask``), ``lesion`` (findings, positive = opaque, negative = lucent), ``metal``
    (devices, kept sharp).
    """

    def __init__(self, size: int):
        self.size = size
        shape = (size, size)
        self.tissue = np.zeros(shape, np.float32)
        self.bone = np.zeros(shape, np.float32)
        self.markings = np.zeros(shape, np.float32)
        self.lesion = np.zeros(shape, np.float32)
        self.metal = np.zeros(shape, np.float32)
        self.marking_mask = np.zeros(shape, np.float32)

    def pts(self, xy: np.ndarray) -> np.ndarray:
        """Normalised (x, y) points → OpenCV fixed-point pixel coordinates."""
        return np.round(np.asarray(xy, np.float64) * self.size * SCALE).astype(np.int32)

    def px(self, length: float, minimum: int = 1) -> int:
        """A normalised length in whole pixels (at least ``minimum``), for line thickness."""
        return max(minimum, int(round(length * self.size)))

    def _many(self, shapes: np.ndarray | list[np.ndarray]) -> list[np.ndarray]:
        """Polygons or polylines as OpenCV wants them: one (points, 2) array each, or a stacked (n, points, 2)."""
        if isinstance(shapes, np.ndarray):
            return list(self.pts(shapes if shapes.ndim == 3 else shapes[None]))
        return [self.pts(shape) for shape in shapes]

    def fill(self, layer: np.ndarray, polygons: np.ndarray | list[np.ndarray], value: float) -> None:
        """Filled polygon(s): a list of (points, 2) arrays or one (n, points, 2) array."""
        cv2.fillPoly(layer, self._many(polygons), float(value), cv2.LINE_8, SHIFT)

    def line(self, layer: np.ndarray, points: np.ndarray | list[np.ndarray], value: float, thickness: float) -> None:
        """Open polyline(s) of normalised ``thickness``: one (points, 2) array, a list of them, or (n, points, 2)."""
        cv2.polylines(layer, self._many(points), False, float(value), self.px(thickness), cv2.LINE_8, SHIFT)

    def ellipse(
        self,
        layer: np.ndarray,
        center: tuple[float, float],
        axes: tuple[float, float],
        value: float,
        angle: float = 0.0,
        thickness: float | None = None,
    ) -> None:
        """Filled ellipse, or its outline when ``thickness`` is given."""
        c = tuple(int(v) for v in self.pts(center))
        a = tuple(max(1, int(v)) for v in self.pts(axes))
        width = -1 if thickness is None else self.px(thickness)
        cv2.ellipse(layer, c, a, float(angle), 0.0, 360.0, float(value), width, cv2.LINE_8, SHIFT)

    def add(self, layer: np.ndarray, draw: Callable[[np.ndarray], None], blur: float = 0.0) -> None:
        """Draw with ``draw(scratch)`` on a zero scratch layer, optionally blur it, and add it to ``layer``.

        Layers are drawn with "set" semantics; this adds instead, for signs that sit on top of what is there.
        """
        scratch = np.zeros_like(layer)
        draw(scratch)
        if blur > 0:
            scratch = cv2.GaussianBlur(scratch, (0, 0), blur * self.size)
        layer += scratch


def _body_outline(anat: Anatomy) -> np.ndarray:
    m, w = anat.midline, anat.half_width + 0.065
    neck = 0.075 + anat.upper_mediastinum * 0.4
    return np.array(
        [
            [m - neck, -0.02],
            [m - neck, 0.07],
            [m - w + 0.02, 0.12],
            [m - w - 0.01, 0.2],
            [m - w, 0.6],
            [m - w + 0.02, 1.02],
            [m + w - 0.02, 1.02],
            [m + w, 0.6],
            [m + w + 0.01, 0.2],
            [m + w - 0.02, 0.12],
            [m + neck, 0.07],
            [m + neck, -0.02],
        ],
        np.float32,
    )


def ribs(anat: Anatomy, side: str) -> tuple[np.ndarray, np.ndarray]:
    """Posterior ribs (arching out from the spine) and fainter anterior ribs (sloping down to the sternum).

    Returns two arrays of shape (10, points, 2): one polyline per rib, top to bottom.
    """
    sign = anat.side_sign(side)
    end = anat.wall_x(side) + sign * 0.012
    k = np.arange(10)
    spacing = anat.rib_spacing * (1.0 - anat.rib_crowding * np.maximum(0.0, 1.0 - k / 5))
    y0 = anat.apex_y + 0.015 + np.concatenate([[0.0], np.cumsum(spacing[:-1])])
    start = np.asarray(anat.spine_x(y0)) + sign * 0.035
    u = np.linspace(0.0, 1.0, 12)
    xs = start[:, None] + (end - start)[:, None] * u
    ys = y0[:, None] - 0.03 * np.sin(math.pi * u * 0.8) + 0.085 * u**2.5
    a_u = np.linspace(0.0, 1.0, 6)
    ax = np.broadcast_to(end + (anat.midline + sign * 0.1 - end) * a_u, (10, 6))
    ay = ys[:, -1:] + 0.01 + 0.1 * a_u**1.3
    return np.stack([xs, ys], -1), np.stack([ax, ay], -1)


def _vessel_tree(anat: Anatomy, side: str, rng: np.random.Generator) -> list[tuple[np.ndarray, float]]:
    """Branching vascular markings radiating from the hilum: (segments (n, 2, 2), normalised thickness) groups.

    Seven trunks fan out from the hilum; each runs three generations, shortening and thinning by 0.75 and 0.7,
    and sheds one side branch per generation. All segments of one generation share a thickness, so each
    generation is drawn with one OpenCV call.
    """
    hx, hy = anat.hilum(side)
    sign = anat.side_sign(side)
    theta = np.radians(np.linspace(-150, 150, 7) + rng.uniform(-12, 12, 7))
    direction = np.stack([sign * (np.abs(np.sin(theta)) * 0.9 + 0.1), -np.cos(theta)], 1)
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    start = np.tile([hx, hy], (7, 1))
    length = rng.uniform(0.09, 0.15, 7)[:, None]
    thickness = 0.009
    groups = []
    for _ in range(3):
        end = start + direction * length
        twist = rng.uniform(0.35, 0.6, 7) * rng.choice([-1.0, 1.0], 7)
        cos, sin = np.cos(twist), np.sin(twist)
        side_dir = np.stack(
            [direction[:, 0] * cos - direction[:, 1] * sin, direction[:, 0] * sin + direction[:, 1] * cos], 1
        )
        groups.append((np.stack([start, end], 1), thickness))
        groups.append((np.stack([end, end + side_dir * length * 0.7], 1), thickness * 0.6))
        start, length, thickness = end, length * 0.75, thickness * 0.7
    return groups


def heart_ellipses(anat: Anatomy) -> list[tuple[tuple[float, float], tuple[float, float], float]]:
    """The cardiac silhouette as (centre, half axes, angle) ellipses: right atrium, left ventricle."""
    w, h, m = anat.heart_width * anat.heart_scale, anat.heart_height, anat.midline
    right_atrium = ((m - 0.16 * w, anat.heart_y - 0.28 * h), (0.27 * w, 0.4 * h), 0.0)
    ventricle = ((m + 0.14 * w, anat.heart_y - 0.2 * h), (0.5 * w, 0.38 * h), anat.heart_angle)
    return [right_atrium, ventricle]


def draw_heart(canvas: Canvas, anat: Anatomy, layer: np.ndarray, value: float) -> None:
    for center, axes, angle in heart_ellipses(anat):
        canvas.ellipse(layer, center, axes, value, angle)


def draw_anatomy(canvas: Canvas, anat: Anatomy, rng: np.random.Generator) -> None:
    """Draw the normal chest of ``anat``: body, lungs, mediastinum, heart, bones and lung markings."""
    lungs = [anat.lung_polygon(side) for side in SIDES]
    # soft tissue, then the aerated lungs cut out of it, then the central shadows drawn over them
    _draw_body_and_lungs(canvas, anat, lungs)
    _draw_central_shadows(canvas, anat)
    _draw_bones(canvas, anat)
    _draw_lung_markings(canvas, anat, lungs, rng)


def _upper_lungs(anat: Anatomy, lungs: list[np.ndarray]) -> list[np.ndarray]:
    """Each lung's polygon cut off just above its hilum (the upper zone)."""
    upper = []
    for side, polygon in zip(SIDES, lungs):
        cut = polygon.copy()
        cut[:, 1] = np.minimum(cut[:, 1], anat.hilum(side)[1] - 0.02)
        upper.append(cut)
    return upper


def _draw_body_and_lungs(c: Canvas, anat: Anatomy, lungs: list[np.ndarray]) -> None:
    """Soft tissue of the body, with the aerated lungs (and a denser or lighter upper zone) cut out of it."""
    c.fill(c.tissue, [_body_outline(anat)], 0.75)
    c.fill(c.tissue, lungs, anat.lung_density)
    if anat.upper_lung_density != anat.lung_density:  # normal variation, or emphysema
        for cut in _upper_lungs(anat, lungs):
            c.fill(c.tissue, [cut], anat.upper_lung_density)


def _draw_central_shadows(c: Canvas, anat: Anatomy) -> None:
    """Mediastinum, aortic knob and descending aorta, heart, hila, trachea with its bronchi, gastric bubble."""
    m = anat.midline
    um = anat.upper_mediastinum
    mediastinum = np.array(
        [
            [m - um, 0.0],
            [m + um, 0.0],
            [m + um + 0.005, 0.28],
            [m + 0.075, 0.42],
            [m - 0.07, 0.42],
            [m - um - 0.005, 0.28],
        ],
        np.float32,
    )
    c.fill(c.tissue, [mediastinum], 1.02)
    c.ellipse(c.tissue, anat.knob_center, (anat.knob_radius, anat.knob_radius * 1.1), 1.06)
    # the descending aorta runs down left of the spine; an elongated one bulges into the left lung
    kx, ky = anat.knob_center
    e = anat.aorta_elongation
    aorta = np.array(
        [[kx - 0.01, ky], [kx - 0.012 + e * 0.6, ky + 0.08], [kx - 0.015 + e * 0.4, ky + 0.2], [m + 0.03, 0.6]]
    )
    c.line(c.tissue, aorta, 1.0, 0.022)
    draw_heart(c, anat, c.tissue, 1.12)
    for side in SIDES:
        hx, hy = anat.hilum(side)
        s = anat.hilum_scale
        c.ellipse(c.tissue, (hx, hy), (0.02 * s, 0.038 * s), 0.5 + 0.1 * s, anat.side_sign(side) * 20)
    tx = m + anat.trachea_shift
    trachea = np.array([[m, -0.02], [tx, 0.12], [tx * 0.7 + m * 0.3, 0.25], [m, 0.33]])
    c.line(c.tissue, trachea, 0.62, 0.04)
    for side in SIDES:
        c.line(c.tissue, np.array([[m, 0.33], anat.hilum(side)]), 0.8, 0.016)
    bubble_x = m + 0.55 * anat.half_width
    c.ellipse(c.tissue, (bubble_x, anat.dome("left") + 0.05), (0.045, 0.025), 0.45)


def _draw_bones(c: Canvas, anat: Anatomy) -> None:
    """Vertebrae (wedged where ``vertebra_density`` > 0) and spinous processes, ribs, clavicles, scapulae."""
    m = anat.midline
    ys = np.arange(-0.02, 1.04, 0.043)
    spine = np.asarray(anat.spine_x(ys))
    corners = np.array([[-0.036, 0.0], [0.036, 0.0], [0.038, 0.034], [-0.038, 0.034]])
    vertebrae = np.stack([spine, ys], 1)[:, None, :] + corners
    c.fill(c.bone, vertebrae, 0.1)
    if anat.vertebra_density > 0:
        wedge = np.array([[0, 0.006], [0, 0.006], [0, -0.004], [0, -0.004]])
        c.fill(c.bone, vertebrae[(ys > 0.25) & (ys < 0.6)] + wedge, 0.1 + anat.vertebra_density)
    spinous = np.stack([np.stack([spine, ys + 0.008], 1), np.stack([spine, ys + 0.03], 1)], 1)
    c.line(c.bone, spinous, 0.14, 0.012)
    for side in SIDES:
        sign = anat.side_sign(side)
        posterior, anterior = ribs(anat, side)
        c.line(c.bone, posterior, 0.075, 0.016)
        c.line(c.markings, anterior, 0.035, 0.013)
        clavicle = np.array(
            [
                [m + sign * 0.04, 0.19],
                [m + sign * 0.16, 0.175],
                [m + sign * 0.27, 0.145],
                [m + sign * (anat.half_width + 0.04), 0.125],
            ]
        )
        c.line(c.bone, clavicle, 0.16, 0.024)
        scapula = np.array([[m + sign * (anat.half_width - 0.06), 0.17], [m + sign * (anat.half_width - 0.02), 0.36]])
        c.line(c.markings, scapula, 0.05, 0.01)


def _draw_lung_markings(c: Canvas, anat: Anatomy, lungs: list[np.ndarray], rng: np.random.Generator) -> None:
    """Vascular markings inside the lungs, scaled by ``marking_gain`` (and ``upper_marking_gain`` in the upper
    zones)."""
    for side in SIDES:
        for segments, thickness in _vessel_tree(anat, side, rng):
            c.line(c.markings, segments, 0.11, thickness)
    c.fill(c.marking_mask, lungs, anat.marking_gain)
    if anat.upper_marking_gain != 1.0:
        for cut in _upper_lungs(anat, lungs):
            c.fill(c.marking_mask, [cut], anat.marking_gain * anat.upper_marking_gain)


@dataclasses.dataclass
class Acquisition:
    """How the film was taken: exposure, contrast, noise, positioning. Sampled per image."""

    attenuation_k: float = 1.7
    gamma: float = 1.0
    noise: float = 0.01
    angle: float = 0.0
    shift: tuple[float, float] = (0.0, 0.0)
    zoom: float = 1.0
    black: float = 0.02
    white: float = 0.97


def sample_acquisition(rng: np.random.Generator) -> Acquisition:
    return Acquisition(
        attenuation_k=rng.uniform(1.45, 1.95),
        gamma=rng.uniform(0.8, 1.25),
        noise=rng.uniform(0.006, 0.018),
        angle=rng.uniform(-3.5, 3.5),
        shift=(rng.uniform(-0.03, 0.03), rng.uniform(-0.03, 0.03)),
        zoom=rng.uniform(0.95, 1.06),
        black=rng.uniform(0.0, 0.05),
        white=rng.uniform(0.93, 1.0),
    )


def pose_matrix(acq: Acquisition, size: int) -> np.ndarray:
    """The 2x3 affine map from canvas pixels to film pixels: rotation by ``angle`` and ``zoom`` about the shifted
    centre (``cv2.getRotationMatrix2D``), as applied by :func:`expose`."""
    center = (size / 2 + acq.shift[0] * size, size / 2 + acq.shift[1] * size)
    return cv2.getRotationMatrix2D(center, acq.angle, acq.zoom)


def expose(canvas: Canvas, acq: Acquisition, rng: np.random.Generator, bone_density: float = 1.0) -> np.ndarray:
    """Compose the layers into a radiograph in [0, 1] (float32): blur, Beer-Lambert, contrast, pose, noise."""
    size = canvas.size
    tissue = cv2.GaussianBlur(canvas.tissue, (0, 0), 0.012 * size)
    mask = cv2.GaussianBlur(canvas.marking_mask, (0, 0), 0.01 * size)
    fine = canvas.bone * bone_density + canvas.markings * mask + canvas.lesion
    fine = cv2.GaussianBlur(fine, (0, 0), 0.004 * size)
    metal = cv2.GaussianBlur(canvas.metal, (0, 0), 0.0025 * size)
    texture = cv2.resize(rng.standard_normal((12, 12)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    attenuation = tissue + fine + metal + 0.025 * texture * mask
    # Beer-Lambert transmission, then the detector's contrast curve (OpenCV's exp/pow: faster than numpy's here)
    transmitted = cv2.exp(np.maximum(attenuation, 0.0) * -acq.attenuation_k)
    image = cv2.pow(1.0 - transmitted, acq.gamma)
    matrix = pose_matrix(acq, size)
    image = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    noise = rng.standard_normal(image.shape, dtype=np.float32)
    image = cv2.scaleAdd(noise, acq.noise, acq.black + (acq.white - acq.black) * image)
    return np.clip(image, 0.0, 1.0, out=image)
