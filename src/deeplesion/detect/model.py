"""The 2.5D lesion detector: 3DCE/MULAN-style context fusion on torchvision's Faster R-CNN parts.

A stack of ``S`` slices (``S`` a multiple of 3) is split into ``S / 3`` groups of three neighbouring
slices; one shared 2D backbone turns each group into feature maps; at every backbone stage the groups'
maps are concatenated and fused by a 1x1 convolution (3DCE's feature-level fusion, which MULAN applies at
its last stage; here at each stage the FPN reads); an FPN's top-down pathway brings the deep features up
to one output stride, where the RPN's anchors (sized for lesions of 4-80 mm at 0.8 mm/px) and the RoI
head work, as MULAN predicts on its finest, upsampled feature map. No custom operators: everything is
``torch`` and ``torchvision`` (so it runs on any device and under DDP).

Models are built by name from :data:`MODELS` with keyword-only options; backbones range from ``tiny``
(a few hundred thousand parameters, for the CPU) to ``resnet50``. Weights are never downloaded: a local
ImageNet state dict can be loaded into the backbone (:func:`load_backbone_weights`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn
from torch.nn import functional as F
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import MultiScaleRoIAlign

from deeplesion.errors import UsageError

GROUP = 3
"""Slices per group: each group is one 3-channel image for the shared 2D backbone."""


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class _Residual(nn.Module):
    """Two 3x3 convolutions with a shortcut (a ResNet basic block)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv(cin, cout, stride),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.short = (
            nn.Identity()
            if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.short(x))


class _Trunk(nn.Module):
    """A stem then stages; returns every stage's output (what the fusion and the FPN read)."""

    stem: nn.Module
    stages: nn.ModuleList
    channels: tuple[int, ...]
    strides: tuple[int, ...] = (4, 8, 16, 32)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        out = []
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return out


class TinyTrunk(_Trunk):
    """A small residual trunk for CPU training from scratch: stages at strides 4, 8, 16 and 32.

    Returns
    -------
    list of torch.Tensor
        (N, C_i, H / s_i, W / s_i) float32 for s_i = 4, 8, 16, 32 and C_i = :attr:`channels`.
    """

    channels = (32, 48, 96, 128)

    def __init__(self) -> None:
        super().__init__()
        c = self.channels
        self.stem = nn.Sequential(_conv(3, 24, 2), _conv(24, c[0], 2))
        self.stages = nn.ModuleList(
            [
                _Residual(c[0], c[0], 1),
                _Residual(c[0], c[1], 2),
                nn.Sequential(_Residual(c[1], c[2], 2), _Residual(c[2], c[2], 1)),
                _Residual(c[2], c[3], 2),
            ]
        )


class ResNetTrunk(_Trunk):
    """torchvision's ResNet (no weights downloaded) as a trunk: layer1-layer4 at strides 4-32."""

    def __init__(self, depth: int) -> None:
        super().__init__()
        builders: dict[int, Callable[..., torchvision.models.ResNet]] = {
            18: torchvision.models.resnet18,
            34: torchvision.models.resnet34,
            50: torchvision.models.resnet50,
        }
        net = builders[depth](weights=None)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.stages = nn.ModuleList([net.layer1, net.layer2, net.layer3, net.layer4])
        widths = (64, 128, 256, 512) if depth < 50 else (256, 512, 1024, 2048)
        self.channels = widths


def make_trunk(name: str) -> _Trunk:
    """``tiny``, ``resnet18``, ``resnet34`` or ``resnet50``."""
    if name == "tiny":
        return TinyTrunk()
    if name.startswith("resnet") and name[6:] in ("18", "34", "50"):
        return ResNetTrunk(int(name[6:]))
    raise UsageError(f"unknown backbone {name!r}; use tiny, resnet18, resnet34 or resnet50")


class ContextBackbone(nn.Module):
    """Shared 2D trunk over groups of 3 slices, per-stage fusion across groups, FPN to one stride.

    Parameters
    ----------
    trunk
        The 2D backbone (:func:`make_trunk`).
    slices
        Slices per input stack (a multiple of 3).
    out_channels
        Channels of the output feature map.
    out_stride
        Stride of the output map (4, 8 or 16): where anchors and RoIs live.

    Forward: (N, S, H, W) float32 -> (N, out_channels, H / out_stride, W / out_stride).
    """

    def __init__(self, trunk: _Trunk, *, slices: int, out_channels: int, out_stride: int):
        super().__init__()
        if slices % GROUP:
            raise UsageError(f"the number of slices must be a multiple of {GROUP}, got {slices}")
        if out_stride not in trunk.strides[:3]:
            raise UsageError(f"out_stride must be one of {trunk.strides[:3]}, got {out_stride}")
        self.trunk = trunk
        self.groups = slices // GROUP
        self.out_channels = out_channels
        self.level = trunk.strides.index(out_stride)
        used = trunk.channels[self.level :]
        self.fuse = nn.ModuleList(
            [nn.Identity() if self.groups == 1 else nn.Conv2d(c * self.groups, c, 1) for c in used]
        )
        # the FPN's top-down pathway to the output level only (every parameter is used: DDP needs that)
        self.lateral = nn.ModuleList([nn.Conv2d(c, out_channels, 1) for c in used])
        self.smooth = nn.Conv2d(out_channels, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        features = self.trunk(x.reshape(n * self.groups, GROUP, h, w))[self.level :]
        top: torch.Tensor | None = None
        for f, fuse, lateral in reversed(list(zip(features, self.fuse, self.lateral, strict=True))):
            level = lateral(fuse(f.reshape(n, self.groups * f.shape[1], f.shape[2], f.shape[3])))
            top = level if top is None else level + F.interpolate(top, size=level.shape[-2:], mode="nearest")
        assert top is not None
        out: torch.Tensor = self.smooth(top)
        return out


class _NoResize(GeneralizedRCNNTransform):
    """Normalise and batch, never resize: images arrive at 0.8 mm per pixel already."""

    def resize(
        self, image: torch.Tensor, target: dict[str, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
        return image, target


def lesion_detector(
    *,
    backbone: str = "tiny",
    slices: int = 3,
    out_stride: int = 8,
    fpn_channels: int = 64,
    anchor_sizes: tuple[int, ...] = (12, 20, 32, 56, 96),
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0),
    pixel_mean: float = 50.0,
    pixel_std: float = 50.0,
    rpn_batch_per_image: int = 64,
    rpn_pre_nms_train: int = 2000,
    rpn_post_nms_train: int = 500,
    rpn_pre_nms_test: int = 1000,
    rpn_post_nms_test: int = 300,
    roi_batch_per_image: int = 64,
    box_head_dim: int = 256,
    detections_per_image: int = 100,
    score_floor: float = 0.001,
    nms: float = 0.5,
) -> FasterRCNN:
    """The 2.5D Faster R-CNN (see the module docstring).

    Parameters
    ----------
    backbone
        ``tiny`` (CPU), ``resnet18``, ``resnet34`` or ``resnet50``.
    slices
        Input slices per stack (3, 9, ...).
    out_stride, fpn_channels
        The feature map the heads use.
    anchor_sizes, aspect_ratios
        Anchors, pixels at 0.8 mm/px (12-96 px: about 10-77 mm).
    pixel_mean, pixel_std
        Input normalisation (images are the ``model`` window mapped to 0-255).
    detections_per_image, score_floor, nms
        Output: at most this many boxes per image above this score, after NMS at this IoU.

    Returns
    -------
    torchvision.models.detection.FasterRCNN
        ``model(images, targets)`` with images a list of (S, H, W) float32 tensors; boxes in the input's
        pixels (torchvision convention: continuous ``x1, y1, x2, y2``).
    """
    body = ContextBackbone(
        make_trunk(backbone), slices=slices, out_channels=fpn_channels, out_stride=out_stride
    )
    anchors = AnchorGenerator(sizes=(tuple(anchor_sizes),), aspect_ratios=(tuple(aspect_ratios),))
    pooler = MultiScaleRoIAlign(featmap_names=["0"], output_size=7, sampling_ratio=2)
    head = TwoMLPHead(fpn_channels * 7 * 7, box_head_dim)
    model = FasterRCNN(
        body,
        num_classes=None,
        rpn_anchor_generator=anchors,
        box_roi_pool=pooler,
        box_head=head,
        box_predictor=FastRCNNPredictor(box_head_dim, 2),
        rpn_pre_nms_top_n_train=rpn_pre_nms_train,
        rpn_post_nms_top_n_train=rpn_post_nms_train,
        rpn_pre_nms_top_n_test=rpn_pre_nms_test,
        rpn_post_nms_top_n_test=rpn_post_nms_test,
        rpn_batch_size_per_image=rpn_batch_per_image,
        box_batch_size_per_image=roi_batch_per_image,
        box_detections_per_img=detections_per_image,
        box_score_thresh=score_floor,
        box_nms_thresh=nms,
    )
    model.transform = _NoResize(512, 4096, [pixel_mean] * slices, [pixel_std] * slices, size_divisible=32)
    return model


MODELS: dict[str, Callable[..., FasterRCNN]] = {"lesion-2.5d": lesion_detector}
"""Model builders by name (keyword-only options)."""


def build_model(name: str, **options: Any) -> FasterRCNN:
    """A model from :data:`MODELS` by name, with its keyword options.

    Raises
    ------
    UsageError
        Unknown name or option.
    """
    if name not in MODELS:
        raise UsageError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    try:
        return MODELS[name](**options)
    except TypeError as exc:
        raise UsageError(f"model {name!r}: {exc}") from None


def load_backbone_weights(model: FasterRCNN, path: str | Path) -> list[str]:
    """Load a local ImageNet state dict (torchvision's ResNet keys) into the model's trunk.

    Returns
    -------
    list of str
        The trunk's parameters the file did not have (the classifier's keys are ignored).

    Raises
    ------
    UsageError
        The file is missing or unreadable, or none of its keys fit the trunk.
    """
    file = Path(path)
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError) as exc:
        raise UsageError(f"{file}: cannot read backbone weights ({exc})") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    trunk = model.backbone.trunk
    mapping = {"conv1.": "stem.0.", "bn1.": "stem.1."}
    renamed = {}
    for key, value in state.items():
        for old, new in mapping.items():
            if key.startswith(old):
                key = new + key[len(old) :]
        if key.startswith("layer"):
            key = f"stages.{int(key[5]) - 1}{key[6:]}"
        renamed[key] = value
    if not set(renamed) & set(trunk.state_dict()):
        raise UsageError(
            f"{file}: no key fits the {type(trunk).__name__} backbone (a torchvision ResNet state dict?)"
        )
    result = trunk.load_state_dict(renamed, strict=False)
    return list(result.missing_keys)
