"""Builtin torchvision backbones: resnet18/34/50/101 and mobilenet_v2 (see trackformer.models.backbones).

Settings (all optional): `weights` (local torchvision .pth), `frozen_bn`, `frozen_stages`, `dilation`,
`return_levels` (ResNets: res2..res5; MobileNetV2: stride2..stride32), `channels_last`.
"""
from dataclasses import dataclass
from typing import List, Optional

from trackformer.hookspecs import hookimpl


@dataclass
class BackboneConfig:
    weights: Optional[str] = None  # local torchvision-format .pth (ImageNet); None = random init
    frozen_bn: bool = True  # FrozenBatchNorm2d (DETR) instead of trainable BatchNorm2d
    frozen_stages: int = 1  # -1 none, 0 stem, k stem + first k stages (DETR: 1)
    dilation: bool = False  # dilate the last stage instead of striding (DETR-DC5; ResNet-50/101)
    # the feature maps returned, by name (ResNet res2..res5 at strides 4..32; MobileNetV2
    # stride2..stride32); None: the last only. Stages past the deepest one named are dropped.
    return_levels: Optional[List[str]] = None
    channels_last: bool = True  # NHWC convolutions (faster on CPU and GPU; same results)

_HELP = {
    "resnet18": "torchvision ResNet-18, levels res2..res5 (64..512 channels, strides 4..32)",
    "resnet34": "torchvision ResNet-34, levels res2..res5 (64..512 channels, strides 4..32)",
    "resnet50": "torchvision ResNet-50, levels res2..res5 (256..2048 channels, strides 4..32; "
                "res5 at 16 with dilation=true)",
    "resnet101": "torchvision ResNet-101, levels res2..res5 (256..2048 channels, strides 4..32; "
                 "res5 at 16 with dilation=true)",
    "mobilenet_v2": "torchvision MobileNetV2 features, levels stride2..stride32 (last: 1280 channels)",
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
