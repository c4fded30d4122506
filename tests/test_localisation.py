"""Localisation scores (pointing game, mass in the box) and maps placed on the stored image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxrlt_core.errors import InputError
from cxrlt_core.explain import colour_bar, display_size, map_on_image, overlay_with_bar
from cxrlt_core.localisation import (
    box_mass,
    box_share,
    overall,
    per_class,
    pointing_hit,
    read_boxes,
    score_images,
    score_map,
)


def test_pointing_game_hits_when_the_peak_is_inside_the_box() -> None:
    heat = np.zeros((10, 20))
    heat[3, 12] = 1.0  # row 3, column 12
    assert pointing_hit(heat, (12, 3, 13, 4))  # the one-pixel box at x=12, y=3
    assert not pointing_hit(heat, (0, 0, 12, 10))  # x1 is exclusive: column 12 is outside
    assert not pointing_hit(np.ones((10, 20)), (0, 0, 20, 10))  # a flat map points nowhere
    with pytest.raises(InputError, match="does not fit"):
        pointing_hit(heat, (0, 0, 21, 10))


def test_mass_in_the_box_is_the_normalised_share() -> None:
    heat = np.zeros((4, 4))
    heat[0:2, 0:2] = 3.0
    assert box_mass(heat, (0, 0, 2, 2)) == pytest.approx(1.0)
    ramp = np.tile(np.arange(4.0), (4, 1))  # columns 0..3, normalised to 0, 1/3, 2/3, 1
    # right half (columns 2, 3): (2/3 + 1) / (0 + 1/3 + 2/3 + 1) = (5/3) / 2 = 5/6
    assert box_mass(ramp + 7.0, (2, 0, 4, 4)) == pytest.approx(5 / 6)
    assert box_mass(np.full((4, 4), 2.0), (0, 0, 1, 4)) == pytest.approx(0.25)  # flat: the area share
    assert box_share((0, 0, 1, 4), (4, 4)) == pytest.approx(0.25)


def test_per_class_table_and_macro_means() -> None:
    heat = np.zeros((4, 4))
    heat[0, 0] = 1.0
    scores = [
        score_map("a", "Mass", "csra", heat, (0, 0, 2, 2)),  # hit, mass 1
        score_map("b", "Mass", "csra", heat, (2, 2, 4, 4)),  # miss, mass 0
        score_map("a", "Nodule", "csra", heat, (0, 0, 4, 2)),  # hit
    ]
    table = per_class(scores)
    mass = table.set_index("finding").loc["Mass"]
    assert mass["images"] == 2 and mass["pointing"] == 0.5 and mass["mass"] == pytest.approx(0.5)
    assert mass["chance"] == pytest.approx(0.25)
    macro = overall(table).iloc[0]
    assert macro["classes"] == 2 and macro["pointing"] == pytest.approx(0.75)
    assert per_class([]).empty and overall(per_class([])).empty


def test_score_images_asks_for_maps_of_boxed_classes_only() -> None:
    boxes = pd.DataFrame(
        {"ImageID": ["x", "x", "y"], "finding": ["Mass", "Goiter", "Mass"], "x0": 0, "y0": 0, "x1": 1, "y1": 1}
    )
    asked = []

    def maps_of(image_id: str, indices: list[int]) -> dict:
        asked.append((image_id, indices))
        heat = np.zeros((4, 4))
        heat[0, 0] = 1.0
        return {"csra": {j: heat for j in indices}, "gradcam": {j: 1.0 - heat for j in indices}}

    scores = score_images(boxes, ["Normal", "Mass"], maps_of)
    assert asked == [("x", [1]), ("y", [1])]  # Goiter is not a class of this model
    table = per_class(scores).set_index(["method", "finding"])
    assert table.loc[("csra", "Mass"), "pointing"] == 1.0 and table.loc[("gradcam", "Mass"), "pointing"] == 0.0


def test_read_boxes_checks_columns_and_coordinates(tmp_path: Path) -> None:
    good = tmp_path / "boxes.csv"
    good.write_text("ImageID,finding,x0,y0,x1,y1\na.png,Mass,1,2,5,6\n")
    assert read_boxes(good).iloc[0].tolist() == ["a.png", "Mass", 1, 2, 5, 6]
    bad = tmp_path / "bad.csv"
    bad.write_text("ImageID,finding,x0,y0,x1,y1\na.png,Mass,1,2,5,6\nb.png,Mass,5,2,1,6\n")
    with pytest.raises(InputError, match="row 3: the box needs x0 < x1"):
        read_boxes(bad)
    bad.write_text("ImageID,finding,x0,y0,x1\na.png,Mass,1,2,5\n")
    with pytest.raises(InputError, match=r"missing column\(s\) \['y1'\]"):
        read_boxes(bad)
    bad.write_text("ImageID,finding,x0,y0,x1,y1\na.png,Mass,1.5,2,5,6\n")
    with pytest.raises(InputError, match="row 2, column x0"):
        read_boxes(bad)


def test_map_on_image_undoes_the_letterbox_and_keeps_the_aspect_ratio() -> None:
    # a 4 x 8 image letterboxed into 8 x 8: content rows 2..5; the map's padding rows must be cut away
    pre = {"image_size": [8, 8], "keep_aspect": True}
    heat = np.zeros((8, 8), np.float32)
    heat[2:6] = np.arange(8.0)  # content: a left-to-right ramp; padding: zeros
    placed = map_on_image(heat, pre, (4, 8))
    assert placed.shape == (4, 8)
    np.testing.assert_allclose(placed, np.tile(np.arange(8.0), (4, 1)))
    # without letterboxing, an 8 x 8 map stretches back onto a 16 x 32 image
    stretched = map_on_image(heat, {"image_size": [8, 8], "keep_aspect": False}, (16, 32))
    assert stretched.shape == (16, 32)


def test_overlay_keeps_the_image_shape_and_adds_a_colour_bar() -> None:
    assert display_size((1000, 2000), 512) == (256, 512) and display_size((100, 50), 512) == (100, 50)
    bar = colour_bar(100)
    assert bar.shape == (100, 56, 3)
    # jet: the top of the bar (1) is red-ish, the bottom (0) blue-ish
    assert bar[1, 10, 0] > bar[1, 10, 2] and bar[-2, 10, 2] > bar[-2, 10, 0]
    image = np.full((300, 600), 128, np.uint8)
    out = overlay_with_bar(image, np.zeros((300, 600)), longest=512)
    assert out.shape == (256, 512 + 56, 3)
