"""The shared stage-1 options a recipe may ask for: `[augment]` (views, strong augmentation,
mixup) and `[training]` (settings a method's paper fixes), parsed, recorded only when set, and
layered between the dataset spec and the command line."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bench.components.settings import TrainingSettings
from bench.core.errors import BenchError
from bench.data.specs import get_spec
from bench.experiment.experiment import settings_for
from bench.recipes.methods import (
    AUGMENT_STRENGTHS,
    Augmentation,
    Method,
    MethodRegistry,
    parse_recipe,
)

CE = 'description = "x"\n[loss]\nname = "ce"\n'


def _recipe(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "m.toml"
    path.write_text(CE + text)
    return path


def test_augment_table_is_parsed_and_recorded_only_when_it_changes_something(
    tmp_path: Path,
) -> None:
    plain = parse_recipe(_recipe(tmp_path, ""))
    assert plain.augment == Augmentation() and "augment" not in plain.resolved()
    defaults = '[augment]\nviews = 1\nstrength = "standard"\nmixup_alpha = 0\n'
    assert parse_recipe(_recipe(tmp_path, defaults)).resolved() == plain.resolved()
    text = '[augment]\nviews = 2\nstrength = "strong"\nmixup_alpha = 0.2\n'
    recipe = parse_recipe(_recipe(tmp_path, text))
    assert recipe.augment == Augmentation(2, "strong", 0.2)
    assert recipe.resolved()["augment"] == {"views": 2, "strength": "strong", "mixup_alpha": 0.2}
    assert "2 views, strong augmentation, mixup α=0.2" in recipe.summary()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[augment]\nviews = 0\n", r"\[augment\]: 'views' = 0 is out of range; use 1 to 8"),
        ('[augment]\nstrength = "strng"\n', r"Did you mean 'strong'"),
        ("[augment]\nmixup_alpha = -1\n", r"'mixup_alpha' = -1\.0 is out of range"),
        ("[augment]\nview = 2\n", r"unknown key\(s\) view \('view': did you mean 'views'\?\)"),
        (
            '[augment]\nmixup_alpha = 0.2\n[metric]\nname = "supcon"\n',
            r"mixup_alpha mixes two labels per image, which the \[metric\] term cannot take",
        ),
    ],
)
def test_a_malformed_augment_table_names_file_and_field(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(BenchError, match=message) as error:
        parse_recipe(_recipe(tmp_path, text))
    assert "m.toml" in str(error.value)


def test_the_strengths_a_recipe_names_are_the_augmentations_stage1_has() -> None:
    from bench.stage1.augment import AUGMENTATIONS

    assert tuple(AUGMENTATIONS) == AUGMENT_STRENGTHS


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[training]\nbackbone = "resnet18"\n', r"backbone is the comparison's"),
        ("[training]\nweight_decay = 2.0\n", r"'weight_decay' = 2\.0 is out of range"),
        ("[training]\nepochs = 1.5\n", r"'epochs' must be an integer"),
        ("[training]\nwieght_decay = 0.1\n", r"did you mean 'weight_decay'"),
        (
            '[training]\nweight_decay = 0.005\n[search]\n"training.weight_decay" = '
            "{ low = 0.001, high = 0.01 }\n",
            r"\[search\] 'training\.weight_decay': a sweep trains every trial at one set",
        ),
    ],
)
def test_a_malformed_training_table_names_file_and_field(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(BenchError, match=message) as error:
        parse_recipe(_recipe(tmp_path, text))
    assert "m.toml" in str(error.value)


def test_recipe_training_settings_lie_between_the_spec_and_the_command_line(
    tmp_path: Path,
) -> None:
    spec = get_spec("synthetic")
    plain = Method(parse_recipe(_recipe(tmp_path, "")))
    base = settings_for(spec, plain).settings
    assert base.weight_decay == 5e-4 and base.epochs == 18  # the spec's [training]
    strong = Method(parse_recipe(_recipe(tmp_path, "[training]\nweight_decay = 5e-3\n")))
    resolved = settings_for(spec, strong)
    assert resolved.settings == TrainingSettings(**{**base.as_dict(), "weight_decay": 5e-3})
    assert resolved.notes == ()
    assert strong.resolved()["training"] == {"weight_decay": 5e-3}
    assert "training" not in plain.resolved()
    # A profile is the spec's: the recipe still holds over it.
    profiled = dataclasses.replace(spec, profiles={"big": {"weight_decay": 1e-4, "epochs": 30}})
    assert settings_for(profiled, plain, profile="big").settings.weight_decay == 1e-4
    on_profile = settings_for(profiled, strong, profile="big").settings
    assert on_profile.weight_decay == 5e-3 and on_profile.epochs == 30
    # The command line has the last word, and says what it replaced.
    overridden = settings_for(spec, strong, {"weight_decay": 1e-4, "epochs": None})
    assert overridden.settings.weight_decay == 1e-4
    assert overridden.notes == (
        "m: its recipe sets weight_decay = 0.005; the command line's 0.0001 is used",
    )


def test_shipped_recipes_without_the_options_record_what_they_recorded_before() -> None:
    registry = MethodRegistry()
    for name, recipe in registry.stage1.items():
        if recipe.augment == Augmentation() and not recipe.training:
            assert {"augment", "training"}.isdisjoint(recipe.resolved()), name


def test_a_sweep_tunes_an_augment_field_within_its_range(tmp_path: Path) -> None:
    from bench.sweep.space import apply, search_space

    mixup = MethodRegistry().get("mixup+crt")
    space = {dimension.path: dimension for dimension in search_space(mixup)}
    assert space["augment.mixup_alpha"].distribution.low == 0.1
    tuned = apply(mixup, {"augment.mixup_alpha": 0.5})
    assert tuned.stage1.augment.mixup_alpha == 0.5 and tuned.stage2 == mixup.stage2
    path = _recipe(
        tmp_path, '[search]\n"augment.views" = { low = 1, high = 9 }\n[augment]\nviews = 2\n'
    )
    with pytest.raises(BenchError, match=r"reaches \[1, 9\], outside the field's valid values"):
        search_space(Method(parse_recipe(path)))
