"""Torchvision image backbones: ResNet-18/34/50/101 and MobileNetV2, DETR-compatible.

A backbone maps images [B, 3, H, W] to named feature maps and declares them in `levels` (see
`trackformer.models.levels`): ResNets have res2..res5 (strides 4..32; res5 at 16 when dilated),
MobileNetV2 stride2..stride32. The modules are torchvision's own blocks with FrozenBatchNorm2d
(inference folds it into the convolutions in `trackformer_detr.inference`). Parameters live
under `body.*` with torchvision's names, so DETR's `backbone.0.body.*` layout and torchvision
ImageNet files load unchanged. Weights only ever come from a local file: nothing is downloaded.
"""
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
import torchvision
from torch import Tensor

from trackformer.checkpoint import state_dict_mismatch
from trackformer.errors import ConfigError, DataError

from .levels import Level, TappedSequential, select_levels

RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101")


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm with fixed statistics and affine parameters, all four stored as buffers.

    Plain BatchNorm is useless at DETR's batch size of 2 per GPU; freezing it keeps the ImageNet
    statistics. The state dict has exactly weight/bias/running_mean/running_var, as DETR's.
    """

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        # torchvision's BatchNorm2d files carry a step counter that frozen statistics do not need
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    def scale_shift(self):
        """The per-channel affine map this layer applies: y = x * scale + shift, each [C]."""
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        return scale, shift

    def forward(self, x):  # [B, C, H, W]
        scale, shift = self.scale_shift()
        return x * scale.view(1, -1, 1, 1).to(x.dtype) + shift.view(1, -1, 1, 1).to(x.dtype)

    def extra_repr(self):
        return f"{self.weight.shape[0]}, eps={self.eps}"


class ResNetBody(nn.Module):
    """A torchvision ResNet without avgpool/fc, under torchvision's module names (conv1, bn1, relu,
    maxpool, layer1..): [B, 3, H, W] -> {"res2".."res5": [B, C, H/s, W/s]}, the levels in
    `return_levels` only, running no stage past the deepest of them."""

    def __init__(self, net: torchvision.models.ResNet, return_levels: List[str]):
        super().__init__()
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.depth = max(int(name[3:]) for name in return_levels) - 1  # res{k+1} is layer{k}
        for k in range(1, self.depth + 1):
            self.add_module(f"layer{k}", getattr(net, f"layer{k}"))
        self.return_levels = list(return_levels)

    def forward(self, x):  # [B, 3, H, W]
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # [B, 64, H/4, W/4]
        out = {}
        for k in range(1, self.depth + 1):
            x = getattr(self, f"layer{k}")(x)  # [B, C_k, H/2**(k+1), W/2**(k+1)] (res5: /16 dilated)
            if f"res{k + 1}" in self.return_levels:
                out[f"res{k + 1}"] = x
        return out


_RESNET_LAYOUT = {"resnet18": (torchvision.models.resnet.BasicBlock, [2, 2, 2, 2]),
                  "resnet34": (torchvision.models.resnet.BasicBlock, [3, 4, 6, 3]),
                  "resnet50": (torchvision.models.resnet.Bottleneck, [3, 4, 6, 3]),
                  "resnet101": (torchvision.models.resnet.Bottleneck, [3, 4, 23, 3])}


class Backbone(nn.Module):
    """A torchvision feature extractor: `body` maps images to {level name: features}; `levels`
    declares what it returns (see `trackformer.models.levels`).

    With `channels_last` the convolutions run on NHWC memory (faster oneDNN kernels on CPU,
    tensor cores on GPU); the outputs are returned in the usual contiguous layout."""

    def __init__(self, body: nn.Module, levels: Dict[str, Level], channels_last: bool = False):
        super().__init__()
        self.body = body
        self.levels = dict(levels)
        self.channels_last = channels_last
        if channels_last:
            body.to(memory_format=torch.channels_last)

    def forward(self, images: Tensor) -> Dict[str, Tensor]:  # [B, 3, H, W] -> {name: [B, C, h, w]}
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return {name: f.contiguous() for name, f in self.body(images).items()}


def _freeze(module: nn.Module):
    for p in module.parameters():
        p.requires_grad_(False)


def _read_state_dict(path: str) -> Dict[str, torch.Tensor]:
    file = Path(path).expanduser()
    if not file.is_file():
        raise DataError(file, "backbone weights file not found (weights are never downloaded; "
                              "give a local .pth file)")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle errors come in many types
        raise DataError(file, f"cannot read backbone weights: {type(e).__name__}: {e}") from None
    for key in ("model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise DataError(file, "not a state dict of tensors")
    return state


def load_backbone_weights(body: nn.Module, path: str, prefix: str, arch: str, skip=()):
    """Load a torchvision-format state dict into `body`, keeping the keys under `prefix`
    (e.g. "features." for MobileNetV2) and dropping the classifier, BN step counters and the
    modules in `skip` (stages past the deepest level returned)."""
    state = _read_state_dict(path)
    state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    state = {k: v for k, v in state.items() if not k.startswith(tuple(skip))}
    own = body.state_dict()
    state = {k: v for k, v in state.items()
             if k in own or not (k.startswith(("fc.", "classifier.")) or k.endswith("num_batches_tracked"))}
    if not any(k.endswith("num_batches_tracked") for k in own):
        state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    mismatch = state_dict_mismatch(own, state, prefix, [k for k in own if k.endswith("num_batches_tracked")])
    if mismatch:
        raise DataError(path, f"not torchvision {arch} weights: {mismatch}")
    body.load_state_dict(state, strict=False)


def resnet_levels(arch: str, dilation: bool = False) -> Dict[str, Level]:
    """res2..res5 of a ResNet: the outputs of layer1..layer4 at strides 4, 8, 16, 32 (16 for res5
    with `dilation`, DETR's DC5), 64..512 channels times the block expansion (4 for ResNet-50/101)."""
    expansion = 1 if arch in ("resnet18", "resnet34") else 4
    return {f"res{k + 1}": Level(64 * 2 ** (k - 1) * expansion,
                                 16 if dilation and k == 4 else 2 ** (k + 1)) for k in range(1, 5)}


def build_resnet(arch: str, weights: Optional[str] = None, frozen_bn: bool = True,
                 frozen_stages: int = 1, dilation: bool = False,
                 return_levels: Optional[Sequence[str]] = None, channels_last: bool = True) -> Backbone:
    """ResNet without avgpool/fc returning `return_levels` of res2..res5 (None: res5). Stages
    after the deepest level returned are dropped (finer, cheaper features for small images).
    `frozen_stages`: -1 trains everything, 0 freezes the stem, k >= 1 the stem and
    layer1..layerk (DETR: 1). `dilation` replaces the last stride by dilation (DETR's DC5)."""
    if arch not in RESNETS:
        raise ConfigError("name", f"unknown ResNet {arch!r}; choose from {', '.join(RESNETS)}")
    if not -1 <= frozen_stages <= 4:
        raise ConfigError("frozen_stages", f"must be in -1..4, got {frozen_stages}")
    if dilation and arch in ("resnet18", "resnet34"):
        raise ConfigError("dilation", f"{arch} (BasicBlock) does not support dilation")
    levels = select_levels(resnet_levels(arch, dilation), return_levels)
    if dilation and "res5" not in levels:
        raise ConfigError("dilation", "only applies to the last stage (res5)")
    norm = FrozenBatchNorm2d if frozen_bn else nn.BatchNorm2d
    block, layers = _RESNET_LAYOUT[arch]
    net = torchvision.models.resnet.ResNet(block, layers, norm_layer=norm,
                                           replace_stride_with_dilation=[False, False, dilation])
    body = ResNetBody(net, list(levels))
    if weights:
        load_backbone_weights(body, weights, prefix="", arch=arch,
                              skip=[f"layer{k}." for k in range(body.depth + 1, 5)])
    stages: List[nn.Module] = [nn.ModuleList([body.conv1, body.bn1])]
    stages += [getattr(body, f"layer{k}") for k in range(1, body.depth + 1)]
    for stage in stages[:frozen_stages + 1]:
        _freeze(stage)
    return Backbone(body, levels, channels_last=channels_last)


# MobileNetV2 `features`: the index of the last module of each stage, its stride and channels.
# Stage k ends at stride 2**k; the last includes the final 1x1 conv to 1280 channels.
_MOBILENET_STAGES = {"stride2": (1, 2, 16), "stride4": (3, 4, 24), "stride8": (6, 8, 32),
                     "stride16": (13, 16, 96), "stride32": (18, 32, 1280)}


def build_mobilenet_v2(weights: Optional[str] = None, frozen_bn: bool = True,
                       frozen_stages: int = 1, dilation: bool = False,
                       return_levels: Optional[Sequence[str]] = None,
                       channels_last: bool = True) -> Backbone:
    """MobileNetV2 `features` returning `return_levels` of stride2..stride32 (None: stride32,
    1280 channels; stride16 has 96). `frozen_stages`: -1 none, 0 the stem conv, k the stem and
    the first k stages (features[1], [2:4], [4:7], [7:14], [14:19])."""
    if dilation:
        raise ConfigError("dilation", "mobilenet_v2 does not support dilation")
    available = {name: Level(c, s) for name, (_, s, c) in _MOBILENET_STAGES.items()}
    levels = select_levels(available, return_levels)
    depth = list(available).index(list(levels)[-1]) + 1  # stages run
    if not -1 <= frozen_stages <= depth:
        raise ConfigError("frozen_stages", f"must be in -1..{depth}, got {frozen_stages}")
    norm = FrozenBatchNorm2d if frozen_bn else nn.BatchNorm2d
    features = torchvision.models.mobilenet_v2(weights=None, norm_layer=norm).features
    if weights:
        load_backbone_weights(features, weights, prefix="features.", arch="mobilenet_v2")
    ends = [end for end, _, _ in _MOBILENET_STAGES.values()]
    taps = {_MOBILENET_STAGES[name][0]: name for name in levels}
    if frozen_stages >= 0:
        _freeze(features[:([0] + ends)[frozen_stages] + 1])
    body = TappedSequential(list(features[:ends[depth - 1] + 1]), taps)
    return Backbone(body, levels, channels_last=channels_last)


def build(arch: str, cfg) -> Backbone:
    """Build `arch` (resnet18/34/50/101, mobilenet_v2) from a node shaped like
    `trackformer.builtin_plugins.backbones.BackboneConfig`."""
    return_levels = getattr(cfg, "return_levels", None)
    kwargs = dict(weights=cfg.weights or None, frozen_bn=cfg.frozen_bn,
                  frozen_stages=cfg.frozen_stages, dilation=cfg.dilation,
                  return_levels=list(return_levels) if return_levels is not None else None,
                  channels_last=getattr(cfg, "channels_last", True))
    if arch == "mobilenet_v2":
        return build_mobilenet_v2(**kwargs)
    return build_resnet(arch, **kwargs)
