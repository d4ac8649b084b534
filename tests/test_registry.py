"""One registry for every component family: entries declared once, parameters checked against
the builders they name, recipes listed without importing torch."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

from bench.components import catalogue
from bench.core.errors import BenchError
from bench.core.registry import Param, Registry

FAMILIES = [
    catalogue.LOSSES,
    catalogue.METRIC_LOSSES,
    catalogue.SAMPLERS,
    catalogue.WEIGHTINGS,
    catalogue.STAGE2_METHODS,
    catalogue.BACKBONES,
]


@pytest.mark.parametrize("registry", FAMILIES, ids=lambda r: r.family)
def test_every_entry_declares_exactly_its_builders_keyword_parameters(registry: Registry) -> None:
    for name in registry:
        builder = registry.builder(name)
        keyword = [
            p.name
            for p in inspect.signature(builder).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        ]
        assert keyword == list(registry.entry(name).params), name
        for param in registry.entry(name).params.values():  # every default is valid
            assert param.range is None or param.default in param.range
            assert not param.choices or param.default in param.choices


def test_a_registry_refuses_duplicates_and_suggests_close_names() -> None:
    registry: Registry[None] = Registry("loss")
    registry.add("focal", "bench.components.losses:build_focal", gamma=Param(2.0))
    with pytest.raises(ValueError, match="registered twice"):
        registry.add("focal", "bench.components.losses:build_focal")
    with pytest.raises(BenchError, match=r"unknown loss 'focla'\. Did you mean 'focal'"):
        registry.entry("focla")
    assert list(registry) == ["focal"] and "focal" in registry and len(registry) == 1


def test_indexing_fills_in_the_declared_defaults() -> None:
    import numpy as np
    import torch

    counts = np.array([10, 1])
    logits, targets = torch.tensor([[2.0, 0.0]]), torch.tensor([1])
    by_default = catalogue.LOSSES["focal"](counts).fn(logits, targets, None)
    explicit = catalogue.LOSSES.builder("focal")(counts, gamma=1.0).fn(logits, targets, None)
    assert torch.equal(by_default, explicit)


def test_the_side_tables_are_metadata() -> None:
    rebalancing = [n for n in catalogue.SAMPLERS if catalogue.SAMPLERS.meta(n).rebalancing]
    assert rebalancing == ["class-balanced", "m-per-class"]
    assert catalogue.METRIC_LOSSES.meta("proxy-anchor").lr_multiplier == 100.0
    trainable = [n for n in catalogue.STAGE2_METHODS if catalogue.STAGE2_METHODS.meta(n).trainable]
    assert trainable[:2] == ["crt", "lws"]  # and each head-training method added after them
    assert not {"tau-norm", "ncm", "logit-adjustment"} & set(trainable)
    assert catalogue.BACKBONES.meta("resnet18").min_image_size == 32
    assert not catalogue.BACKBONES.meta("resnet-compact").pretrained


def test_recipes_are_parsed_and_listed_without_torch() -> None:
    probe = (
        "import sys\n"
        "from bench.recipes.methods import MethodRegistry\n"
        "registry = MethodRegistry()\n"
        "assert registry.get('supcon+crt').stage1.summary()\n"
        "print(sorted(m for m in ('torch', 'torchvision', 'scipy') if m in sys.modules))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "[]"
