"""Fidelity profiles: named sets of the small choices where cxrlt and the CXR-LT 2026 winning code differ.

A recipe picks a profile (``profile.name``) and may override any single choice; the resolved profile is recorded in
every checkpoint sidecar (``profile``) and its input-side choices in the model's input contract, so inference feeds
a model exactly as it was trained.

=================  =======================================  ===============================================
choice             ``cxrlt``                                ``winning_code`` (hieuphamha19/CXR_LT)
=================  =======================================  ===============================================
interpolation      ``auto``: INTER_AREA to shrink           ``linear``: INTER_LINEAR (albumentations Resize)
rounding           ``rint`` to the nearest grey level       ``truncate`` (the uint8 cast after rescaling)
tta_geometry       black padding; zoom-in crops             reflection padding (rotations, zoom-out); zoom-in
                   ``round(H / f)`` and resizes back         upsamples to ``int(H · f)``, then centre crop
lr_step            per optimiser step                       per epoch (``LambdaLR`` stepped once an epoch)
head_init          PyTorch layer defaults                   Xavier-uniform classifier + attention conv, zero bias
val_split          ``images``: ~10 % of the images,         ``patients``: 10 % of the patients
                   grouped by patient, stratified draw      (scikit-learn ``GroupShuffleSplit``, seed 42)
=================  =======================================  ===============================================
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from cxrlt_core.errors import InputError
from cxrlt_core.registry import Registry

__all__ = ["CHOICES", "PROFILES", "FidelityProfile", "resolve_profile"]

#: Every choice and its allowed values (the first is cxrlt's).
CHOICES: dict[str, tuple[str, ...]] = {
    "interpolation": ("auto", "linear", "area", "cubic", "lanczos", "nearest"),
    "rounding": ("rint", "truncate"),
    "tta_geometry": ("cxrlt", "winning_code"),
    "lr_step": ("step", "epoch"),
    "head_init": ("default", "winning_code"),
    "val_split": ("images", "patients"),
}


@dataclasses.dataclass(frozen=True)
class FidelityProfile:
    """One value per choice (module docstring); ``name`` says which named profile it started from."""

    name: str
    interpolation: str
    rounding: str
    tta_geometry: str
    lr_step: str
    head_init: str
    val_split: str

    def __post_init__(self) -> None:
        for key, allowed in CHOICES.items():
            value = getattr(self, key)
            if value not in allowed:
                raise InputError(f"profile.{key} = {value!r}; choose one of: {', '.join(allowed)}")

    def to_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)

    def differs_from(self, other: FidelityProfile) -> list[str]:
        """The choices where the two profiles differ."""
        return [key for key in CHOICES if getattr(self, key) != getattr(other, key)]


PROFILES: Registry[FidelityProfile] = Registry("fidelity profile")
PROFILES.add("cxrlt", FidelityProfile("cxrlt", "auto", "rint", "cxrlt", "step", "default", "images"))
PROFILES.add(
    "winning_code",
    FidelityProfile("winning_code", "linear", "truncate", "winning_code", "epoch", "winning_code", "patients"),
)


def resolve_profile(name: str = "cxrlt", overrides: Mapping[str, Any] | None = None) -> FidelityProfile:
    """The registered profile ``name`` with the non-None ``overrides`` applied (unknown names are an error)."""
    base = PROFILES.get(name)
    given = {k: v for k, v in dict(overrides or {}).items() if v is not None}
    unknown = sorted(set(given) - set(CHOICES))
    if unknown:
        raise InputError(f"unknown profile choices {unknown}; known: {', '.join(CHOICES)}")
    return dataclasses.replace(base, **given)
