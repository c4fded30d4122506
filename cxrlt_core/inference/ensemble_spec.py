"""Ensemble spec files: the members of a (multi-resolution) ensemble, each with its checkpoint, input size and
weight, in one YAML file that ``cxrlt predict --ensemble`` takes.

    name: demo_team_a_multires
    description: two ConvNeXt models trained at 64 and 96 px
    members:
      - checkpoint: ${workspace}/runs/demo_team_a_64/checkpoints/best.safetensors
        input_size: 64          # optional: checked against the checkpoint (each member runs at its own size)
        weight: 1.0             # optional (1); weights are normalised to sum 1
      - checkpoint: ../runs/demo_team_a_96/checkpoints/best.safetensors   # relative to this file's folder
        input_size: 96

Every member is predicted at the input size its checkpoint was trained at (the sidecar's preprocessing); the
``input_size`` written here is a check that the file is the member meant, so a swapped checkpoint is caught.
Paths may use ``${workspace}``, ``${shared_data}``, ``${repo}``; other relative paths are relative to the spec.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any

import yaml

from cxrlt_core.config import resolve_path
from cxrlt_core.errors import InputError
from cxrlt_core.models.checkpoint import read_sidecar

MEMBER_KEYS = ("checkpoint", "input_size", "weight", "name")


@dataclasses.dataclass
class EnsembleMember:
    """One member: a checkpoint, its expected input size (or None) and its weight."""

    checkpoint: Path
    weight: float = 1.0
    input_size: int | None = None
    name: str | None = None

    @property
    def label(self) -> str:
        """The member's name, else its run's folder (``runs/<run>/checkpoints/<file>``), else the file's stem."""
        if self.name:
            return str(self.name)
        parent = self.checkpoint.parent
        return parent.parent.name if parent.name == "checkpoints" else self.checkpoint.stem


@dataclasses.dataclass
class EnsembleSpec:
    """A whole ensemble spec file."""

    name: str
    members: list[EnsembleMember]
    description: str = ""
    path: Path | None = None

    @property
    def checkpoints(self) -> list[Path]:
        return [m.checkpoint for m in self.members]

    @property
    def weights(self) -> list[float]:
        return [m.weight for m in self.members]

    def rows(self) -> list[dict[str, Any]]:
        """One row per member for display: label, checkpoint, input size and the weight normalised to sum 1."""
        total = sum(self.weights) or 1.0
        return [
            {"member": m.label, "checkpoint": str(m.checkpoint), "input size": m.input_size,
             "weight": round(m.weight / total, 3)}
            for m in self.members
        ]  # fmt: skip


def load_ensemble_spec(
    path: str | os.PathLike[str], workspace: str | os.PathLike[str] | None = None, check_sizes: bool = True
) -> EnsembleSpec:
    """Read and check an ensemble spec; with ``check_sizes`` every member's checkpoint must exist and, where the
    spec names an ``input_size``, have been trained at that size.

    Raises:
        InputError: a missing or malformed file, an unknown key, a bad weight, a missing checkpoint or a size that
            does not match, naming the file and the member.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: ensemble spec not found") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(data, dict) or not isinstance(data.get("members"), list) or not data["members"]:
        raise InputError(f"{path}: an ensemble spec needs a non-empty 'members' list")
    unknown = sorted(set(data) - {"name", "description", "members"})
    if unknown:
        raise InputError(f"{path}: unknown key(s) {unknown}; an ensemble spec has name, description, members")
    members = [_member(path, i, item, workspace) for i, item in enumerate(data["members"], 1)]
    spec = EnsembleSpec(str(data.get("name") or path.stem), members, str(data.get("description") or ""), path)
    if check_sizes:
        for i, member in enumerate(members, 1):
            _check_size(path, i, member)
    return spec


def _member(path: Path, index: int, item: Any, workspace: str | os.PathLike[str] | None) -> EnsembleMember:
    where = f"{path}: member {index}"
    if not isinstance(item, dict) or "checkpoint" not in item:
        raise InputError(f"{where} needs a 'checkpoint'")
    unknown = sorted(set(item) - set(MEMBER_KEYS))
    if unknown:
        raise InputError(f"{where}: unknown key(s) {unknown}; a member has {', '.join(MEMBER_KEYS)}")
    weight = item.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight < 0:
        raise InputError(f"{where}: weight must be a number >= 0, got {weight!r}")
    size = item.get("input_size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 16):
        raise InputError(f"{where}: input_size must be an integer >= 16, got {size!r}")
    return EnsembleMember(_resolve(path, str(item["checkpoint"]), workspace), float(weight), size, item.get("name"))


def _resolve(spec: Path, value: str, workspace: str | os.PathLike[str] | None) -> Path:
    if value.startswith("${"):
        return resolve_path(value, workspace)  # type: ignore[return-value]
    candidate = Path(value).expanduser()
    return candidate if candidate.is_absolute() else (spec.parent / candidate).resolve()


def _check_size(path: Path, index: int, member: EnsembleMember) -> None:
    if not member.checkpoint.is_file():
        raise InputError(f"{path}: member {index}: checkpoint {member.checkpoint} does not exist")
    if member.input_size is None:
        return
    sidecar = read_sidecar(member.checkpoint)
    trained = sidecar.get("model", {}).get("input_size")
    if trained is not None and int(trained) != member.input_size:
        raise InputError(
            f"{path}: member {index}: input_size {member.input_size} but {member.checkpoint.name} was trained at "
            f"{trained} px; fix the spec or the checkpoint path"
        )
