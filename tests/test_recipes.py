"""The method registry: every shipped recipe loads; malformed ones name file and field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.core.errors import BenchError
from bench.recipes.methods import MethodRegistry, parse_recipe, parse_stage2_recipe

ISSUE_METHODS = {
    "ce",
    "focal",
    "rw-inverse",
    "rw-sqrt",
    "rw-cb",
    "rs-cb",
    "drw",
    "ldam-drw",
    "balanced-softmax",
    "logit-adjusted",
}

# The metric-learning stage 1s of the foundation, and issue 23's representation learners.
FOUNDATION_METRIC = {"supcon", "triplet", "proxy-anchor", "centre-triplet", "centre"}
REPRESENTATION_LEARNERS = {"simclr", "kcl", "bcl", "paco"}


def test_shipped_registry_has_every_method_the_issues_ask_for_in_all() -> None:
    registry = MethodRegistry()
    assert set(registry.stage1) >= ISSUE_METHODS
    assert {"crt", "lws", "tau", "ncm", "posthoc-la"} <= set(registry.stage2)
    metric_stage1 = {
        n for n, r in registry.stage1.items() if r.metric and r.sampler.name == "instance"
    }
    assert metric_stage1 >= FOUNDATION_METRIC | REPRESENTATION_LEARNERS
    expected = (
        ISSUE_METHODS
        | {"focal-g2"}
        | {f"ce+{s}" for s in ("crt", "lws", "tau", "ncm", "posthoc-la")}
        | {f"{m}+{s}" for m in FOUNDATION_METRIC for s in ("crt", "lws")}
    )
    assert set(registry.lists["all"]) >= expected
    drw = registry.get("ldam-drw").stage1
    assert drw.loss.params == {"max_margin": 0.5, "scale": 30.0}
    assert drw.weighting is not None and drw.weighting.params == {"beta": 0.9999}
    assert drw.weighting_start == 0.8


def test_composition_and_family() -> None:
    registry = MethodRegistry()
    assert registry.get("ce").family == "one-stage"
    assert registry.get("focal+crt").family == "two-stage"
    method = registry.get("centre+lws")
    assert method.family == "two-stage + metric learning" and method.name == "centre+lws"
    assert method.resolved()["stage2"]["name"] == "lws"


def test_expand_mixes_lists_and_names_without_duplicates() -> None:
    registry = MethodRegistry()
    names = [m.name for m in registry.expand("ce,all,focal")]
    assert names[0] == "ce" and len(names) == len(set(names)) == len(registry.lists["all"])


def test_unknown_method_suggests_close_matches() -> None:
    with pytest.raises(BenchError, match="Did you mean 'focal'"):
        MethodRegistry().get("focl")


def test_stage2_recipe_validation(tmp_path: Path) -> None:
    path = _write(
        tmp_path, 'description = "x"\n[stage2]\nname = "tau-norm"\nmode = "finetune-bn"\n'
    )
    with pytest.raises(BenchError, match=r"'mode' and 'views' apply to methods that train"):
        parse_stage2_recipe(path)
    path.write_text('description = "x"\n[stage2]\nname = "crt"\nmode = "bn"\n')
    with pytest.raises(BenchError, match=r"'mode' must be one of features, finetune-bn"):
        parse_stage2_recipe(path)
    path.write_text('description = "x"\n[stage2]\nname = "crt"\nepochs = 3\nmode = "finetune-bn"\n')
    recipe = parse_stage2_recipe(path)
    assert recipe.mode == "finetune-bn" and recipe.method.params["epochs"] == 3


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'description = "x"\n[loss]\nname = "focall"\n',
            r"\[loss\] unknown loss 'focall'.*'focal'",
        ),
        (
            'description = "x"\n[loss]\nname = "focal"\ngama = 2\n',
            r"\[loss\] field 'gama' is not a parameter of 'focal' "
            r"\(accepted: gamma, detached, weight\)",
        ),
        ('description = "x"\n[loss]\nname = "focal"\ngamma = "two"\n', r"'gamma' must be a number"),
        ('[loss]\nname = "ce"\n', r"'description'"),
        (
            'description = "x"\n[loss]\nname = "ce"\n[weighting]\nname = "inverse"\nstart = 1.5\n',
            r"\[weighting\] field 'start'",
        ),
        ('description = "x"\nloss = 3\n', r"\[loss\] needs a string field 'name'"),
        ('description = "x"\n[loss\n', r"invalid TOML"),
        (
            'description = "x"\nsampling = "x"\n[loss]\nname = "ce"\n',
            r"unknown key\(s\) sampling \('sampling': did you mean 'sampler'\?\)",
        ),
        (
            'description = "x"\n[loss]\nname = "ce"\ndetached = true\n',
            r"\[loss\] detached = true or weight = 0 leaves the backbone to the \[metric\]",
        ),
        (
            'description = "x"\n[loss]\nname = "ce"\ndetached = 1\n',
            r"\[loss\] field 'detached' must be true or false",
        ),
        (
            'description = "x"\n[loss]\nname = "ce"\nweight = 0\n[metric]\nname = "supcon"\n',
            r"\[loss\] weight = 0: nothing would train the head",
        ),
        (
            'description = "x"\n[loss]\nname = "ce"\nweight = -1\n',
            r"\[loss\] field 'weight' = -1\.0 is out of range",
        ),
        (
            'description = "x"\n[loss]\nname = "ce"\n[metric]\nname = "nt-xent"\n',
            r"\[metric\] nt-xent compares views of each image: set \[augment\] views = 2",
        ),
    ],
)
def test_malformed_recipe_names_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(BenchError, match=message) as error:
        parse_recipe(path)
    assert str(path) in str(error.value)


def test_list_naming_an_unknown_method_is_reported(tmp_path: Path) -> None:
    (tmp_path / "ce.toml").write_text('description = "x"\n[loss]\nname = "ce"\n')
    (tmp_path / "_lists.toml").write_text('all = ["ce", "cee2"]\n')
    with pytest.raises(BenchError, match=r"_lists\.toml: list 'all' names unknown method 'cee2'"):
        MethodRegistry(tmp_path)


def test_the_main_jobs_quick_list_is_small_and_covers_each_family() -> None:
    registry = MethodRegistry()
    quick = [registry.get(name) for name in registry.lists["quick"]]
    stage1_recipes = {m.stage1.name for m in quick}
    assert len(stage1_recipes) == 5  # the stage-1 trainings per seed the 10-minute budget holds
    one_stage = {m.name for m in quick if m.family == "one-stage"}
    assert {"ce", "rs-cb"} <= one_stage
    plain_two_stage = {f"ce+{s}" for s in ("crt", "lws", "tau", "ncm", "posthoc-la")}
    assert {m.name for m in quick if m.family == "two-stage"} == plain_two_stage
    metric = {m.stage1.name for m in quick if m.family == "two-stage + metric learning"}
    assert 2 <= len(metric) <= 3
    assert set(registry.lists["quick"]) <= set(registry.lists["all"])


@pytest.mark.parametrize(
    ("tuned", "message"),
    [
        ("data_seeds = [0.5]", "'data_seeds' must list int values, got 0.5"),
        ('split_digests = { seed0 = "abc" }', "split_digests must map data seeds to digests"),
        ("split_digests = { 0 = 7 }", "split_digests must map data seeds to digests"),
        ("dataset = 3", "'dataset' must be a string, got 3"),
    ],
)
def test_a_malformed_tuned_table_names_the_file_and_field(
    tmp_path: Path, tuned: str, message: str
) -> None:
    shipped = Path(__file__).resolve().parents[1] / "methods"
    folder = tmp_path / "methods"
    (folder / "tuned").mkdir(parents=True)
    for recipe in shipped.glob("*.toml"):
        (folder / recipe.name).write_text(recipe.read_text())
    text = (shipped / "tuned" / "supcon+crt-synthetic.toml").read_text()
    key = tuned.partition(" ")[0]
    text = re.sub(rf"^{key} = .*\n", "", text, flags=re.M)  # the field, replaced:
    text = text.replace("[tuned]\n", f"[tuned]\n{tuned}\n")
    (folder / "tuned" / "x.toml").write_text(text)
    with pytest.raises(BenchError, match=message) as error:
        MethodRegistry(folder).get("tuned/x")
    assert "x.toml" in str(error.value)


def test_representation_learners_compose_with_every_head_based_stage2() -> None:
    registry = MethodRegistry()
    for name in REPRESENTATION_LEARNERS:
        for stage2 in ("crt", "lws", "tau", "posthoc-la"):
            method = registry.get(f"{name}+{stage2}")
            assert method.stage1.name == name and method.stage2 is not None


def test_simclr_is_label_free_with_a_detached_probe_on_two_strong_views() -> None:
    simclr = MethodRegistry().get("simclr").stage1
    assert simclr.detached_head and simclr.resolved()["loss"] == {"name": "ce", "detached": True}
    assert simclr.metric is not None and simclr.metric.loss.params == {"temperature": 0.5}
    assert (simclr.augment.views, simclr.augment.strength) == (2, "strong")
    assert simclr.sampler.name == "instance" and simclr.weighting is None
    assert "detached" not in MethodRegistry().get("ce").stage1.resolved()["loss"]


def test_mixup_is_cross_entropy_with_mixup_and_composes_with_mislas() -> None:
    registry = MethodRegistry()
    mixup = registry.get("mixup").stage1
    assert mixup.loss.name == "ce" and mixup.metric is None and mixup.augment.mixup_alpha == 0.2
    assert mixup.resolved()["augment"] == {"views": 1, "strength": "standard", "mixup_alpha": 0.2}
    for stage2 in ("crt", "mislas"):
        assert registry.get(f"mixup+{stage2}").stage1 is mixup


def test_kcl_is_its_loss_alone_on_two_views_with_a_probe_for_a_balanced_classifier() -> None:
    kcl = MethodRegistry().get("kcl+crt")
    assert kcl.stage1.detached_head and kcl.stage1.augment.views == 2
    assert kcl.stage1.metric is not None
    assert kcl.stage1.metric.loss.params == {"k": 6, "temperature": 0.07}
    assert kcl.stage2 is not None and kcl.stage2.name == "crt"


def test_paco_trains_its_head_through_its_own_loss_alone() -> None:
    paco = MethodRegistry().get("paco").stage1
    assert paco.loss_weight == 0.0 and not paco.detached_head
    assert paco.resolved()["loss"] == {"name": "ce", "weight": 0.0}
    assert paco.metric is not None and paco.metric.loss.params == {
        "alpha": 0.02,
        "beta": 1.0,
        "gamma": 1.0,
        "temperature": 0.05,
    }
    assert "weight" not in MethodRegistry().get("ce").stage1.resolved()["loss"]


@pytest.mark.parametrize(
    ("body", "approach"),
    [
        ('[loss]\nname = "ce"\n', "plain"),
        ('[loss]\nname = "ce"\n[sampler]\nname = "class-balanced"\n', "loss re-weighting"),
        ('[loss]\nname = "focal"\n', "loss re-weighting"),
        ('[loss]\nname = "ce"\n[augment]\nmixup_alpha = 0.2\n', "augmentation"),
        ('[loss]\nname = "ce"\n[metric]\nname = "supcon"\n', "supervised metric learning"),
        ('approach = "self-supervised"\n[loss]\nname = "ce"\n', "self-supervised"),
    ],
)
def test_a_recipe_declares_its_approach_or_it_is_read_off_the_recipe(
    tmp_path: Path, body: str, approach: str
) -> None:
    path = tmp_path / "x.toml"
    path.write_text('description = "x"\n' + body)
    assert parse_recipe(path).approach == approach


def test_an_unknown_approach_is_refused_with_the_close_one(tmp_path: Path) -> None:
    path = tmp_path / "x.toml"
    path.write_text('description = "x"\napproach = "self supervised"\n[loss]\nname = "ce"\n')
    with pytest.raises(BenchError, match="Did you mean 'self-supervised'"):
        parse_recipe(path)


def test_a_declared_approach_leaves_the_recorded_recipe_unchanged() -> None:
    registry = MethodRegistry()
    assert registry.get("kcl+crt").approach == "long-tailed contrastive"
    assert "approach" not in str(registry.get("kcl+crt").resolved())
    assert registry.get("ce+crt").approach == "decoupled stage 2"
