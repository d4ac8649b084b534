"""Method recipes: TOML files in `methods/`, composed by name into methods.

A stage-1 recipe composes registered pieces — a loss, an optional class weighting (optionally
deferred, as in DRW), a sampler, and an optional metric-learning term — each with its
parameters, and may ask for the shared stage-1 options: several augmented views of each image,
strong augmentation, mixup (`[augment]`), and the training settings its paper fixes
(`[training]`). A stage-2 recipe names a classifier re-balancing method and its parameters. A
method is a stage-1 recipe alone (one-stage) or `stage1+stage2` (two-stage), so new methods
are data, not code.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from bench.components.catalogue import (
    LOSSES,
    METRIC_LOSSES,
    SAMPLERS,
    STAGE2_METHODS,
    WEIGHTINGS,
)
from bench.components.settings import SETTING_FIELDS, check_settings
from bench.core.errors import BenchError, unknown_name
from bench.core.layout import methods_dir
from bench.core.ranges import NON_NEGATIVE, POSITIVE, Range
from bench.core.registry import Param, Registry
from bench.core.validation import (
    Field,
    check_fields,
    confined_name,
    read_toml,
    reject_unknown,
    table_at,
)
from bench.recipes.variants import (
    STAGE2_TABLE,
    parse_part,
    set_fields,
    split_outside_brackets,
    variant_name,
)

LISTS_FILE = "_lists.toml"
STAGE1_KEYS = {
    "description",
    "reference",
    "approach",
    "loss",
    "weighting",
    "sampler",
    "metric",
    "augment",
    "training",
    "search",
}
STAGE2_KEYS = {"description", "reference", "stage2", "search"}
# The tables a recipe of each stage may hold (a variant may set their fields).
STAGE1_TABLES = ("loss", "weighting", "sampler", "metric", "augment", "training")
STAGE2_TABLES = (STAGE2_TABLE,)
TUNED = "tuned/"  # prefix of methods exported by `bench sweep --export`
TUNED_KEYS = ("description", "reference", "tuned", "settings", "stage1_recipe", "stage2_recipe")
# The [tuned] table `bench sweep --export` writes: where the values were chosen.
TUNED_FIELDS = {
    "method": Field(str),
    "dataset": Field(str),
    "study": Field(str),
    "trial": Field(int, 0),
    "value": Field(float),
    "objective": Field(str),
    "data_seeds": Field(list, 0, 2**31 - 1, items=int),
    "split_digests": Field(dict),
    "finished_trials": Field(int, 0),
    "exported": Field(str),
}
STAGE2_MODES = ("features", "finetune-bn")
# The augmentations stage 1 may train under (`bench.stage1.augment.AUGMENTATIONS`).
AUGMENT_STRENGTHS = ("standard", "strong", "geometric")
# The `[augment]` table: the shared stage-1 options any recipe may ask for.
AUGMENT_FIELDS = {
    "views": Field(int, 1, 8, advice="use 1 to 8 views of each image"),
    "strength": Field(str, choices=AUGMENT_STRENGTHS),
    "mixup_alpha": Field(float, 0.0, 10.0, advice="use 0 (no mixup) up to 10"),
}
# The training settings a recipe's `[training]` table may fix (a method's paper fixes its
# optimisation: weight balancing's strong weight decay). The backbone, input and checkpoint
# rule are the comparison's, the same for every method: the dataset spec or the command line
# sets them.
RECIPE_SETTINGS = (
    "epochs",
    "batch_size",
    "lr",
    "momentum",
    "weight_decay",
    "warmup_epochs",
    "min_steps",
)
FAMILIES = ("one-stage", "two-stage", "two-stage + metric learning")
# What a stage 1 does about the imbalance, for the verdict of `bench compare` (a recipe declares
# it as `approach = "..."`, or it is read off the recipe: `stage1_approach`). The representation
# learners are compared with cross-entropy under the same stage 2, each approach reported apart.
APPROACHES = (
    "plain",
    "loss re-weighting",
    "augmentation",
    "supervised metric learning",
    "long-tailed contrastive",
    "self-supervised",
)
REPRESENTATION_APPROACHES = APPROACHES[2:]
DECOUPLED = "decoupled stage 2"  # a plain stage 1 under a stage-2 method


@dataclass(frozen=True)
class Component:
    """A registered piece by name with the keyword parameters the recipe gives it."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Name and parameters as one flat mapping (recorded in results)."""
        return {"name": self.name, **self.params}

    def describe(self) -> str:
        """`name(param=value, ...)`."""
        args = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.name}({args})" if args else self.name


@dataclass(frozen=True)
class MetricTerm:
    """`weight · metric(projection(features))`, added to the classification loss."""

    loss: Component
    weight: float = 1.0
    embedding_dim: int = 128
    lr_multiplier: float = 1.0
    weight_decay: bool = True

    def as_dict(self) -> dict[str, Any]:
        """Recorded form (hashed into run ids)."""
        return {
            **self.loss.as_dict(),
            "weight": self.weight,
            "embedding_dim": self.embedding_dim,
            "lr_multiplier": self.lr_multiplier,
            "weight_decay": self.weight_decay,
        }


@dataclass(frozen=True)
class Augmentation:
    """How stage 1 augments a batch (`[augment]`): `views` augmented views of each image (a
    contrastive loss compares them), the augmentation's `strength` (`standard`: the shared
    flips, rotation, scaling and photometric jitter; `strong`: random resized crops, colour
    jitter and greyscale, as contrastive methods train; `geometric`: `strong`'s crops, flips
    and rotations without its colour distortion), and mixup's α (λ ~ Beta(α, α); 0: no
    mixing)."""

    views: int = 1
    strength: str = "standard"
    mixup_alpha: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """Recorded form (hashed into ids when it differs from the default)."""
        return {"views": self.views, "strength": self.strength, "mixup_alpha": self.mixup_alpha}

    def describe(self) -> str:
        """What differs from the default, in words (empty when nothing does)."""
        parts = []
        if self.views > 1:
            parts.append(f"{self.views} views")
        if self.strength != "standard":
            parts.append(f"{self.strength} augmentation")
        if self.mixup_alpha:
            parts.append(f"mixup α={self.mixup_alpha}")
        return ", ".join(parts)


@dataclass(frozen=True)
class Recipe:
    """A stage-1 recipe: what loss, weighting, sampler and metric term train the network, how
    its batches are augmented, and the training settings it fixes."""

    name: str
    description: str
    reference: str
    loss: Component
    sampler: Component
    weighting: Component | None = None
    weighting_start: float = 0.0
    metric: MetricTerm | None = None
    path: Path | None = None
    augment: Augmentation = Augmentation()
    training: dict[str, Any] = field(default_factory=dict)
    detached_head: bool = False
    loss_weight: float = 1.0
    declared_approach: str | None = None

    @property
    def approach(self) -> str:
        """What this stage 1 does about the imbalance (APPROACHES): as declared, else a metric
        term is supervised metric learning, mixup augmentation, any other change to plain
        cross-entropy on instance-sampled batches loss re-weighting, and none of them plain."""
        if self.declared_approach:
            return self.declared_approach
        if self.metric:
            return "supervised metric learning"
        if self.augment.mixup_alpha:
            return "augmentation"
        plain = self.loss.name == "ce" and self.weighting is None
        return "plain" if plain and self.sampler.name == "instance" else "loss re-weighting"

    def loss_record(self) -> dict[str, Any]:
        """The `[loss]` table as recorded: its extras only where a recipe sets them."""
        record = self.loss.as_dict()
        if self.detached_head:
            record["detached"] = True
        if self.loss_weight != 1.0:
            record["weight"] = self.loss_weight
        return record

    def resolved(self) -> dict[str, Any]:
        """Everything about the recipe that changes a result (hashed into ids); the shared
        stage-1 options only where a recipe sets them, so other recipes keep their ids."""
        resolved: dict[str, Any] = {
            "loss": self.loss_record(),
            "weighting": self.weighting.as_dict() if self.weighting else None,
            "weighting_start": self.weighting_start,
            "sampler": self.sampler.as_dict(),
        }
        if self.metric:
            resolved["metric"] = self.metric.as_dict()
        if self.augment != Augmentation():
            resolved["augment"] = self.augment.as_dict()
        if self.training:
            resolved["training"] = dict(self.training)
        return resolved

    def summary(self) -> str:
        """One line: the pieces and their parameters."""
        parts = [self.loss.describe() + (" (a probe on detached features)" * self.detached_head)]
        if self.loss_weight != 1.0:
            parts[0] = f"{self.loss_weight} × {parts[0]}"
        if self.metric:
            parts[0] += f" + {self.metric.weight} × {self.metric.loss.describe()}"
        if self.weighting:
            when = f" from {self.weighting_start:.0%} of epochs" if self.weighting_start else ""
            parts.append(f"weights {self.weighting.describe()}{when}")
        if self.sampler.name != "instance":
            rebalances = " (re-balances)" if SAMPLERS.meta(self.sampler.name).rebalancing else ""
            parts.append(f"sampler {self.sampler.describe()}{rebalances}")
        if augmented := self.augment.describe():
            parts.append(augmented)
        if self.training:
            parts.append(", ".join(f"{k}={v}" for k, v in self.training.items()))
        return "; ".join(parts)


@dataclass(frozen=True)
class Stage2Recipe:
    """A stage-2 recipe: a classifier re-balancing method, its parameters and input mode."""

    name: str
    description: str
    reference: str
    method: Component
    mode: str = "features"
    views: int = 0
    path: Path | None = None

    def resolved(self) -> dict[str, Any]:
        """Everything about the recipe that changes a result (hashed into run ids)."""
        return {**self.method.as_dict(), "mode": self.mode, "views": self.views}

    def summary(self) -> str:
        """One line: the method, its parameters and its mode."""
        views = f", {self.views} augmented views" if self.views else ""
        trained = (
            f" [{self.mode}{views}]" if STAGE2_METHODS.meta(self.method.name).trainable else ""
        )
        return f"{self.method.describe()}{trained}"


@dataclass(frozen=True)
class Tuning:
    """Where a tuned method's values were chosen: the training settings of its sweep (which a
    run uses unless the command line overrides them), its dataset, the data seeds whose
    validation splits scored its trials and those splits' digests (each empty when a sweep
    did not record them)."""

    settings: dict[str, Any]
    data_seeds: tuple[int, ...] = ()
    split_digests: dict[int, str] = field(default_factory=dict)
    dataset: str | None = None


@dataclass(frozen=True)
class Method:
    """A stage-1 recipe, optionally followed by a stage-2 recipe (`stage1+stage2`); a tuned
    method carries its own `label` (`tuned/<file>`) and how it was tuned (`tuning`)."""

    stage1: Recipe
    stage2: Stage2Recipe | None = None
    label: str | None = None
    tuning: Tuning | None = None

    @property
    def name(self) -> str:
        """`stage1`, `stage1+stage2`, or the tuned method's label."""
        if self.label:
            return self.label
        return self.stage1.name + (f"+{self.stage2.name}" if self.stage2 else "")

    @property
    def slug(self) -> str:
        """The name as it appears in file and folder names: `tuned/x` becomes `tuned_x`,
        `supcon[metric.weight=0.3]+crt` becomes `supcon@metric.weight=0.3+crt`."""
        name = self.name.replace("[", "@").replace("]", "")
        return re.sub(r"[^A-Za-z0-9_.+=@-]", "_", name)

    @property
    def family(self) -> str:
        """The comparison group of tables: one-stage, two-stage, or two-stage + metric learning."""
        if self.stage2 is None:
            return FAMILIES[0]
        return FAMILIES[2] if self.stage1.metric else FAMILIES[1]

    @property
    def approach(self) -> str:
        """The family of the verdict (`bench compare`): the stage 1's approach, or `decoupled
        stage 2` for a stage-2 method on a plain stage 1. Not recorded in runs (their ids keep
        their form); read from the recipes when compared."""
        if self.stage2 is not None and self.stage1.approach == "plain":
            return DECOUPLED
        return self.stage1.approach

    def resolved(self) -> dict[str, Any]:
        """The recorded method block of a run's config."""
        resolved = {"name": self.name, "family": self.family, **self.stage1.resolved()}
        if self.stage2:
            resolved["stage2"] = self.stage2.resolved()
        return resolved


def _component(
    raw: Any,
    table: str,
    registry: Registry[Any],
    path: Path,
    extra: tuple[str, ...] = (),
) -> tuple[Component, dict[str, Any]]:
    """Validate one `[table]` against the parameters its registry entry declares (type of the
    default, range or choices); the component gets every parameter, defaults filled in.

    Fields named in `extra` are not builder parameters; they are returned apart.
    """
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise BenchError(
            f"{path}: [{table}] needs a string field 'name' (one of {', '.join(registry)})."
        )
    name = raw["name"]
    if name not in registry:
        raise BenchError(f"{path}: [{table}] {unknown_name(table, name, registry)}")
    entry = registry.entry(name)
    params, extras = {}, {}
    for key, value in raw.items():
        if key == "name":
            continue
        if key in extra:
            extras[key] = value
        elif key not in entry.params:
            allowed = ", ".join([*entry.params, *extra]) or "none"
            raise BenchError(
                f"{path}: [{table}] field {key!r} is not a parameter of {name!r} "
                f"(accepted: {allowed})."
            )
        else:
            where = f"{path}: [{table}] field {key!r}"
            params[key] = entry.params[key].check(value, where)
    return Component(name, {**entry.defaults(), **params}), extras


def _common(raw: dict[str, Any], path: Path, keys: set[str]) -> tuple[str, str]:
    reject_unknown(raw, sorted(keys), str(path))
    if not isinstance(raw.get("description"), str):
        raise BenchError(f"{path}: field 'description' (a one-line string) is required.")
    return raw["description"], str(raw.get("reference", ""))


# The `[metric]` table's own fields beside its loss's parameters (the lr multiplier's default
# is the loss's, `MetricLossInfo.lr_multiplier`).
METRIC_TERM = {
    "weight": Param(1.0, NON_NEGATIVE),
    "embedding_dim": Param(128, Range(low=1)),
    "lr_multiplier": Param(1.0, POSITIVE),
    "weight_decay": Param(True),
}
# The registries whose builders' parameters a recipe table sets, by table.
TABLE_REGISTRIES: dict[str, Registry[Any]] = {
    "loss": LOSSES,
    "weighting": WEIGHTINGS,
    "sampler": SAMPLERS,
    "metric": METRIC_LOSSES,
    "stage2": STAGE2_METHODS,
}


def field_range(raw: dict[str, Any], table: str, field: str) -> Range | None:
    """The valid range of `table.field` in a parsed recipe file, where one is declared."""
    if table == "metric" and field in METRIC_TERM:
        return METRIC_TERM[field].range
    if table == "augment" and field in AUGMENT_FIELDS:
        return AUGMENT_FIELDS[field].range
    if table == "loss" and field in LOSS_TERM:
        return LOSS_TERM[field].range
    registry, component = TABLE_REGISTRIES.get(table), raw.get(table, {}).get("name")
    if registry is None or component not in registry:
        return None
    param = registry.entry(component).params.get(field)
    return param.range if param else None


def _metric_term(raw: Any, path: Path) -> MetricTerm:
    """The `[metric]` table: a registered loss with its parameters, plus the term's own
    fields (`METRIC_TERM`): its weight, embedding size and the optimiser settings of the loss's
    own parameters (proxies, learned centres): an lr multiplier (default per loss,
    `MetricLossInfo`) and whether they get weight decay."""
    loss, extras = _component(raw, "metric", METRIC_LOSSES, path, tuple(METRIC_TERM))
    given = {
        key: METRIC_TERM[key].check(value, f"{path}: [metric] field {key!r}")
        for key, value in extras.items()
    }
    defaults = {key: param.default for key, param in METRIC_TERM.items()}
    defaults["lr_multiplier"] = METRIC_LOSSES.meta(loss.name).lr_multiplier
    term = defaults | given
    return MetricTerm(
        loss, term["weight"], term["embedding_dim"], term["lr_multiplier"], term["weight_decay"]
    )


def _augmentation(raw: dict[str, Any], path: Path, metric: MetricTerm | None) -> Augmentation:
    """The `[augment]` table (`AUGMENT_FIELDS`). Mixup blends two images and their labels, so a
    metric-learning term, which takes one label per image, is refused beside it; a metric loss
    that compares views of one image needs its `min_views`."""
    given = check_fields(table_at(raw, "augment", str(path)), AUGMENT_FIELDS, f"{path}: [augment]")
    augment = Augmentation(**given)
    if augment.mixup_alpha and metric is not None:
        raise BenchError(
            f"{path}: [augment] mixup_alpha mixes two labels per image, which the [metric] "
            "term cannot take (it needs one label per image): drop one of them."
        )
    needed = METRIC_LOSSES.meta(metric.loss.name).min_views if metric else 1
    if augment.views < needed:
        raise BenchError(
            f"{path}: [metric] {metric.loss.name if metric else ''} compares views of each "
            f"image: set [augment] views = {needed} (or more)."
        )
    return augment


# The `[loss]` table's own fields beside its loss's parameters.
LOSS_TERM = {"detached": Param(False), "weight": Param(1.0, NON_NEGATIVE)}


def _loss_term(extras: dict[str, Any], path: Path, metric: MetricTerm | None) -> tuple[bool, float]:
    """`[loss] detached` and `weight`. Detached, the head is a linear probe trained on detached
    features, so the backbone learns from the metric term alone (a self-supervised stage 1 has
    no other). At weight 0 the classification loss is off, which only a metric loss that
    trains the head itself (one that takes its logits: PaCo) can stand in for."""
    term = {key: param.default for key, param in LOSS_TERM.items()}
    term |= {k: LOSS_TERM[k].check(v, f"{path}: [loss] field {k!r}") for k, v in extras.items()}
    if metric is None:
        if term["detached"] or not term["weight"]:
            raise BenchError(
                f"{path}: [loss] detached = true or weight = 0 leaves the backbone to the "
                "[metric] term alone; add a [metric] table or drop them."
            )
    elif not term["weight"] and (
        term["detached"] or "logits" not in METRIC_LOSSES.meta(metric.loss.name).inputs
    ):
        raise BenchError(
            f"{path}: [loss] weight = 0: nothing would train the head; keep the loss (detached "
            "= true makes it a linear probe) or use a metric loss that trains the head (paco)."
        )
    return bool(term["detached"]), float(term["weight"])


def _recipe_training(raw: dict[str, Any], path: Path) -> dict[str, Any]:
    """The `[training]` table: settings a method's paper fixes (`RECIPE_SETTINGS`), each
    checked by the setting's own field. A sweep fixes the training settings of all its trials,
    so `[search]` cannot tune them."""
    table = table_at(raw, "training", str(path))
    where = f"{path}: [training]"
    comparison = sorted(set(table) & set(SETTING_FIELDS) - set(RECIPE_SETTINGS))
    if comparison:
        raise BenchError(
            f"{where}: {', '.join(comparison)} is the comparison's, the same for every method: "
            f"set it in the dataset spec or on the command line. A recipe may fix "
            f"{', '.join(RECIPE_SETTINGS)}."
        )
    checked = check_fields(table, {k: SETTING_FIELDS[k] for k in RECIPE_SETTINGS}, where)
    tuned = [key for key in table_at(raw, "search", str(path)) if key.startswith("training.")]
    if tuned:
        raise BenchError(
            f"{path}: [search] {tuned[0]!r}: a sweep trains every trial at one set of training "
            "settings; sweep the setting from the command line instead (one sweep per value)."
        )
    return checked


def parse_recipe(path: Path, raw: dict[str, Any] | None = None) -> Recipe:
    """Validate one stage-1 recipe file (read unless its parsed `raw` content is given);
    errors name the file and the field."""
    raw = read_toml(path) if raw is None else raw
    description, reference = _common(raw, path, STAGE1_KEYS)
    loss, loss_extras = _component(raw.get("loss"), "loss", LOSSES, path, tuple(LOSS_TERM))
    sampler, _ = _component(raw.get("sampler", {"name": "instance"}), "sampler", SAMPLERS, path)
    weighting, start = None, 0.0
    if "weighting" in raw:
        weighting, extras = _component(
            raw["weighting"], "weighting", WEIGHTINGS, path, extra=("start",)
        )
        start = extras.get("start", 0.0)
        if not isinstance(start, int | float) or not 0 <= start < 1:
            raise BenchError(
                f"{path}: [weighting] field 'start' must be a fraction of the "
                f"epochs in [0, 1), got {start!r}."
            )
    metric = _metric_term(raw["metric"], path) if "metric" in raw else None
    return Recipe(
        path.stem,
        description,
        reference,
        loss,
        sampler,
        weighting,
        float(start),
        metric,
        path,
        _augmentation(raw, path, metric),
        _recipe_training(raw, path),
        *_loss_term(loss_extras, path, metric),
        Field(str, choices=APPROACHES).check(raw["approach"], f"{path}: 'approach'")
        if "approach" in raw
        else None,
    )


def parse_stage2_recipe(path: Path, raw: dict[str, Any] | None = None) -> Stage2Recipe:
    """Validate one stage-2 recipe file (read unless its parsed `raw` content is given)."""
    raw = read_toml(path) if raw is None else raw
    description, reference = _common(raw, path, STAGE2_KEYS)
    method, extras = _component(
        raw.get("stage2"), "stage2", STAGE2_METHODS, path, ("mode", "views")
    )
    mode, views = extras.get("mode", "features"), extras.get("views", 0)
    if mode not in STAGE2_MODES:
        raise BenchError(
            f"{path}: [stage2] field 'mode' must be one of {', '.join(STAGE2_MODES)}, got {mode!r}."
        )
    trainable = [name for name in STAGE2_METHODS if STAGE2_METHODS.meta(name).trainable]
    if (mode != "features" or views) and method.name not in trainable:
        raise BenchError(
            f"{path}: [stage2] 'mode' and 'views' apply to methods that train a "
            f"head ({', '.join(trainable)}), not {method.name!r}."
        )
    if not isinstance(views, int) or views < 0 or (views and mode != "features"):
        raise BenchError(
            f"{path}: [stage2] field 'views' must be a non-negative integer, "
            f"used with mode 'features'; got {views!r}."
        )
    return Stage2Recipe(path.stem, description, reference, method, mode, views, path)


RecipeT = TypeVar("RecipeT", Recipe, Stage2Recipe)


class MethodRegistry:
    """The recipes in a methods folder by name, their compositions, and the named lists."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder or methods_dir()
        self.stage1: dict[str, Recipe] = {}
        self.stage2: dict[str, Stage2Recipe] = {}
        for path in sorted(self.folder.glob("*.toml")):
            if path.name.startswith("_"):
                continue
            raw = read_toml(path)
            if "stage2" in raw:
                self.stage2[path.stem] = parse_stage2_recipe(path, raw)
            else:
                self.stage1[path.stem] = parse_recipe(path, raw)
        clash = sorted(set(self.stage1) & set(self.stage2))
        if clash:
            raise BenchError(f"{self.folder}: {', '.join(clash)} named twice.")
        lists_path = self.folder / LISTS_FILE
        self.lists: dict[str, list[str]] = read_toml(lists_path) if lists_path.exists() else {}
        for list_name, members in self.lists.items():
            for member in members:
                try:
                    self.get(member)
                except BenchError as error:
                    raise BenchError(f"{lists_path}: list {list_name!r} names {error}") from None

    def get(self, name: str) -> Method:
        """The method called `name`: a stage-1 recipe, `stage1+stage2`, or `tuned/<file>`;
        either recipe may carry a bracket of field values (`bench.recipes.variants`)."""
        if name.startswith(TUNED):
            return self.tuned(name)
        parts = split_outside_brackets(name, "+")
        if len(parts) > 2 or not all(part.strip() for part in parts):
            raise BenchError(
                f"{name!r}: a method is STAGE1 or STAGE1+STAGE2 (one '+', a name each side)."
            )
        (first, values), plus = parse_part(parts[0]), len(parts) == 2
        hint = "`bench list methods` shows them all."
        if first not in self.stage1:
            kind = "stage-1 recipe" if plus else "method"
            raise unknown_name(kind, first, self.stage1, hint=hint)
        stage1 = self._varied(self.stage1[first], values, parse_recipe, STAGE1_TABLES)
        if not plus:
            return Method(stage1)
        second, values = parse_part(parts[1])
        if second not in self.stage2:
            raise unknown_name("stage-2 recipe", second, self.stage2, hint=hint)
        stage2 = self._varied(self.stage2[second], values, parse_stage2_recipe, STAGE2_TABLES)
        return Method(stage1, stage2)

    def variant(self, name: str, values: dict[str, Any]) -> Method:
        """The method `name` with `values` set, each `TABLE.FIELD` in the recipe that holds its
        table (`stage2.*` in the stage-2 recipe, any other in the stage-1 recipe)."""
        parts = [parse_part(part) for part in split_outside_brackets(name, "+")]
        for path, value in values.items():
            stage = 1 if path.partition(".")[0] == STAGE2_TABLE and len(parts) == 2 else 0
            parts[stage][1][path] = value
        return self.get("+".join(variant_name(base, given) for base, given in parts))

    @staticmethod
    def _varied(
        recipe: RecipeT,
        values: dict[str, Any],
        parse: Callable[..., RecipeT],
        tables: tuple[str, ...],
    ) -> RecipeT:
        """`recipe` with `values` set and validated, named canonically: a path whose value
        leaves the recipe as it is (the file's value, or the default it omits) is left out."""
        if not values:
            return recipe
        assert recipe.path is not None  # a registered recipe is read from its file
        path, raw = recipe.path, read_toml(recipe.path)

        def build(given: dict[str, Any]) -> RecipeT:
            try:
                return parse(path, set_fields(raw, given, str(path), tables))
            except BenchError as error:
                raise BenchError(f"variant {variant_name(recipe.name, values)}: {error}") from None

        own = recipe.resolved()
        changed = {k: v for k, v in values.items() if build({k: v}).resolved() != own}
        if not changed:
            return recipe
        return replace(build(changed), name=variant_name(recipe.name, changed))

    def tuned(self, name: str) -> Method:
        """A method exported by a sweep: `methods/tuned/<file>.toml`, holding the tuned
        stage-1 recipe under `[stage1_recipe]`, if any the stage-2 one under
        `[stage2_recipe]`, and the training settings of the sweep under `[settings]`."""
        confined_name(name.removeprefix(TUNED), "tuned method")
        path = self.folder / f"{name}.toml"
        if not path.is_file():
            known = [f"{TUNED}{p.stem}" for p in sorted((self.folder / "tuned").glob("*.toml"))]
            raise unknown_name(
                "tuned method", name, known, hint="`bench sweep --export` writes them."
            )
        raw = read_toml(path, "tuned recipe")
        reject_unknown(raw, TUNED_KEYS, str(path))
        about = check_fields(raw.get("tuned", {}), TUNED_FIELDS, f"{path}: [tuned]")
        first, _, second = about.get("method", name).partition("+")
        stage1 = replace(
            parse_recipe(path, table_at(raw, "stage1_recipe", str(path))), name=f"{first} (tuned)"
        )
        stage2 = None
        if "stage2_recipe" in raw:
            stage2_raw = table_at(raw, "stage2_recipe", str(path))
            stage2 = replace(parse_stage2_recipe(path, stage2_raw), name=second)
        settings = check_settings(table_at(raw, "settings", str(path)), f"{path}: [settings]")
        if "weights" in settings:
            raise BenchError(
                f"{path}: [settings] weights: a weights file is given on the command line "
                "(--weights PATH), never by a recipe."
            )
        if "dataset" in about:
            confined_name(about["dataset"], f"{path}: [tuned] dataset")
        digests = about.get("split_digests", {})
        if not all(k.isdigit() and isinstance(v, str) for k, v in digests.items()):
            raise BenchError(
                f'{path}: [tuned] split_digests must map data seeds to digests ("0" = "…").'
            )
        tuning = Tuning(
            settings,
            tuple(about.get("data_seeds", ())),
            {int(k): v for k, v in digests.items()},
            about.get("dataset"),
        )
        return Method(stage1, stage2, label=name, tuning=tuning)

    def expand(self, spec: str) -> list[Method]:
        """Methods for a comma-separated mix of method names and list names, in order, once."""
        names: list[str] = []
        for item in (s.strip() for s in split_outside_brackets(spec, ",")):
            if item:
                names += self.lists.get(item, [item])
        if not names:
            raise BenchError("no methods given; try --methods all or `bench list methods`.")
        methods: dict[str, Method] = {}
        for name in names:  # once each, by canonical name (a variant may be spelt two ways)
            method = self.get(name)
            methods.setdefault(method.name, method)
        return list(methods.values())
