"""Builtin torchvision backbones: resnet18/34/50/101 and mobilenet_v2 (see trackformer.models.backbones).

Settings (all optional): `weights` (local torchvision .pth), `frozen_bn`, `frozen_stages`, `dilation`.
"""
from dataclasses import dataclass
from typing import Optional

from trackformer.hookspecs import hookimpl


@dataclass
class BackboneConfig:
    weights: Optional[str] = None  # local torchvision-format .pth (ImageNet); None = random init
    frozen_bn: bool = True  # FrozenBatchNorm2d (DETR) instead of trainable BatchNorm2d
    frozen_stages: int = 1  # -1 none, 0 stem, k stem + first k stages (DETR: 1)
    dilation: bool = False  # dilate the last stage instead of striding (DETR-DC5; ResNet-50/101)
    out_stage: Optional[int] = None  # None: last stage; k: stop after stage k (ResNet 1-4: layerk,
    # stride 2**(k+1); MobileNetV2 1-5: stride 2**k) -- finer, cheaper features for small images
    channels_last: bool = True  # NHWC convolutions (faster on CPU and GPU; same results)

_HELP = {
    "resnet18": "torchvision ResNet-18 (512 channels, stride 32)",
    "resnet34": "torchvision ResNet-34 (512 channels, stride 32)",
    "resnet50": "torchvision ResNet-50 (2048 channels, stride 32; 16 with dilation=true)",
    "resnet101": "torchvision ResNet-101 (2048 channels, stride 32; 16 with dilation=true)",
    "mobilenet_v2": "torchvision MobileNetV2 features (1280 channels, stride 32)",
}


def _factory(arch):
    def factory(settings: BackboneConfig, **deps):
        from trackformer.models import backbones  # torch-heavy: only when building

        return backbones.build(arch, settings)

    return factory


@hookimpl
def register_backbones(register):
    for arch, text in _HELP.items():
        register(arch, _factory(arch), schema=BackboneConfig, help=text)
