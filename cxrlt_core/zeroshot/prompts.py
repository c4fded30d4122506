"""Prompt sets: per class a list of text prompts (and optional negatives), the scoring rule and α.

A prompt set is a small YAML file (read with ``yaml.safe_load``)::

    name: default-unseen              # optional
    version: cxrlt-default/1          # optional: which version of the set, and where its prompts came from
    description: ...                  # optional
    model: hf-hub:yyupenn/whyxrayclip # optional: the model the set was written for
    scoring: mean_cosine              # a rule of cxrlt_core.zeroshot.scoring
    alpha: 5.0
    label_space: <name>               # optional: the registered label space of the classes
    classes:
      Scoliosis:
        prompts: [a chest x-ray showing scoliosis, lateral curvature of the thoracic spine]
        negatives: [no scoliosis]     # optional; used by pos_neg_softmax
      Bulla: [a chest x-ray showing bulla, a large bulla]   # shorthand: the list is the prompts

Validation reports every problem at once, naming the class and the prompt. :class:`PromptStore` saves sets in a
workspace's ``prompts/<name>/`` with a version history (``v0001.yaml``, ``v0002.yaml`` ... and a ``current``
pointer): a save never overwrites an earlier version, and reverting writes a new version.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from cxrlt_core.atomic import write_json, write_text
from cxrlt_core.errors import InputError, ValidationError
from cxrlt_core.labels import LabelSpace, get_label_space
from cxrlt_core.workspace import check_name
from cxrlt_core.zeroshot.scoring import DEFAULT_ALPHA, SCORING_RULES

__all__ = [
    "ClassPrompts",
    "PromptSet",
    "PromptStore",
    "PromptVersion",
    "default_negatives",
    "default_prompt_set",
    "demo_prompt_set",
    "diff_prompt_sets",
    "dump_prompt_set",
    "load_prompt_set",
    "parse_prompt_set",
    "save_prompt_set",
]

TOP_LEVEL_KEYS = ("name", "version", "description", "model", "scoring", "alpha", "label_space", "classes")
CLASS_KEYS = ("prompts", "negatives")
MAX_PROMPT_CHARS = 1000
DEFAULT_SET = "default_prompts.yaml"
DEMO_SET = "demo_prompts.yaml"
#: Prompt sets shipped with the package (``cxrlt_core/zeroshot/*.yaml``), by name.
PACKAGED_SETS = {"default": DEFAULT_SET, "demo": DEMO_SET}


@dataclasses.dataclass(frozen=True)
class ClassPrompts:
    """One class's prompts: descriptions of the finding and, optionally, of its absence."""

    prompts: tuple[str, ...]
    negatives: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, list[str]]:
        out = {"prompts": list(self.prompts)}
        if self.negatives:
            out["negatives"] = list(self.negatives)
        return out


def default_negatives(class_name: str) -> tuple[str, ...]:
    """CheXzero's negative prompt for a class without negatives: ``"no <finding>"``."""
    return (f"no {class_name.lower()}",)


@dataclasses.dataclass(frozen=True)
class PromptSet:
    """A validated prompt set (see the module docstring for the YAML form).

    Attributes:
        classes: class name (canonical spelling of the label space, when one was given) -> its prompts, in file order.
        scoring: name of a registered scoring rule.
        alpha: sharpness of the sigmoid rules, a positive finite number.
        model: the model spec the set was written for, or ``None``.
        version: which version of the set this is and where its prompts came from (free text, e.g.
            ``"cxrlt-default/1: written for cxrlt"``), or ``None``.
    """

    classes: Mapping[str, ClassPrompts]
    scoring: str = "mean_cosine"
    alpha: float = DEFAULT_ALPHA
    model: str | None = None
    name: str | None = None
    description: str | None = None
    label_space: str | None = None
    version: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", dict(self.classes))

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.classes)

    def negatives_for(self, class_name: str) -> tuple[str, ...]:
        """The class's negatives, or :func:`default_negatives` when it lists none."""
        return self.classes[class_name].negatives or default_negatives(class_name)

    def all_texts(self, with_negatives: bool = False) -> list[str]:
        """Every distinct prompt text, in order (negatives included on request): what a text encoder must see."""
        texts: dict[str, None] = {}
        for name, entry in self.classes.items():
            texts.update(dict.fromkeys(entry.prompts))
            if with_negatives:
                texts.update(dict.fromkeys(self.negatives_for(name)))
        return list(texts)

    def ordered(self, class_order: Sequence[str]) -> PromptSet:
        """The same set with its classes in ``class_order`` (e.g. the label space's), unknown ones kept last."""
        rank = {name: i for i, name in enumerate(class_order)}
        names = sorted(self.classes, key=lambda n: (rank.get(n, len(rank)), list(self.classes).index(n)))
        return dataclasses.replace(self, classes={n: self.classes[n] for n in names})

    def with_settings(
        self, scoring: str | None = None, alpha: float | None = None, model: str | None = None
    ) -> PromptSet:
        """A copy with another scoring rule, α or model (``None`` keeps the current value); validated."""
        changed = dataclasses.replace(
            self,
            scoring=self.scoring if scoring is None else scoring,
            alpha=self.alpha if alpha is None else alpha,
            model=self.model if model is None else model,
        )
        return parse_prompt_set(changed.to_dict(), source="prompt set", allowed="all")

    def to_dict(self) -> dict[str, Any]:
        """Plain types, in the YAML file's key order; optional fields that are unset are left out."""
        out: dict[str, Any] = {}
        for key in ("name", "version", "description", "model"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        out["scoring"] = self.scoring
        out["alpha"] = float(self.alpha)
        if self.label_space:
            out["label_space"] = self.label_space
        out["classes"] = {name: entry.to_dict() for name, entry in self.classes.items()}
        return out


# ------------------------------------------------------------------------------------------------------- parsing
def _text_problems(where: str, kind: str, texts: object, allow_empty: bool) -> tuple[list[str], list[str]]:
    """Check a list of prompt texts; return (clean texts, problems)."""
    if texts is None:
        texts = []
    if isinstance(texts, str) or not isinstance(texts, list):
        return [], [f"{where}: {kind} must be a list of texts, got {type(texts).__name__}"]
    problems: list[str] = []
    clean: list[str] = []
    first_seen: dict[str, int] = {}
    for position, text in enumerate(texts, start=1):
        if not isinstance(text, str):
            problems.append(f"{where}: {kind[:-1]} {position} is {type(text).__name__} {text!r}, not a text")
            continue
        stripped = " ".join(text.split())
        if not stripped:
            problems.append(f"{where}: {kind[:-1]} {position} is empty")
            continue
        if len(stripped) > MAX_PROMPT_CHARS:
            problems.append(f"{where}: {kind[:-1]} {position} has {len(stripped)} characters (max {MAX_PROMPT_CHARS})")
            continue
        key = stripped.lower()
        if key in first_seen:
            problems.append(f"{where}: {kind[:-1]} {position} {stripped!r} repeats {kind[:-1]} {first_seen[key]}")
            continue
        first_seen[key] = position
        clean.append(stripped)
    if not clean and not allow_empty and not problems:
        problems.append(f"{where}: no {kind}; give at least one")
    return clean, problems


def _resolve_space(label_space: LabelSpace | str | None, data: Mapping[str, Any]) -> LabelSpace | None:
    if isinstance(label_space, LabelSpace):
        return label_space
    name = label_space if label_space is not None else data.get("label_space")
    return get_label_space(str(name)) if name else None


def _top_level_problems(data: Mapping[Any, Any]) -> tuple[list[str], float]:
    """Problems with the set's own keys (unknown keys, scoring rule, alpha, text fields) and its alpha (the default
    when invalid)."""
    problems: list[str] = []
    unknown = [str(k) for k in data if k not in TOP_LEVEL_KEYS]
    if unknown:
        problems.append(f"unknown keys {unknown}; known keys: {', '.join(TOP_LEVEL_KEYS)}")
    scoring = data.get("scoring", "mean_cosine")
    if scoring not in SCORING_RULES:
        problems.append(f"scoring {scoring!r} is not a scoring rule; choose one of: {', '.join(SCORING_RULES.names())}")
    alpha = data.get("alpha", DEFAULT_ALPHA)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha) or alpha <= 0:
        problems.append(f"alpha must be a positive finite number, got {alpha!r}")
        alpha = DEFAULT_ALPHA
    for key in ("name", "version", "description", "model", "label_space"):
        if data.get(key) is not None and not isinstance(data.get(key), str):
            problems.append(f"{key} must be a text, got {data.get(key)!r}")
    return problems, alpha


def _class_entry(where: str, entry: object) -> tuple[ClassPrompts | None, list[str]]:
    """One class's prompts and negatives (a list of prompts, or a mapping with ``prompts``/``negatives``) and their
    problems; ``None`` when the entry has neither shape."""
    if isinstance(entry, list):
        entry = {"prompts": entry}
    if not isinstance(entry, Mapping):
        return None, [f"{where}: expected a list of prompts or a mapping with 'prompts', got {entry!r}"]
    problems: list[str] = []
    extra = [str(k) for k in entry if k not in CLASS_KEYS]
    if extra:
        problems.append(f"{where}: unknown keys {extra}; known keys: {', '.join(CLASS_KEYS)}")
    prompts, bad = _text_problems(where, "prompts", entry.get("prompts"), allow_empty=False)
    problems += bad
    negatives, bad = _text_problems(where, "negatives", entry.get("negatives"), allow_empty=True)
    problems += bad
    both = sorted({p.lower() for p in prompts} & {n.lower() for n in negatives})
    if both:
        problems.append(f"{where}: {both[0]!r} is both a prompt and a negative")
    return ClassPrompts(tuple(prompts), tuple(negatives)), problems


def parse_prompt_set(
    data: object,
    source: str = "prompt set",
    label_space: LabelSpace | str | None = None,
    allowed: str = "unseen",
) -> PromptSet:
    """Validate a prompt set given as plain data (what ``yaml.safe_load`` returns).

    Args:
        data: the mapping read from YAML.
        source: the file name, for messages.
        label_space: classes are checked against it (default: the set's own ``label_space`` key, if any).
        allowed: ``"unseen"`` (Task 2: only the space's unseen classes) or ``"all"`` (any class of the space).

    Raises:
        ValidationError: every problem found, one per line, naming the class and the prompt.
    """
    if not isinstance(data, Mapping):
        raise InputError(
            f"{source}: a prompt set must be a YAML mapping with a 'classes' key, got {type(data).__name__}"
        )
    problems, alpha = _top_level_problems(data)
    scoring = data.get("scoring", "mean_cosine")
    try:
        space = _resolve_space(label_space, data)
    except InputError as exc:
        problems.append(str(exc))
        space = None
    if allowed not in ("unseen", "all"):
        raise ValueError(f"allowed must be 'unseen' or 'all', got {allowed!r}")

    raw_classes = data.get("classes")
    classes: dict[str, ClassPrompts] = {}
    if not isinstance(raw_classes, Mapping) or not raw_classes:
        problems.append("'classes' must map each class name to its prompts, and name at least one class")
        raw_classes = {}
    for raw_name, entry in raw_classes.items():
        name = str(raw_name).strip()
        where = f"class {name!r}"
        if space is not None:
            canonical = space.resolve(name)
            choices = space.unseen if allowed == "unseen" else space.classes
            if canonical is None or canonical not in choices:
                kind = "an unseen class" if allowed == "unseen" else "a class"
                problems.append(f"{where} is not {kind} of label space {space.name!r} ({', '.join(choices)})")
                continue
            name = canonical
        if name in classes:
            problems.append(f"{where} appears twice")
            continue
        prompts, bad = _class_entry(where, entry)
        problems += bad
        if prompts is not None:
            classes[name] = prompts
    if problems:
        raise ValidationError(f"{source}: invalid prompt set ({len(problems)} problems)", problems)
    return PromptSet(
        classes=classes,
        scoring=str(scoring),
        alpha=float(alpha),
        model=data.get("model"),
        name=data.get("name"),
        version=data.get("version"),
        description=data.get("description"),
        label_space=space.name if space is not None else data.get("label_space"),
    )


def load_prompt_set(
    path: str | os.PathLike[str], label_space: LabelSpace | str | None = None, allowed: str = "unseen"
) -> PromptSet:
    """Read and validate a prompt-set YAML file (``yaml.safe_load``: no code runs), or a set shipped with the
    package by name (:data:`PACKAGED_SETS`: ``default``, ``demo``) when no such file exists."""
    if str(path) in PACKAGED_SETS and not Path(path).is_file():
        return _packaged(PACKAGED_SETS[str(path)], label_space, allowed)
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: prompt set not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read prompt set ({exc})") from None
    return loads_prompt_set(text, source=str(path), label_space=label_space, allowed=allowed)


def loads_prompt_set(
    text: str, source: str = "prompt set", label_space: LabelSpace | str | None = None, allowed: str = "unseen"
) -> PromptSet:
    """Parse and validate prompt-set YAML text (e.g. from the dashboard's editor)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"{source}: not valid YAML{where}: {problem}") from None
    return parse_prompt_set(data, source=source, label_space=label_space, allowed=allowed)


def dump_prompt_set(prompt_set: PromptSet) -> str:
    """The YAML text of a prompt set (keys in file order, Unicode kept)."""
    return yaml.safe_dump(prompt_set.to_dict(), sort_keys=False, allow_unicode=True, width=120)


def save_prompt_set(path: str | os.PathLike[str], prompt_set: PromptSet) -> Path:
    """Write ``prompt_set`` as YAML to ``path`` atomically."""
    write_text(path, dump_prompt_set(prompt_set))
    return Path(path)


def _packaged(name: str, label_space: LabelSpace | str | None, allowed: str) -> PromptSet:
    text = resources.files("cxrlt_core.zeroshot").joinpath(name).read_text(encoding="utf-8")
    return loads_prompt_set(text, source=name, label_space=label_space, allowed=allowed)


def default_prompt_set(label_space: LabelSpace | str | None = None) -> PromptSet:
    """Our default set for the six CXR-LT 2026 unseen findings (10 prompts each; written for CXR CLIP models)."""
    return _packaged(DEFAULT_SET, label_space, "unseen")


def demo_prompt_set(label_space: LabelSpace | str | None = None) -> PromptSet:
    """The set for the demo CLIP: the six unseen findings described in the demo reports' vocabulary."""
    return _packaged(DEMO_SET, label_space, "unseen")


# --------------------------------------------------------------------------------------------------------- diffs
def diff_prompt_sets(old: PromptSet, new: PromptSet) -> list[str]:
    """What changed, one line each: ``~ alpha: 5.0 -> 10.0``, ``+ Bulla: 'a large bulla'``, ``- Goiter (class)``."""
    lines: list[str] = []
    for key in ("name", "description", "model", "scoring", "alpha", "label_space"):
        before, after = getattr(old, key), getattr(new, key)
        if before != after:
            lines.append(f"~ {key}: {before!r} -> {after!r}")
    for name in old.classes:
        if name not in new.classes:
            lines.append(f"- {name} (class, {len(old.classes[name].prompts)} prompts)")
    for name, entry in new.classes.items():
        if name not in old.classes:
            lines.append(f"+ {name} (class, {len(entry.prompts)} prompts)")
            continue
        previous = old.classes[name]
        for kind in ("prompts", "negatives"):
            was, now = getattr(previous, kind), getattr(entry, kind)
            label = "" if kind == "prompts" else " (negative)"
            lines += [f"- {name}{label}: {text!r}" for text in was if text not in now]
            lines += [f"+ {name}{label}: {text!r}" for text in now if text not in was]
    return lines


# ------------------------------------------------------------------------------------------------ version history
_VERSION_FILE = re.compile(r"^v(\d{4,})\.yaml$")


@dataclasses.dataclass(frozen=True)
class PromptVersion:
    """One saved version of a named prompt set."""

    name: str
    number: int
    path: Path
    saved_at: str
    note: str
    current: bool
    metrics: Mapping[str, Any] | None = None  # the figures the version scored when it was saved, if any

    @property
    def label(self) -> str:
        return f"v{self.number:04d}"


class PromptStore:
    """Named prompt sets with a version history, under a workspace's ``prompts/`` folder.

    Layout: ``<root>/<name>/v0001.yaml`` (+ ``v0001.json``: time, note, the version it was based on) ...,
    ``<root>/<name>/current`` (the current version number). Versions are never rewritten: saving creates the
    next number with an exclusive create (two writers never take the same number), reverting copies an old
    version into a new one. Every write is atomic.
    """

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    def folder(self, name: str) -> Path:
        return self.root / check_name(name, "prompt set name")

    def names(self) -> list[str]:
        """Saved prompt sets (folders holding at least one version)."""
        if not self.root.is_dir():
            return []
        return sorted(d.name for d in self.root.iterdir() if d.is_dir() and self._numbers(d))

    @staticmethod
    def _numbers(folder: Path) -> list[int]:
        if not folder.is_dir():
            return []
        return sorted(int(m.group(1)) for p in folder.iterdir() if (m := _VERSION_FILE.match(p.name)))

    def _version_path(self, name: str, number: int) -> Path:
        return self.folder(name) / f"v{number:04d}.yaml"

    def current_number(self, name: str) -> int:
        """The current version (the ``current`` pointer; the newest version if the pointer is missing or stale)."""
        numbers = self._numbers(self.folder(name))
        if not numbers:
            raise InputError(f"prompt set {name!r} has no saved versions in {self.root}")
        pointer = self.folder(name) / "current"
        try:
            number = int(pointer.read_text(encoding="utf-8").strip())
        except (OSError, ValueError):
            return numbers[-1]
        return number if number in numbers else numbers[-1]

    def versions(self, name: str) -> list[PromptVersion]:
        """Every saved version, oldest first."""
        numbers = self._numbers(self.folder(name))
        if not numbers:
            return []
        current = self.current_number(name)
        out = []
        for number in numbers:
            path = self._version_path(name, number)
            meta = _read_meta(path.with_suffix(".json"))
            metrics = meta.get("metrics") if isinstance(meta.get("metrics"), dict) else None
            saved_at, note = meta.get("saved_at", ""), meta.get("note", "")
            out.append(PromptVersion(name, number, path, saved_at, note, number == current, metrics))
        return out

    def load(
        self, name: str, version: int | None = None, label_space: LabelSpace | str | None = None, allowed: str = "all"
    ) -> PromptSet:
        """Version ``version`` of set ``name`` (default: the current one)."""
        number = self.current_number(name) if version is None else int(version)
        path = self._version_path(name, number)
        if not path.is_file():
            raise InputError(f"prompt set {name!r} has no version {number} (have {self._numbers(self.folder(name))})")
        return load_prompt_set(path, label_space=label_space, allowed=allowed)

    def save(
        self, name: str, prompt_set: PromptSet, note: str = "", metrics: Mapping[str, Any] | None = None
    ) -> PromptVersion:
        """Save ``prompt_set`` as the next version of ``name`` and make it current (``metrics``: its figures).

        Saving a set identical to the current version writes nothing and returns the current version.
        """
        folder = self.folder(name)
        folder.mkdir(parents=True, exist_ok=True)
        text = dump_prompt_set(prompt_set)
        numbers = self._numbers(folder)
        based_on = self.current_number(name) if numbers else None
        if based_on is not None and self._version_path(name, based_on).read_text(encoding="utf-8") == text:
            return next(v for v in self.versions(name) if v.number == based_on)
        number = (numbers[-1] if numbers else 0) + 1
        while True:
            path = self._version_path(name, number)
            try:
                # Reserve the number: exclusive create fails if another writer took it first.
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
                break
            except FileExistsError:
                number += 1
        saved_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        meta = {"saved_at": saved_at, "note": note, "based_on": based_on}
        if metrics is not None:
            meta["metrics"] = dict(metrics)
        write_json(path.with_suffix(".json"), meta)
        write_text(path, text)
        write_text(folder / "current", f"{number}\n")
        return PromptVersion(name, number, path, saved_at, note, True, metrics)

    def revert(self, name: str, version: int, note: str | None = None) -> PromptVersion:
        """Make version ``version`` current again by saving a copy of it as a new version (history is kept)."""
        old = self.load(name, version)
        return self.save(name, old, note=note if note is not None else f"revert to v{int(version):04d}")

    def diff(self, name: str, old: int, new: int | None = None) -> list[str]:
        """:func:`diff_prompt_sets` between two versions (``new`` default: the current one)."""
        return diff_prompt_sets(self.load(name, old), self.load(name, new))

    def unified_diff(self, name: str, old: int, new: int | None = None) -> str:
        """A unified diff of the two versions' YAML text."""
        new_number = self.current_number(name) if new is None else new
        a, b = self._version_path(name, old), self._version_path(name, new_number)
        for path in (a, b):
            if not path.is_file():
                raise InputError(f"prompt set {name!r} has no version file {path.name}")
        lines = difflib.unified_diff(
            a.read_text(encoding="utf-8").splitlines(keepends=True),
            b.read_text(encoding="utf-8").splitlines(keepends=True),
            fromfile=a.name,
            tofile=b.name,
        )
        return "".join(lines)


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
