"""Every component a recipe or a setting can name: the registries, their parameters (defaults
from the papers cited beside each builder) and their metadata. Importing this module imports
no builder: each is loaded when a component is built (`bench.core.registry`)."""

from __future__ import annotations

from dataclasses import dataclass

from bench.core.ranges import FRACTION, NON_NEGATIVE, POSITIVE, Range
from bench.core.registry import Param, Registry

AT_LEAST_ONE = Range(low=1)
OPEN_UNIT = Range(low=0, high=1, low_open=True, high_open=True)  # (0, 1)


@dataclass(frozen=True)
class MetricLossInfo:
    """`lr_multiplier`: of the loss's own parameters (proxies, learned centres), where its
    paper sets one: proxy-anchor's proxies learn 100 times faster than the network (Kim et
    al., CVPR 2020). `inputs`: what the loss takes beside embeddings and labels, as keywords
    (`instances`: which image of the batch each row is a view of; `prototypes`: the class
    prototypes the model projects from its head's weights; `logits`: the head's, for a loss
    that trains the head itself). `min_views`: the augmented
    views of each image it needs in a batch (a recipe asks for them in `[augment]`)."""

    lr_multiplier: float = 1.0
    inputs: tuple[str, ...] = ()
    min_views: int = 1


@dataclass(frozen=True)
class SamplerInfo:
    """`rebalancing`: the sampler draws classes uniformly, so it re-balances by itself (runs
    are flagged)."""

    rebalancing: bool = False


@dataclass(frozen=True)
class Stage2Info:
    """`trainable`: the method trains a head (so `mode` and `views` apply to it)."""

    trainable: bool = False


@dataclass(frozen=True)
class BackboneInfo:
    """`min_image_size`: the smallest input (the torchvision ResNets downsample 32 times);
    `pretrained`: ImageNet weights exist for it."""

    min_image_size: int = 8
    pretrained: bool = False


LOSSES: Registry[None] = Registry("loss")
LOSSES.add("ce", "bench.components.losses:build_ce")
LOSSES.add("focal", "bench.components.losses:build_focal", gamma=Param(1.0, NON_NEGATIVE))
LOSSES.add(
    "ldam",
    "bench.components.losses:build_ldam",
    max_margin=Param(0.5, POSITIVE),
    scale=Param(30.0, POSITIVE),
)
LOSSES.add("balanced-softmax", "bench.components.losses:build_balanced_softmax")
LOSSES.add(
    "logit-adjusted", "bench.components.losses:build_logit_adjusted", tau=Param(1.0, NON_NEGATIVE)
)
LOSSES.add(
    "vs",
    "bench.components.losses:build_vs",
    gamma=Param(0.3, NON_NEGATIVE),
    tau=Param(1.0, NON_NEGATIVE),
)
LOSSES.add(
    "lade",
    "bench.components.losses:build_lade",
    alpha=Param(0.1, NON_NEGATIVE),
    remine_lambda=Param(0.01, NON_NEGATIVE),
)
LOSSES.add(
    "gcl",
    "bench.components.losses:build_gcl",
    noise=Param(0.5, NON_NEGATIVE),
    margin=Param(0.0, NON_NEGATIVE),
    scale=Param(30.0, POSITIVE),
)

METRIC_LOSSES: Registry[MetricLossInfo] = Registry("metric")
METRIC_LOSSES.add(
    "supcon",
    "bench.components.metric_losses:build_supcon",
    MetricLossInfo(),
    temperature=Param(0.1, POSITIVE),
)
METRIC_LOSSES.add(
    "triplet",
    "bench.components.metric_losses:build_triplet",
    MetricLossInfo(),
    margin=Param(0.2, NON_NEGATIVE),
)
METRIC_LOSSES.add(
    "proxy-anchor",
    "bench.components.metric_losses:build_proxy_anchor",
    MetricLossInfo(lr_multiplier=100.0),
    margin=Param(0.1, NON_NEGATIVE),
    alpha=Param(32.0, POSITIVE),
)
METRIC_LOSSES.add(
    "centre-triplet",
    "bench.components.metric_losses:build_centre_triplet",
    MetricLossInfo(),
    margin=Param(0.2, NON_NEGATIVE),
    centres=Param("running", choices=("running", "learned")),
    momentum=Param(0.9, FRACTION),
)
METRIC_LOSSES.add(
    "centre",
    "bench.components.metric_losses:build_centre",
    MetricLossInfo(),
    alpha=Param(0.5, Range(low=0, high=1, low_open=True)),
)
METRIC_LOSSES.add(
    "nt-xent",
    "bench.components.metric_losses:build_nt_xent",
    MetricLossInfo(inputs=("instances",), min_views=2),
    temperature=Param(0.5, POSITIVE),
)
METRIC_LOSSES.add(
    "kcl",
    "bench.components.contrastive:build_kcl",
    MetricLossInfo(inputs=("instances",)),
    k=Param(6, AT_LEAST_ONE),
    temperature=Param(0.07, POSITIVE),
)
METRIC_LOSSES.add(
    "bcl",
    "bench.components.contrastive:build_bcl",
    MetricLossInfo(inputs=("prototypes",)),
    temperature=Param(0.07, POSITIVE),
)
METRIC_LOSSES.add(
    "paco",
    "bench.components.contrastive:build_paco",
    MetricLossInfo(inputs=("logits",)),
    alpha=Param(0.02, NON_NEGATIVE),
    beta=Param(1.0, NON_NEGATIVE),
    gamma=Param(1.0, NON_NEGATIVE),
    temperature=Param(0.05, POSITIVE),
)

SAMPLERS: Registry[SamplerInfo] = Registry("sampler")
SAMPLERS.add("instance", "bench.components.samplers:instance_order", SamplerInfo())
SAMPLERS.add(
    "class-balanced",
    "bench.components.samplers:class_balanced_order",
    SamplerInfo(rebalancing=True),
)
SAMPLERS.add(
    "m-per-class",
    "bench.components.samplers:m_per_class_order",
    SamplerInfo(rebalancing=True),
    m=Param(4, AT_LEAST_ONE),
)

WEIGHTINGS: Registry[None] = Registry("weighting")
WEIGHTINGS.add("inverse", "bench.components.weighting:inverse_frequency")
WEIGHTINGS.add("sqrt-inverse", "bench.components.weighting:sqrt_inverse_frequency")
WEIGHTINGS.add(
    "effective-number",
    "bench.components.weighting:effective_number",
    beta=Param(0.9999, OPEN_UNIT),
)

# Stage-2 heads fit on cached features (Kang et al., ICLR 2020: 10 epochs, class-balanced
# batches; the step floor keeps small datasets from a few dozen steps).
HEAD_FIT = {
    "epochs": Param(10, NON_NEGATIVE),
    "min_steps": Param(2000, NON_NEGATIVE),
    "lr": Param(0.05, POSITIVE),
    "batch_size": Param(128, AT_LEAST_ONE),
    "weight_decay": Param(5e-4, NON_NEGATIVE),
}
STAGE2_METHODS: Registry[Stage2Info] = Registry("stage2")
STAGE2_METHODS.add("crt", "bench.stage2.methods:crt", Stage2Info(trainable=True), **HEAD_FIT)
STAGE2_METHODS.add("lws", "bench.stage2.methods:lws", Stage2Info(trainable=True), **HEAD_FIT)
STAGE2_METHODS.add("tau-norm", "bench.stage2.methods:tau_norm", Stage2Info())
STAGE2_METHODS.add("ncm", "bench.stage2.methods:nearest_class_mean", Stage2Info())
STAGE2_METHODS.add("logit-adjustment", "bench.stage2.methods:logit_adjustment", Stage2Info())
# DisAlign (Zhang et al., CVPR 2021): generalised re-weighting exponent ρ = 1.2, the authors'
# ImageNet-LT config; their 10 epochs, lr 0.1 at batch 256 (0.05 at 128), weight decay 5e-4.
STAGE2_METHODS.add(
    "disalign",
    "bench.stage2.methods:disalign",
    Stage2Info(trainable=True),
    rho=Param(1.2, NON_NEGATIVE),
    **HEAD_FIT,
)
# Weight balancing's stage 2 (Alshammari et al., CVPR 2022; the authors' CIFAR100-LT demo):
# MaxNorm radius 10% of the way from the shortest stage-1 class weight to the longest,
# class-balanced loss with β = 0.9999, 10 epochs, lr 0.01 at batch 64, weight decay 0.1.
STAGE2_METHODS.add(
    "weight-balancing",
    "bench.stage2.methods:weight_balancing",
    Stage2Info(trainable=True),
    threshold=Param(0.1, Range(low=0, high=1)),
    beta=Param(0.9999, OPEN_UNIT),
    **{
        **HEAD_FIT,
        "lr": Param(0.01, POSITIVE),
        "batch_size": Param(64, AT_LEAST_ONE),
        "weight_decay": Param(0.1, NON_NEGATIVE),
    },
)
# MiSLAS's stage 2 (Zhong et al., CVPR 2021): label-aware smoothing from ε_1 = 0.3 (most
# frequent class) to ε_K = 0 (rarest), concave: the authors' ImageNet-LT config and code default.
STAGE2_METHODS.add(
    "label-aware-smoothing",
    "bench.stage2.methods:label_aware_smoothing",
    Stage2Info(trainable=True),
    smooth_head=Param(0.3, FRACTION),
    smooth_tail=Param(0.0, FRACTION),
    shape=Param("concave", choices=("concave", "linear", "convex")),
    **HEAD_FIT,
)

BACKBONES: Registry[BackboneInfo] = Registry("backbone")
BACKBONES.add("resnet-compact", "bench.components.models:resnet_compact", BackboneInfo())
BACKBONES.add("resnet-compact-wide", "bench.components.models:resnet_compact_wide", BackboneInfo())
BACKBONES.add("resnet18", "bench.components.models:resnet18", BackboneInfo(32, pretrained=True))
BACKBONES.add("resnet50", "bench.components.models:resnet50", BackboneInfo(32, pretrained=True))
