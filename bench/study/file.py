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

    [tuning]                        # optional: how sensitive the verdict is to tuning
    dataset = "retina"              # one of the study's datasets
    [tuning.grids]                  # a study method and the values its variants take
    "supcon+crt" = { "metric.weight" = [0.1, 0.3, 1.0] }
    "ce+crt" = { "stage2.lr" = [0.016, 0.05, 0.16] }

A dataset's settings override its spec's as the command line does; its runs are the runs
`bench run` makes with those options, so `results/` serves both. On the tuning dataset every
variant of a grid (`bench.recipes.variants`: each combination of its values) runs beside the
study's methods, and `bench compare --study` chooses among them per split on validation.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
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
    "tuning": Field(dict),
}
TUNING_FIELDS = {"dataset": Field(str), "grids": Field(dict)}
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
class TuningPlan:
    """How sensitive the verdict is to tuning: on `dataset`, each method of `grids` also runs at
    every combination of its grid's values (path → values), and each split takes the variant
    with the best validation balanced accuracy after stage 2."""

    dataset: str
    grids: dict[str, dict[str, tuple[Any, ...]]]

    def variants(self, registry: MethodRegistry) -> dict[str, list[str]]:
        """Each tuned method's variants by name, in grid order (a combination of the method's
        own values is the method itself)."""
        found = {}
        for method, grid in self.grids.items():
            paths = sorted(grid)
            names = [
                registry.variant(method, dict(zip(paths, values, strict=True))).name
                for values in itertools.product(*(grid[path] for path in paths))
            ]
            found[method] = list(dict.fromkeys(names))
        return found


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
    tuning: TuningPlan | None = None

    @property
    def archive(self) -> Path:
        """The committed results archive beside the file: `studies/<name>/`."""
        return self.path.parent / self.name

    def method_list(self, registry: MethodRegistry) -> list[Method]:
        """The methods its names and lists expand to, in order, once."""
        return registry.expand(",".join(self.methods))

    def methods_on(self, dataset: StudyDataset, registry: MethodRegistry) -> list[Method]:
        """The methods run on `dataset`: the study's, and on the tuning dataset the variants
        of its grids."""
        methods = self.method_list(registry)
        if self.tuning is None or self.tuning.dataset != dataset.name:
            return methods
        known = {m.name for m in methods}
        names = [n for names in self.tuning.variants(registry).values() for n in names]
        return methods + [registry.get(n) for n in dict.fromkeys(names) if n not in known]

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
    if "tuning" in raw:
        study = dataclasses.replace(study, tuning=_tuning(raw, where))
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
    if study.tuning is not None:
        _check_tuning(study, methods, registry)
    return study


def _tuning(raw: dict[str, Any], where: str) -> TuningPlan:
    """The `[tuning]` table: a dataset and, per method, each path's values (each once)."""
    values = check_fields(table_at(raw, "tuning", where), TUNING_FIELDS, f"{where}: [tuning]")
    if "dataset" not in values or not values.get("grids"):
        raise BenchError(
            f"{where}: [tuning] needs a dataset and a [tuning.grids] table of methods, e.g. "
            '"ce+crt" = {"stage2.lr" = [0.016, 0.05, 0.16]}.'
        )
    grids: dict[str, dict[str, tuple[Any, ...]]] = {}
    for method, grid in values["grids"].items():
        at = f"{where}: [tuning.grids] {method!r}"
        if not isinstance(grid, dict) or not grid:
            raise BenchError(f'{at}: give each path its values, e.g. {{"metric.weight" = [0.1]}}.')
        for path, options in grid.items():
            if not isinstance(options, list) or not options:
                raise BenchError(f"{at}: {path!r} needs a non-empty list of values.")
        grids[method] = {path: tuple(options) for path, options in grid.items()}
    return TuningPlan(values["dataset"], grids)


def _check_tuning(study: Study, methods: list[Method], registry: MethodRegistry) -> None:
    """Refuse a tuning plan whose dataset or methods the study lacks, or whose variants do not
    build (a path no recipe holds, a value out of range)."""
    assert study.tuning is not None
    where = f"{study.path}: [tuning]"
    if study.tuning.dataset not in {d.name for d in study.datasets}:
        known = ", ".join(d.name for d in study.datasets)
        raise BenchError(f"{where} dataset {study.tuning.dataset!r} is not the study's ({known}).")
    names = {m.name for m in methods}
    if strangers := [m for m in study.tuning.grids if m not in names]:
        raise BenchError(
            f"{where}: {strangers[0]!r} is not one of the study's methods; tune methods it runs."
        )
    try:
        variants = study.tuning.variants(registry)
    except BenchError as error:
        raise BenchError(f"{where}: {error}") from None
    for method, grid in study.tuning.grids.items():
        if len(variants[method]) < math.prod(len(values) for values in grid.values()):
            raise BenchError(
                f"{where}: two values of {method!r}'s grid make the same variant (e.g. 3 and "
                "3.0, or a value and the default it equals); list each setting once."
            )


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
