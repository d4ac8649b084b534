"""Dataset specs: one TOML file per dataset in `datasets/`, read and validated here."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import BenchError, unknown_name
from bench.files import read_toml
from bench.layout import datasets_dir

FORMATS = ("synthetic", "ham10000")
TRAINING_KEYS = (
    "image_size",
    "backbone",
    "epochs",
    "batch_size",
    "lr",
    "momentum",
    "weight_decay",
    "warmup_epochs",
)


@dataclass(frozen=True)
class DatasetSpec:
    """A named dataset: its source format, classes, split fractions and training defaults."""

    name: str
    description: str
    format: str
    source: str
    classes: tuple[str, ...]
    aliases: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    training: dict[str, Any] = field(default_factory=dict)
    shot_groups: Any = "terciles"
    path: Path | None = None


def _require(table: dict[str, Any], key: str, kind: type, path: Path, where: str = "") -> Any:
    value = table.get(key)
    if not isinstance(value, kind):
        place = f"[{where}] " if where else ""
        raise BenchError(f"{path}: {place}field {key!r} must be a {kind.__name__}, got {value!r}.")
    return value


def parse_spec(path: Path) -> DatasetSpec:
    """Read and validate one dataset spec file."""
    raw = read_toml(path)
    fmt = _require(raw, "format", str, path)
    if fmt not in FORMATS:
        raise BenchError(f"{path}: field 'format' is {fmt!r}; supported: {', '.join(FORMATS)}.")
    classes = tuple(_require(raw, "classes", list, path))
    split = raw.get("split", {})
    training = raw.get("training", {})
    unknown = sorted(set(training) - set(TRAINING_KEYS))
    if unknown:
        raise BenchError(
            f"{path}: [training] unknown field(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(TRAINING_KEYS)}."
        )
    val, test = float(split.get("val", 0.15)), float(split.get("test", 0.15))
    if not (0 < val < 1 and 0 < test < 1 and val + test < 1):
        raise BenchError(
            f"{path}: [split] val={val}, test={test} must be in (0, 1) and sum below 1."
        )
    return DatasetSpec(
        name=path.stem,
        description=_require(raw, "description", str, path),
        format=fmt,
        source=raw.get("source", ""),
        classes=classes,
        aliases=tuple(raw.get("aliases", ())),
        params=raw.get("params", {}),
        val_fraction=val,
        test_fraction=test,
        training=training,
        shot_groups=raw.get("metrics", {}).get("shot_groups", "terciles"),
        path=path,
    )


def all_specs(folder: Path | None = None) -> dict[str, DatasetSpec]:
    """Every dataset spec in `folder` (default: the project's `datasets/`), by name."""
    folder = folder or datasets_dir()
    return {p.stem: parse_spec(p) for p in sorted(folder.glob("*.toml"))}


def get_spec(name: str, folder: Path | None = None) -> DatasetSpec:
    """The spec called `name` (or with `name` among its aliases)."""
    specs = all_specs(folder)
    for spec in specs.values():
        if name == spec.name or name in spec.aliases:
            return spec
    names = [*specs, *(a for s in specs.values() for a in s.aliases)]
    raise unknown_name("dataset", name, names, hint="`bench list datasets` shows them all.")
