"""Prompt sets: YAML validation with clear errors, the packaged sets, version history, diffs."""

from __future__ import annotations

import pytest

from cxrlt_core.errors import InputError, ValidationError
from cxrlt_core.labels import CXRLT2026_UNSEEN
from cxrlt_core.zeroshot.prompts import (
    PromptStore,
    default_prompt_set,
    demo_prompt_set,
    diff_prompt_sets,
    dump_prompt_set,
    load_prompt_set,
    loads_prompt_set,
    save_prompt_set,
)

GOOD = """
scoring: mean_cosine
alpha: 5
label_space: cxrlt2026
classes:
  Bulla:
    prompts: [a chest x-ray showing bulla, a large bulla]
  goiter: [a chest x-ray showing goiter]
"""


def _problems(text: str, **kwargs) -> list[str]:
    with pytest.raises(ValidationError) as info:
        loads_prompt_set(text, source="p.yaml", **kwargs)
    assert str(info.value).startswith("p.yaml: invalid prompt set")
    return info.value.problems


def test_good_set_parses_and_canonicalises_class_names():
    ps = loads_prompt_set(GOOD)
    assert ps.class_names == ("Bulla", "Goiter")  # 'goiter' resolved to the label space's spelling
    assert ps.classes["Goiter"].prompts == ("a chest x-ray showing goiter",)
    assert ps.negatives_for("Bulla") == ("no bulla",)  # CheXzero default
    assert ps.alpha == 5.0 and ps.scoring == "mean_cosine"


def test_empty_class_is_named():
    problems = _problems("label_space: cxrlt2026\nclasses:\n  Bulla: []\n")
    assert problems == ["class 'Bulla': no prompts; give at least one"]


def test_unknown_class_lists_the_unseen_classes():
    (problem,) = _problems("label_space: cxrlt2026\nclasses:\n  Cardiomegaly: [big heart]\n")
    assert problem.startswith("class 'Cardiomegaly' is not an unseen class of label space 'cxrlt2026' (Scoliosis,")
    # In-distribution classes are allowed on request (e.g. to measure zero-shot AP on seen findings).
    ps = loads_prompt_set("label_space: cxrlt2026\nclasses:\n  cardiomegaly: [big heart]\n", allowed="all")
    assert ps.class_names == ("cardiomegaly",)


def test_duplicate_prompt_names_class_and_both_positions():
    (problem,) = _problems("classes:\n  Bulla: [a large bulla, another, 'A large  bulla']\n")
    assert problem == "class 'Bulla': prompt 3 'A large bulla' repeats prompt 1"


@pytest.mark.parametrize("alpha", ["-1", "0", "nan", "inf", "'five'", "true"])
def test_bad_alpha(alpha):
    (problem,) = _problems(f"alpha: {alpha}\nclasses:\n  Bulla: [x]\n")
    assert problem.startswith("alpha must be a positive finite number")


def test_many_problems_reported_at_once():
    problems = _problems(
        "scoring: best\ncolour: red\nlabel_space: cxrlt2026\nclasses:\n"
        "  Bulla: [x, '']\n  Goiter: {prompts: [y], negatives: [y]}\n"
    )
    assert any("scoring 'best' is not a scoring rule" in p for p in problems)
    assert any("unknown keys ['colour']" in p for p in problems)
    assert "class 'Bulla': prompt 2 is empty" in problems
    assert "class 'Goiter': 'y' is both a prompt and a negative" in problems


def test_not_yaml_and_not_mapping():
    with pytest.raises(InputError, match=r"p.yaml: not valid YAML at line 3, column 1"):
        loads_prompt_set("classes:\n  Bulla: [x\n", source="p.yaml")
    with pytest.raises(InputError, match="must be a YAML mapping"):
        loads_prompt_set("- a\n- b\n", source="p.yaml")
    with pytest.raises(InputError, match="prompt set not found"):
        load_prompt_set("/nonexistent/p.yaml")


def test_yaml_is_loaded_safely(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("classes: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(InputError, match="not valid YAML"):
        load_prompt_set(path)


@pytest.mark.parametrize("factory", [default_prompt_set, demo_prompt_set])
def test_packaged_sets_cover_the_six_unseen_findings(factory):
    ps = factory()
    assert set(ps.class_names) == set(CXRLT2026_UNSEEN)
    for name, entry in ps.classes.items():
        assert 8 <= len(entry.prompts) <= 14, name
        assert f"a chest x-ray showing {name.lower()}" in entry.prompts


def test_round_trip_through_file(tmp_path):
    ps = default_prompt_set()
    path = save_prompt_set(tmp_path / "p.yaml", ps)
    assert load_prompt_set(path) == ps
    assert loads_prompt_set(dump_prompt_set(ps)) == ps


def test_store_keeps_every_version_and_reverts(tmp_path):
    store = PromptStore(tmp_path / "prompts")
    v1 = loads_prompt_set(GOOD)
    first = store.save("unseen", v1, note="first")
    assert first.number == 1 and store.current_number("unseen") == 1
    # Saving the same content again writes nothing new.
    assert store.save("unseen", v1).number == 1
    v2 = v1.with_settings(alpha=10.0)
    second = store.save("unseen", v2, note="sharper")
    assert second.number == 2 and store.load("unseen") == v2
    assert store.diff("unseen", 1) == ["~ alpha: 5.0 -> 10.0"]
    assert "-alpha: 5.0" in store.unified_diff("unseen", 1, 2)
    third = store.revert("unseen", 1)
    assert third.number == 3 and store.load("unseen") == v1
    assert [v.number for v in store.versions("unseen")] == [1, 2, 3]
    assert [v.current for v in store.versions("unseen")] == [False, False, True]
    assert store.versions("unseen")[0].note == "first" and third.note == "revert to v0001"
    assert store.load("unseen", 2) == v2  # nothing lost
    assert store.names() == ["unseen"]


def test_store_rejects_path_traversal_and_missing_versions(tmp_path):
    store = PromptStore(tmp_path)
    with pytest.raises(InputError, match="invalid prompt set name"):
        store.save("../evil", default_prompt_set())
    with pytest.raises(InputError, match="no saved versions"):
        store.load("absent")
    store.save("s", default_prompt_set())
    with pytest.raises(InputError, match="has no version 7"):
        store.load("s", 7)


def test_stale_current_pointer_falls_back_to_newest(tmp_path):
    store = PromptStore(tmp_path)
    store.save("s", default_prompt_set())
    (tmp_path / "s" / "current").write_text("garbage")
    assert store.current_number("s") == 1


def test_diff_lists_added_and_removed_prompts():
    a = loads_prompt_set(GOOD)
    b = loads_prompt_set(
        GOOD.replace("a large bulla", "giant bulla").replace("  goiter: [a chest x-ray showing goiter]\n", "")
    )
    assert diff_prompt_sets(a, b) == [
        "- Goiter (class, 1 prompts)",
        "- Bulla: 'a large bulla'",
        "+ Bulla: 'giant bulla'",
    ]


def test_shipped_prompt_sets_load_by_name_with_their_own_label_space(tmp_path, monkeypatch):
    from cxrlt_core.zeroshot.prompts import PACKAGED_SETS, load_prompt_set

    monkeypatch.chdir(tmp_path)  # no file called "default" or "demo" here
    for name in PACKAGED_SETS:
        prompt_set = load_prompt_set(name)
        assert prompt_set.label_space == "cxrlt2026" and len(prompt_set.classes) == 6
    (tmp_path / "demo").write_text("classes: {Bulla: [a bulla]}\n")  # a file of that name wins
    assert list(load_prompt_set("demo", label_space="cxrlt2026").classes) == ["Bulla"]
