"""Method variants by name: `supcon[metric.weight=0.3]+crt` is the recipe with that field set,
checked like a file, named canonically, with runs of its own while a stage-2-only variant
shares its base's stage-1 artefact."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench.cli.main import main
from bench.core.errors import BenchError
from bench.data.specs import get_spec
from bench.recipes.methods import MethodRegistry
from bench.recipes.variants import parse_part, split_outside_brackets, variant_name
from bench.run.plan import plan
from bench.run.runner import RunOptions


def test_a_bracket_sets_fields_of_the_recipe_it_follows() -> None:
    registry = MethodRegistry()
    method = registry.get("supcon[metric.weight=0.3]+crt")
    assert method.name == "supcon[metric.weight=0.3]+crt"
    assert method.stage1.metric is not None and method.stage1.metric.weight == 0.3
    base = registry.get("supcon").stage1.metric
    assert base is not None and method.stage1.metric.loss == base.loss
    assert method.stage2 == registry.get("ce+crt").stage2
    tuned = registry.get("ce+crt[stage2.lr=0.16]")
    assert tuned.stage2 is not None and tuned.stage2.method.params["lr"] == 0.16
    assert tuned.stage2.method.params["min_steps"] == 2000  # the rest as the recipe gives it
    assert tuned.stage1 == registry.get("ce").stage1
    # A table the recipe lacks but a recipe of its kind may hold is added.
    assert registry.get('ce[augment.strength="geometric"]').stage1.augment.strength == "geometric"


def test_names_are_canonical_and_a_value_the_recipe_holds_is_no_variant() -> None:
    registry = MethodRegistry()
    assert registry.get("supcon[metric.weight=1.0]+crt").name == "supcon+crt"
    assert registry.get("supcon[metric.weight=1]+crt").name == "supcon+crt"  # 1 read as 1.0
    # Two spellings of one content are one variant: 3 and 3.0; a default the file omits.
    assert registry.get("supcon[metric.weight=3.0]+crt").name == "supcon[metric.weight=3]+crt"
    assert registry.get("supcon[metric.weight=3]+crt").name == "supcon[metric.weight=3]+crt"
    for same in ("ce[augment.views=1]", 'ce[sampler.name="instance"]', "ce[augment.mixup_alpha=0]"):
        assert registry.get(same).name == "ce"
    spelt_twice = ",".join(
        [
            "supcon+crt",
            "supcon[metric.weight=1]+crt",
            "supcon[metric.weight=0.3,metric.temperature=0.2]+crt",
            "supcon[metric.temperature=0.2,metric.weight=0.3]+crt",
        ]
    )
    assert [m.name for m in registry.expand(spelt_twice)] == [
        "supcon+crt",
        "supcon[metric.temperature=0.2,metric.weight=0.3]+crt",
    ]
    both = "supcon[metric.weight=0.3,metric.temperature=0.2]+crt"
    assert registry.get(both).name == "supcon[metric.temperature=0.2,metric.weight=0.3]+crt"
    assert registry.variant("supcon+crt", {"metric.weight": 0.1, "stage2.lr": 0.5}).name == (
        "supcon[metric.weight=0.1]+crt[stage2.lr=0.5]"
    )
    assert registry.variant("ce+crt", {"stage2.lr": 0.05}).name == "ce+crt"
    assert variant_name("ce", {"augment.strength": "strong", "augment.views": 2}) == (
        'ce[augment.strength="strong",augment.views=2]'
    )
    assert parse_part(" kcl[metric.weight = 0.5] ") == ("kcl", {"metric.weight": 0.5})
    assert split_outside_brackets("ce,supcon[metric.weight=0.3,metric.temperature=0.2]", ",") == [
        "ce",
        "supcon[metric.weight=0.3,metric.temperature=0.2]",
    ]
    names = [m.name for m in registry.expand("ce, ce+crt[stage2.lr=0.16],ce")]
    assert names == ["ce", "ce+crt[stage2.lr=0.16]"]
    assert registry.get("supcon[metric.weight=0.3]+crt").slug == "supcon@metric.weight=0.3+crt"


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("supcon[metric.weight=-1]+crt", "variant supcon[metric.weight=-1]: "),
        ("supcon[weight=1]+crt", "each setting in brackets is TABLE.FIELD=VALUE"),
        ("supcon[nope.x=1]", "'nope.x' names no table a recipe of this kind holds"),
        ("supcon[metric.weight=abc]", "'abc' is not a TOML value"),
        ("supcon[metric.weight=0.3", "write a variant as RECIPE[TABLE.FIELD=VALUE,...]"),
        ("supcon[metric.weight=0.3,metric.weight=0.1]", "sets metric.weight twice"),
        ("ce+crt[stage2.bogus=1]", "'bogus' is not a parameter of 'crt'"),
        ("ce+crt[metric.weight=1]", "names no table a recipe of this kind holds (stage2)"),
        ("supcon+crt+lws", "one '+', a name each side"),
        ("ce+", "one '+', a name each side"),
        ("supcn[metric.weight=0.3]", "supcon"),  # an unknown recipe, with a suggestion
    ],
)
def test_a_wrong_variant_is_one_error_that_says_what_to_write(name: str, says: str) -> None:
    with pytest.raises(BenchError) as raised:
        MethodRegistry().get(name)
    assert says in str(raised.value)


def test_a_variant_runs_apart_and_a_stage2_variant_keeps_its_base_stage1(
    tiny_project: Path, tmp_path: Path
) -> None:
    names = "ce+crt,ce+crt[stage2.lr=0.16],supcon+crt,supcon[metric.weight=0.3]+crt"
    methods = MethodRegistry().expand(names)
    options = RunOptions("tiny", seeds=(0,), results_dir=tmp_path, progress=False)
    planned = plan(options, get_spec("tiny"), methods, torch.device("cpu"))
    runs = {run.method.name: run for run in planned}
    base, lr = runs["ce+crt"], runs["ce+crt[stage2.lr=0.16]"]
    assert base.run_id != lr.run_id and lr.run_id.startswith("ce+crt@stage2.lr=0.16-d0-s0-")
    assert base.stage1_key == lr.stage1_key  # one stage-1 training serves both
    weighted = runs["supcon[metric.weight=0.3]+crt"]
    assert weighted.stage1_key != runs["supcon+crt"].stage1_key
    assert weighted.experiment.config(weighted.method, 0)["method"]["metric"]["weight"] == 0.3


def test_a_sweep_refuses_a_variant_and_names_its_recipe(
    tiny_project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["sweep", "--method", "supcon[metric.weight=0.3]+crt", "--dataset", "tiny"]
    assert main([*argv, "--results-dir", str(tmp_path), "--n-trials", "1"]) == 2
    said = capsys.readouterr().err
    assert "a sweep tunes a recipe, not a variant of one; sweep supcon+crt" in said
