"""Small name → object registries filled by a decorator (heads, losses, samplers, TTA sets, ...).

A recipe names an entry, the UI lists them, the CLI offers them as choices (:class:`RegistryChoices`), and tests are
parametrised over every entry. A registry is the only list of its names.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Container, Iterable, Iterator
from typing import Generic, TypeVar

from cxrlt_core.errors import InputError

T = TypeVar("T")

_ALL: list[Registry] = []


class Registry(Generic[T]):
    """An ordered mapping of names to objects, with a clear error for unknown names."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}
        _ALL.append(self)

    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Decorator that registers the object under ``name`` (default: its ``__name__``)."""

        def decorate(obj: T) -> T:
            key = name or obj.__name__
            if key in self._entries:
                raise KeyError(f"{self.kind} {key!r} is registered twice")
            self._entries[key] = obj
            return obj

        return decorate

    def add(self, name: str, obj: T) -> T:
        """Register ``obj`` under ``name`` without a decorator."""
        return self.register(name)(obj)

    def get(self, name: str) -> T:
        """Return the entry called ``name``; an unknown name is an ``InputError`` listing the choices."""
        try:
            return self._entries[name]
        except KeyError:
            choices = ", ".join(self._entries) or "none"
            raise InputError(f"unknown {self.kind} {name!r}; choose one of: {choices}") from None

    def names(self) -> list[str]:
        """Registered names in registration order."""
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


def all_registries() -> list[Registry]:
    """Every registry created so far (those of the modules imported), in creation order."""
    return list(_ALL)


class RegistryChoices:
    """The names of a registry (or any container of names) for ``argparse`` ``choices``, imported on first use.

    The CLI builds every sub-command's parser on start; the registries of TTA sets, heads or losses live in modules
    that import torch (seconds), so ``cxrlt --help`` would pay for it. Give the argument a ``metavar`` so argparse
    does not list the choices while building the parser.

    Args:
        target: ``"package.module:NAME"`` of a :class:`Registry`, a mapping or a tuple of names.
    """

    def __init__(self, target: str):
        self.target = target

    def load(self) -> Iterable[str]:
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)

    def names(self) -> list[str]:
        return list(self.load())

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __contains__(self, name: object) -> bool:
        source = self.load()
        return name in source if isinstance(source, Container) else name in list(source)

    def __len__(self) -> int:
        return len(self.names())

    def __repr__(self) -> str:
        return f"RegistryChoices({self.target!r})"
