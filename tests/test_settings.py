"""Training settings: one set of defaults, layered spec < tuned < command line, validated."""

from __future__ import annotations

import math

import pytest

from bench.components.settings import TrainingSettings, check_settings, resolve_settings
from bench.core.errors import BenchError


def test_layers_apply_in_order_and_none_means_not_given() -> None:
    resolved = resolve_settings(
        {"epochs": 20, "image_size": 28, "lr": 0.1},
        tuned={"epochs": 30, "lr": 0.05},
        overrides={"lr": 0.2, "batch_size": None},
        tuned_name="tuned/x",
    )
    assert resolved.settings == TrainingSettings(epochs=30, image_size=28, lr=0.2)
    assert resolved.notes == ("tuned/x: tuned with lr = 0.05; the command line's 0.2 is used",)


def test_a_command_line_value_equal_to_the_tuned_one_needs_no_note() -> None:
    resolved = resolve_settings({}, tuned={"epochs": 30}, overrides={"epochs": 30})
    assert resolved.settings.epochs == 30 and resolved.notes == ()


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"epoch": 3}, "unknown key.s. epoch .'epoch': did you mean 'epochs'.."),
        ({"epochs": 2.5}, "'epochs' must be an integer, got 2.5"),
        ({"epochs": True}, "'epochs' must be an integer, got True"),
        ({"lr": 0}, "'lr' = 0.0 is out of range; use a finite number above 0"),
        ({"lr": math.nan}, "'lr' = nan is out of range"),
        ({"image_size": 4}, "'image_size' = 4 is out of range"),
        ({"momentum": 1.0}, "'momentum' = 1.0 is out of range"),
        ({"pretrained": "yes"}, "'pretrained' must be true or false"),
    ],
)
def test_bad_settings_name_the_place_and_the_field(table: dict, message: str) -> None:
    with pytest.raises(BenchError, match=message) as error:
        check_settings(table, "datasets/x.toml: [training]")
    assert str(error.value).startswith("datasets/x.toml: [training]")


def test_integers_are_accepted_for_float_settings() -> None:
    assert check_settings({"lr": 1, "weight_decay": 0}, "x") == {"lr": 1.0, "weight_decay": 0.0}
