"""Backbones registered by name, and the classifier (backbone + linear or cosine head)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from bench.components.catalogue import BACKBONES
from bench.core.errors import BenchError, unknown_name
from bench.core.validation import WEIGHTS_LIMIT, first_line, regular_file


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with batch norm and an identity (or 1×1 projection) shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class CompactResNet(nn.Module):
    """A CIFAR-style ResNet for 28–64 px inputs: three stages, `blocks` blocks each.

    With widths 16/32/64 and one block per stage it is the CPU default: small enough to train
    a benchmark on two cores, deep enough to learn texture and border cues.
    """

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64), blocks: int = 1) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(3, widths[0], 3, 1, 1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(),
        ]
        channels = widths[0]
        for stage, width in enumerate(widths):
            for block in range(blocks):
                layers.append(BasicBlock(channels, width, 2 if stage and not block else 1))
                channels = width
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.body = nn.Sequential(*layers)
        self.out_features = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def hub_weights_file(arch: str) -> Path:
    """Where torch's hub cache keeps the ImageNet weights of a torchvision model."""
    import torchvision  # imported where used: about 2 s that compact backbones never need

    url = torchvision.models.get_model_weights(arch).DEFAULT.url
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def read_weights(path: Path, arch: str) -> dict[str, torch.Tensor]:
    """A torchvision state dict of `arch` from `path` (tensors only: nothing in it runs),
    checked against the architecture's keys and shapes."""
    info = regular_file(path, "--weights", WEIGHTS_LIMIT)  # a FIFO or device is never opened
    return _read_weights(str(path), arch, info.st_size, info.st_mtime)


@functools.lru_cache(maxsize=2)  # checked up front and loaded to train: read once
def _read_weights(name: str, arch: str, size: int, mtime: float) -> dict[str, torch.Tensor]:
    path = Path(name)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise BenchError(f"--weights {path}: no such file.") from None
    except Exception as error:  # not a torch file, or one holding more than tensors
        raise BenchError(
            f"--weights {path}: not a state dict torch can read ({first_line(error)}); save one "
            f"with torch.save(model.state_dict(), PATH)."
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # a training checkpoint holding the state dict
    import torchvision

    expected = torchvision.models.get_model(arch, weights=None).state_dict()
    if not isinstance(state, dict):
        raise BenchError(f"--weights {path}: holds a {type(state).__name__}, not a state dict.")
    not_tensors = sorted(k for k in expected if k in state and not torch.is_tensor(state[k]))
    if not_tensors:
        value = state[not_tensors[0]]
        raise BenchError(
            f"--weights {path}: {not_tensors[0]} holds a {type(value).__name__}, not a tensor "
            f"({len(not_tensors)} such entries); save the model's state_dict() itself."
        )
    missing = sorted(set(expected) - set(state))
    wrong = [
        k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    if missing or wrong:
        first = (missing or wrong)[0]
        raise BenchError(
            f"--weights {path}: not {arch}'s state dict ({len(missing)} key(s) missing, "
            f"{len(wrong)} of another shape; first: {first}); save it with "
            f"torch.save(torchvision.models.{arch}(...).state_dict(), PATH)."
        )
    return {k: state[k] for k in expected}


def _torchvision_resnet(arch: str) -> Callable[[bool, str], tuple[nn.Module, int]]:
    def build(pretrained: bool, weights_file: str = "") -> tuple[nn.Module, int]:
        import torchvision

        # With pretrained weights, `check_backbone` has made sure they are in the hub cache
        # (or in the given file) before any training: nothing is downloaded.
        hub = torchvision.models.get_model_weights(arch).DEFAULT
        weights = hub if pretrained and not weights_file else None
        model = torchvision.models.get_model(arch, weights=weights)
        if pretrained and weights_file:
            model.load_state_dict(read_weights(Path(weights_file), arch))
        features = model.fc.in_features
        model.fc = nn.Identity()
        return model, features

    return build


def _compact(widths: tuple[int, ...], blocks: int) -> Callable[[bool, str], tuple[nn.Module, int]]:
    def build(pretrained: bool, weights_file: str = "") -> tuple[nn.Module, int]:
        if pretrained:
            raise BenchError("the compact ResNets have no pretrained weights.")
        net = CompactResNet(widths, blocks)
        return net, net.out_features

    return build


# The backbones `catalogue.BACKBONES` names: each builds (body, feature size) from
# (pretrained, weights file).
resnet_compact = _compact((16, 32, 64), 1)
resnet_compact_wide = _compact((32, 64, 128), 1)
resnet18 = _torchvision_resnet("resnet18")
resnet50 = _torchvision_resnet("resnet50")


def check_backbone(name: str, image_size: int, pretrained: bool, weights_file: str = "") -> None:
    """Refuse, before any training, a backbone that is unknown, an image size below its
    minimum, or pretrained weights that are not available offline (nothing is downloaded):
    the hub cache's ImageNet weights, or the state dict in `weights_file`."""
    info = BACKBONES.meta(name)
    smallest = info.min_image_size
    if image_size < smallest:
        raise BenchError(f"{name} needs images of at least {smallest} px; got {image_size}.")
    if not pretrained:
        return
    if not info.pretrained:
        remedy = "drop --weights" if weights_file else "use --no-pretrained"
        raise BenchError(
            f"{name} has no pretrained weights; {remedy}, or choose --backbone resnet18 / resnet50."
        )
    if weights_file:
        read_weights(Path(weights_file), name)
        return
    path = hub_weights_file(name)
    if not path.is_file():
        import torchvision

        url = torchvision.models.get_model_weights(name).DEFAULT.url
        raise BenchError(
            f"pretrained {name}: its ImageNet weights are not in torch's hub cache ({path}); "
            f"nothing is downloaded behind your back: save {url} there, give a state dict with "
            "--weights PATH, or train from scratch with --no-pretrained."
        )


HEAD_KINDS = ("linear", "cosine")  # the stage-1 heads a loss may ask for (`Loss.head`)


def cosine_logits(features: torch.Tensor, weight: torch.Tensor, scale: float) -> torch.Tensor:
    """scale · cos(feature, class weight): the cosine head's logits, in stage 1 and stage 2."""
    return scale * F.normalize(features, dim=1) @ F.normalize(weight, dim=1).T


def head_logits(
    kind: str, features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, scale: float
) -> torch.Tensor:
    """The logits of a stage-1 head of `kind` (HEAD_KINDS) from its weights: what the head
    module computes, for stage 2's frozen copies of it."""
    if kind == "cosine":
        return cosine_logits(features, weight, scale)
    out = features @ weight.T
    return out if bias is None else out + bias


class CosineHead(nn.Module):
    """Logits = scale · cos(feature, class weight), as LDAM's normalised classifier."""

    def __init__(self, in_features: int, num_classes: int, scale: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, in_features).uniform_(-1, 1))
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return cosine_logits(x, self.weight, self.scale)


class Classifier(nn.Module):
    """A backbone producing features, a classification head, and optionally a projection.

    The projection (an MLP, as in supervised contrastive learning) maps features to the
    unit-norm embedding a metric-learning loss acts on; the head never sees it. A second
    projection, when given, maps the head's class weights into the embedding space as class
    prototypes (BCL's, Zhu et al., CVPR 2022).
    """

    def __init__(
        self,
        backbone: nn.Module,
        head: nn.Module,
        projection: nn.Module | None = None,
        prototype_projection: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.projection = projection
        self.prototype_projection = prototype_projection

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """Unit-norm embedding of backbone features (needs a projection)."""
        if self.projection is None:
            raise RuntimeError("this classifier was built without a projection head")
        return F.normalize(self.projection(features), dim=1)

    def prototypes(self) -> torch.Tensor:
        """Unit-norm class prototypes: the head's class weights through the prototype
        projection (needs one)."""
        if self.prototype_projection is None:
            raise RuntimeError("this classifier was built without a prototype projection")
        weight = self.head.weight
        assert isinstance(weight, torch.Tensor)
        return F.normalize(self.prototype_projection(weight), dim=1)


def projection_head(in_features: int, embedding_dim: int) -> nn.Module:
    """Linear–ReLU–linear projection to `embedding_dim` (Khosla et al., NeurIPS 2020)."""
    return nn.Sequential(
        nn.Linear(in_features, in_features), nn.ReLU(), nn.Linear(in_features, embedding_dim)
    )


def build_classifier(
    backbone: str,
    num_classes: int,
    head: str = "linear",
    head_scale: float = 1.0,
    pretrained: bool = False,
    embedding_dim: int | None = None,
    weights_file: str = "",
    prototypes: bool = False,
) -> Classifier:
    """A classifier with the named backbone, a `linear` or `cosine` head, and a projection to
    `embedding_dim` when one is given (for metric learning), with a second one of the same
    shape for class prototypes when `prototypes`; its convolutions are kept in channels-last
    memory order (measured 1.5× faster training of the compact ResNet on two CPU cores; `nox -s
    perf`)."""
    body, features = BACKBONES.builder(backbone)(pretrained, weights_file)
    projection = None if embedding_dim is None else projection_head(features, embedding_dim)
    if head == "linear":
        model = Classifier(body, nn.Linear(features, num_classes), projection)
    elif head == "cosine":
        model = Classifier(body, CosineHead(features, num_classes, head_scale), projection)
    else:
        raise unknown_name("head", head, HEAD_KINDS)
    if prototypes:
        if embedding_dim is None:
            raise ValueError("class prototypes live in the embedding space: give embedding_dim")
        model.prototype_projection = projection_head(features, embedding_dim)
    return model.to(memory_format=torch.channels_last)
