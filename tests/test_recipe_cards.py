"""Recipe cards: every shipped recipe has a complete card, twins point both ways, `cxrlt recipes list / show`."""

from __future__ import annotations

import pytest

from cxrlt_core.cli import main
from cxrlt_core.config import load_recipe
from cxrlt_core.errors import InputError
from cxrlt_core.recipe_cards import card_markdown, find_card, list_cards, parse_card, recipes_dir

GOOD = {
    "title": "T",
    "source": {"team": "a", "edition": "CXR-LT 2024", "paper": "p"},
    "task": "t",
    "reported": {"score": "0.3 mAP", "citation": "c"},
    "differences": ["d"],
    "compute": "c",
    "licence": "none",
}


def test_every_recipe_has_a_complete_card_and_twins_point_both_ways():
    cards = {c.path.stem: c for c in list_cards()}
    assert set(cards) == {p.stem for p in recipes_dir().glob("*.yaml")}
    for name, card in cards.items():
        assert card.reported["score"] and card.reported["citation"] and card.licence and card.differences
        if card.twin_of:
            assert name.startswith("demo_") and card.twin_of in cards, name
            full = cards[card.twin_of]
            assert full.demo_twin in (None, name) or cards[full.demo_twin].twin_of == card.twin_of
        if card.demo_twin:
            assert cards[card.demo_twin].twin_of == name
    for twin in ("demo_chexfusion", "demo_cxrlt2024_team_f", "demo_cxrlt2024_team_a", "demo_cxrlt2026_3rd",
                 "demo_cxrlt2026_5th"):  # fmt: skip
        data = load_recipe(cards[twin].path).data
        assert cards[twin].twin_of and data.train_csv.startswith("${workspace}/datasets/demo")


def test_twins_use_the_building_blocks_their_cards_name():
    recipe = {c.path.stem: load_recipe(c.path) for c in list_cards()}
    assert recipe["demo_chexfusion"].model.head == "ml_decoder"
    assert recipe["demo_chexfusion"].model.head_params["pos_encoding"] is True
    assert recipe["demo_chexfusion"].loss.name == recipe["demo_cxrlt2024_team_f"].loss.name == "wasl"
    assert recipe["demo_cxrlt2026_3rd"].optim.swa.enabled and recipe["demo_cxrlt2026_3rd"].optim.ema.enabled
    assert recipe["demo_cxrlt2026_5th"].loss.name == "ldam_drw" and recipe["demo_cxrlt2026_5th"].optim.crt.epochs >= 1
    assert find_card("demo_cxrlt2026_5th").postprocess == {"calibration": "temperature"}
    assert "study_aggregation" in find_card("demo_cxrlt2024_team_f").postprocess
    assert find_card("demo_cxrlt2024_team_a").ensemble == [["data.image_size=64"], ["data.image_size=96"]]
    assert recipe["chexfusion_stage1"].data.image_size == 1024 and recipe["cxrlt2026_3rd"].data.image_size == 768


@pytest.mark.parametrize(
    "change, message",
    [
        ({"reported": {"score": "x"}}, "card.reported needs score, citation"),
        ({"licence": ""}, "lacks \\['licence'\\]"),
        ({"colour": "red"}, "unknown keys \\['colour'\\]"),
        ({"ensemble": [["data.image_size=64"]]}, "2\\+ members"),
        ({"postprocess": {"gating": 1}}, "postprocess takes"),
    ],
)
def test_bad_cards_are_named(change, message):
    with pytest.raises(InputError, match=message):
        parse_card("x", {**GOOD, **change}, "x.yaml")
    with pytest.raises(InputError, match="has no card"):
        parse_card("x", {}, "x.yaml")


def test_card_markdown_lists_every_part():
    text = card_markdown(parse_card("x", {**GOOD, "twin_of": "full"}))
    for part in ("**T**", "a, CXR-LT 2024; p", "0.3 mAP (c)", "Weights licence:** none", "`full`", "  - d"):
        assert part in text


def test_cli_lists_and_shows_cards(capsys):
    assert main(["recipes", "list"]) == 0
    out = capsys.readouterr().out
    assert "demo_chexfusion" in out and "0.372 mAP" in out and "cxrlt2026_5th" in out
    assert main(["recipes", "show", "demo_cxrlt2026_3rd"]) == 0
    out = capsys.readouterr().out
    assert "mshamani" in out and "What cxrlt does differently" in out and "cxrlt train --config" in out
    assert main(["recipes", "show", "nope"]) == 1
    assert "error: no recipe 'nope'" in capsys.readouterr().err
