"""A study file (`studies/<name>.toml`): what a study compares, fixed before any result is seen.

    description = "..."
    methods = ["contenders"]        # method names and named lists, as --methods takes them
    data_seeds = [0, 1, 2, 3, 4]    # the splits; fixed here, never added after a look
    train_seeds = [0]

    [compare]
    reference = "ce"                # the stage 1 each representation learner is paired with
    rope = 1.0                      # ± points of the metric counted as practically equivalent
    metric = "balanced_accuracy"

    [[datasets]]
    name = "skin"
    backbone = "resnet-compact"     # any training setting, `profile` and `imbalance`
    pooled = true                   # false: reported apart from the pooled verdict

A dataset's settings override its spec's as the command line does; its runs are the runs
`bench run` makes with those options, so `results/` serves both.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.components.scalars import SCALARS
from bench.components.settings import SETTING_FIELDS
from bench.core.errors import BenchError
from bench.core.validation import Field, check_fields, confined_name, read_toml, table_at
from bench.data.longtail import LONGTAIL_RATIO
from bench.data.specs import DatasetSpec, get_spec
from bench.experiment.conditions import Conditions
from bench.recipes.methods import Method, MethodRegistry

SEED = Field(int, 0, 10**6, advice="seeds are integers from 0 to 1000000")
TOP_FIELDS = {
    "description": Field(str),
    "methods": Field(list, items=str),
    "data_seeds": Field(list, items=int),
    "train_seeds": Field(list, items=int),
    "compare": Field(dict),
    "datasets": Field(list, items=dict),
}
COMPARE_FIELDS = {
    "reference": Field(str),
    "rope": Field(float, 0, None, low_open=True, advice="use a positive number of points"),
    "metric": Field(str, choices=tuple(SCALARS)),
}
DATASET_FIELDS = {
    "name": Field(str),
    "pooled": Field(bool),
    "profile": Field(str),
    "imbalance": LONGTAIL_RATIO,
    **SETTING_FIELDS,
}


@dataclass(frozen=True)
class StudyDataset:
    """One dataset of a study: its spec's name, the training settings that override the
    spec's (as command-line options do), its profile and long-tail ratio, and whether its
    comparison enters the pooled verdict (unsaid: unless it is generated)."""

    name: str
    overrides: dict[str, Any] = field(default_factory=dict)
    profile: str | None = None
    imbalance: float | None = None
    pooled: bool | None = None  # None: pooled unless generated

    def conditions(self, base: Conditions) -> Conditions:
        """`base` (device, data root, cache) with this dataset's settings."""
        return dataclasses.replace(
            base, overrides=dict(self.overrides), profile=self.profile, imbalance=self.imbalance
        )

    def spec(self) -> DatasetSpec:
        """Its spec, as its runs take it (with the study's imbalance ratio)."""
        return Conditions(imbalance=self.imbalance).resolve_spec(get_spec(self.name))

    def options(self) -> str:
        """Its settings as `bench run` options (for messages)."""
        words = [f"--{key.replace('_', '-')} {value}" for key, value in self.overrides.items()]
        if self.profile:
            words.append(f"--profile {self.profile}")
        if self.imbalance is not None:
            words.append(f"--imbalance {self.imbalance:g}")
        return " ".join(words)


@dataclass(frozen=True)
class Study:
    """A study: datasets, methods, seeds and how its comparison is made, read from `path`."""

    name: str
    path: Path
    description: str
    datasets: tuple[StudyDataset, ...]
    methods: tuple[str, ...]
    data_seeds: tuple[int, ...]
    train_seeds: tuple[int, ...]
    reference: str = "ce"
    rope: float = 1.0
    metric: str = "balanced_accuracy"

    @property
    def archive(self) -> Path:
        """The committed results archive beside the file: `studies/<name>/`."""
        return self.path.parent / self.name

    def method_list(self, registry: MethodRegistry) -> list[Method]:
        """The methods its names and lists expand to, in order, once."""
        return registry.expand(",".join(self.methods))

    def dataset(self, name: str) -> StudyDataset:
        """The dataset called `name`."""
        for dataset in self.datasets:
            if dataset.name == name:
                return dataset
        known = ", ".join(d.name for d in self.datasets)
        raise BenchError(f"study {self.name} has no dataset {name!r}; it has {known}.")


def load_study(path: Path, registry: MethodRegistry | None = None) -> Study:
    """The study file at `path`, checked: every value, every dataset and method name, every
    seed list (each seed once); errors name the file and the field."""
    raw = read_toml(path, "study file")
    where = str(path)
    values = check_fields(raw, TOP_FIELDS, where)
    for key in ("methods", "data_seeds", "train_seeds", "datasets"):
        if not values.get(key):
            raise BenchError(f"{where}: {key!r} is missing or empty; a study names its {key}.")
    name = confined_name(path.stem, "study")
    compare = check_fields(table_at(raw, "compare", where), COMPARE_FIELDS, f"{where}: [compare]")
    study = Study(
        name=name,
        path=path,
        description=values.get("description", ""),
        datasets=tuple(
            _dataset(entry, f"{where}: datasets[{k}]") for k, entry in enumerate(raw["datasets"])
        ),
        methods=tuple(values["methods"]),
        data_seeds=_seeds(values["data_seeds"], f"{where}: 'data_seeds'"),
        train_seeds=_seeds(values["train_seeds"], f"{where}: 'train_seeds'"),
        **compare,
    )
    names = [d.name for d in study.datasets]
    if repeated := sorted({n for n in names if names.count(n) > 1}):
        raise BenchError(f"{where}: dataset {repeated[0]!r} is listed twice; list it once.")
    registry = registry or MethodRegistry()
    try:
        methods = study.method_list(registry)  # unknown names fail here, with suggestions
        registry.get(study.reference)
    except BenchError as error:
        raise BenchError(f"{where}: {error}") from None
    if not any(m.stage1.name == study.reference for m in methods):
        raise BenchError(
            f"{where}: [compare] reference {study.reference!r} is the stage 1 of none of the "
            "study's methods; list its methods (e.g. ce+crt) or name another reference."
        )
    return study


def _dataset(entry: dict[str, Any], where: str) -> StudyDataset:
    values = check_fields(entry, DATASET_FIELDS, where)
    if "name" not in values:
        raise BenchError(f"{where}: 'name' is missing; name the dataset (bench list datasets).")
    try:
        spec = get_spec(values.pop("name"))
        profile = values.pop("profile", None)
        if profile is not None:
            spec.training_for(profile)  # an unknown profile fails here, naming the spec's
    except BenchError as error:
        raise BenchError(f"{where}: {error}") from None
    return StudyDataset(
        name=spec.name,
        profile=profile,
        imbalance=values.pop("imbalance", None),
        pooled=values.pop("pooled", None),
        overrides=values,
    )


def _seeds(seeds: list[int], where: str) -> tuple[int, ...]:
    for seed in seeds:
        SEED.check(seed, where)
    if len(set(seeds)) < len(seeds):
        raise BenchError(f"{where} lists a seed twice; list each once.")
    return tuple(seeds)
