"""Registries are the only lists of names: every registry works, and every CLI choice list is read from one.

Registries are found in the source (an assignment ``NAME = Registry(...)`` or ``NAME: Registry[...] = Registry(...)``
at module level), so a new registry is tested the moment it is written.
"""

from __future__ import annotations

import argparse
import ast
import importlib
from pathlib import Path

import pytest

from cxrlt_core.cli import build_parser
from cxrlt_core.errors import InputError
from cxrlt_core.registry import Registry, RegistryChoices

CORE = Path(__file__).resolve().parent.parent / "cxrlt_core"


def _registry_targets() -> list[str]:
    targets = []
    for path in sorted(CORE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        module = ".".join(path.relative_to(CORE.parent).with_suffix("").parts)
        for node in tree.body:
            value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
            if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "Registry":
                target = node.targets[0] if isinstance(node, ast.Assign) else node.target
                targets.append(f"{module}:{target.id}")
    return targets


REGISTRIES = _registry_targets()


def test_the_registries_are_found():
    names = {t.split(":")[1] for t in REGISTRIES}
    assert {"HEADS", "LOSSES", "SAMPLERS", "TTA_SETS", "MERGE_MODES", "CALIBRATORS", "GATING_FORMS"} <= names
    assert {"SCORING_RULES", "LABEL_SPACES"} <= names


@pytest.mark.parametrize("target", REGISTRIES)
def test_every_entry_resolves_and_unknown_names_list_the_choices(target):
    registry = RegistryChoices(target).load()
    assert isinstance(registry, Registry) and len(registry) > 0
    for name in registry.names():
        assert registry.get(name) is not None and name in registry
    with pytest.raises(InputError, match=f"choose one of: {registry.names()[0]}"):
        registry.get("no-such-entry")


def _choice_actions() -> list[tuple[str, argparse.Action]]:
    found = []

    def walk(parser: argparse.ArgumentParser, prefix: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{prefix} {name}")
            elif action.choices is not None:
                found.append((f"{prefix} {'/'.join(action.option_strings)}", action))

    walk(build_parser(), "cxrlt")
    return found


def test_no_cli_option_repeats_a_registry_by_hand():
    registry_names = {t: set(RegistryChoices(t).names()) for t in REGISTRIES}
    copied = []
    for where, action in _choice_actions():
        if isinstance(action.choices, RegistryChoices):
            assert action.metavar, f"{where}: give a metavar so the parser does not import the registry"
            continue
        literal = {str(c) for c in action.choices}
        copied += [f"{where} copies {t}" for t, names in registry_names.items() if len(literal & names) >= 2]
    assert not copied, copied


@pytest.mark.parametrize(
    ("option", "target"),
    [
        ("cxrlt predict --tta", "cxrlt_core.inference.tta:TTA_SETS"),
        ("cxrlt predict --merge", "cxrlt_core.inference.tta:MERGE_MODES"),
        ("cxrlt predict --gating-form", "cxrlt_core.inference.gating:GATING_FORMS"),
        ("cxrlt calibrate --method", "cxrlt_core.inference.calibration:CALIBRATORS"),
        ("cxrlt zeroshot predict --scoring", "cxrlt_core.zeroshot.scoring:SCORING_RULES"),
    ],
)
def test_cli_choices_are_the_registry(option, target):
    actions = dict(_choice_actions())
    assert list(actions[option].choices) == RegistryChoices(target).names()


def test_a_new_entry_is_a_cli_choice_at_once():
    from cxrlt_core.inference.gating import GATING_FORMS

    actions = dict(_choice_actions())
    GATING_FORMS.add("test_only_form", lambda p, p_normal, alpha: p)
    try:
        assert "test_only_form" in actions["cxrlt predict --gating-form"].choices
    finally:
        GATING_FORMS._entries.pop("test_only_form")


def test_registry_choices_do_not_import_their_module_until_asked():
    choices = RegistryChoices("cxrlt_core.no_such_module:X")
    assert repr(choices) == "RegistryChoices('cxrlt_core.no_such_module:X')"
    with pytest.raises(ModuleNotFoundError):
        list(choices)
    assert importlib.import_module("cxrlt_core.registry")
