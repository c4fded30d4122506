"""Small name → object registries filled by a decorator (heads, losses, samplers, TTA sets, ...).

A recipe names an entry, the UI lists them, and tests are parametrised over every entry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from cxrlt_core.errors import InputError

T = TypeVar("T")


class Registry(Generic[T]):
    """An ordered mapping of names to objects, with a clear error for unknown names."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

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
