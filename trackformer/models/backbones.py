"""Torchvision image backbones: ResNet-18/34/50/101 and MobileNetV2, DETR-compatible.

A backbone maps images [B, 3, H, W] to features [B, C, H/32, W/32] (H/16 with a dilated last
stage) and exposes `num_channels`. Its parameters live under `body.*` with torchvision's own
names, so DETR's `backbone.0.body.*` layout and torchvision ImageNet files load unchanged.
Weights only ever come from a local file: nothing is downloaded.
"""
from pathlib import Path
from typing import Dict, List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torch import Tensor

from trackformer.errors import ConfigError, DataError

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
        # one fused multiply-add pass instead of DETR's separate multiply and add
        return torch.addcmul(shift.view(1, -1, 1, 1).to(x.dtype), x,
                             scale.view(1, -1, 1, 1).to(x.dtype))

    def extra_repr(self):
        return f"{self.weight.shape[0]}, eps={self.eps}"


class _PointwiseConv(torch.autograd.Function):
    """x [B, C_in, H, W] (channels-last memory) -> [B, C_out, H, W] channels-last: a 1x1, stride-1
    convolution as one matrix product over the pixels, [B*H*W, C_in] x [C_in, C_out] + bias."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:  # weight [C_out, C_in]
        B, C, H, W = x.shape
        w, b = weight.to(x.dtype), bias.to(x.dtype)  # autocast leaves out= products alone
        out = torch.empty((B, w.shape[0], H, W), dtype=x.dtype, device=x.device,
                          memory_format=torch.channels_last)
        torch.addmm(b, x.permute(0, 2, 3, 1).reshape(-1, C), w.t(),
                    out=out.permute(0, 2, 3, 1).view(-1, w.shape[0]))
        ctx.save_for_backward(x, w)
        ctx.param_dtypes = weight.dtype, bias.dtype
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, w = ctx.saved_tensors
        B, C, H, W = x.shape
        g = grad.to(w.dtype).permute(0, 2, 3, 1).reshape(-1, w.shape[0])  # [B*H*W, C_out]
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = (g @ w).view(B, H, W, C).permute(0, 3, 1, 2)
        if ctx.needs_input_grad[1]:
            gw = (g.t() @ x.permute(0, 2, 3, 1).reshape(-1, C)).to(ctx.param_dtypes[0])
        if ctx.needs_input_grad[2]:
            gb = g.sum(0).to(ctx.param_dtypes[1])
        return gx, gw, gb


def pointwise_conv(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """A 1x1, stride-1 convolution of channels-last `x` as one matrix product (weight [C_out,
    C_in]). PyTorch's CPU convolution takes a slower im2col path for these, forward and backward.
    The result is a channels-last tensor of its own rather than a permuted view, so the residual
    sum after it can be in place under autograd too (in-place ops on views go through
    as_strided copies in backward)."""
    return _PointwiseConv.apply(x, weight, bias)


def conv_frozen_bn(conv: nn.Conv2d, bn: nn.Module, x: Tensor) -> Tensor:
    """bn(conv(x)) in one convolution when `bn` is frozen: its per-channel affine map is folded
    into the (still trainable) conv weights on the fly, saving a pass over the activations
    forward and backward. Other norms run as usual."""
    if not isinstance(bn, FrozenBatchNorm2d):
        return bn(conv(x))
    scale, shift = bn.scale_shift()
    weight = conv.weight * scale.view(-1, 1, 1, 1).to(conv.weight.dtype)
    bias = (shift if conv.bias is None else conv.bias * scale + shift).to(weight.dtype)
    if (conv.kernel_size == (1, 1) and conv.stride == (1, 1) and conv.groups == 1
            and x.device.type == "cpu" and x.is_contiguous(memory_format=torch.channels_last)):
        return pointwise_conv(x, weight.flatten(1), bias)
    return F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)


# The residual sums are in place, as in torchvision: an out-of-place sum allocates a fresh
# activation-sized buffer per block, and on CPU a large buffer is new memory from the kernel that
# page-faults on first write (a [2, 256, 128, 128] sum: ~10 ms out of place, ~2 ms in place).
class FusedBasicBlock(torchvision.models.resnet.BasicBlock):
    """torchvision's BasicBlock (same parameters and names) with frozen BN folded into convs."""

    def forward(self, x):
        identity = x
        out = self.relu(conv_frozen_bn(self.conv1, self.bn1, x))
        out = conv_frozen_bn(self.conv2, self.bn2, out)
        if self.downsample is not None:
            identity = conv_frozen_bn(self.downsample[0], self.downsample[1], x)
        out += identity
        return self.relu(out)


class FusedBottleneck(torchvision.models.resnet.Bottleneck):
    """torchvision's Bottleneck (same parameters and names) with frozen BN folded into convs."""

    def forward(self, x):
        identity = x
        out = self.relu(conv_frozen_bn(self.conv1, self.bn1, x))
        out = self.relu(conv_frozen_bn(self.conv2, self.bn2, out))
        out = conv_frozen_bn(self.conv3, self.bn3, out)
        if self.downsample is not None:
            identity = conv_frozen_bn(self.downsample[0], self.downsample[1], x)
        out += identity
        return self.relu(out)


class ResNetBody(nn.Module):
    """A torchvision ResNet up to `layer{out_stage}`: [B, 3, H, W] -> [B, C, H/s, W/s], under
    torchvision's module names (conv1, bn1, relu, maxpool, layer1..), the stem's frozen BN folded
    into its convolution like the blocks'."""

    def __init__(self, net: torchvision.models.ResNet, out_stage: int):
        super().__init__()
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.stages = [f"layer{k}" for k in range(1, out_stage + 1)]
        for name in self.stages:
            self.add_module(name, getattr(net, name))

    def forward(self, x):
        x = self.maxpool(self.relu(conv_frozen_bn(self.conv1, self.bn1, x)))
        for name in self.stages:
            x = getattr(self, name)(x)
        return x


_RESNET_LAYOUT = {"resnet18": (FusedBasicBlock, [2, 2, 2, 2]),
                  "resnet34": (FusedBasicBlock, [3, 4, 6, 3]),
                  "resnet50": (FusedBottleneck, [3, 4, 6, 3]),
                  "resnet101": (FusedBottleneck, [3, 4, 23, 3])}


class Backbone(nn.Module):
    """A torchvision feature extractor (`body`: images -> its last stage's features).

    With `channels_last` the convolutions run on NHWC memory (faster oneDNN kernels on CPU,
    tensor cores on GPU); the output is returned in the usual contiguous layout."""

    def __init__(self, body: nn.Module, num_channels: int, stride: int, channels_last: bool = False):
        super().__init__()
        self.body = body
        self.num_channels = num_channels
        self.stride = stride
        self.channels_last = channels_last
        if channels_last:
            body.to(memory_format=torch.channels_last)

    def forward(self, images):  # [B, 3, H, W] -> [B, C, h, w]
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.body(images).contiguous()


def _freeze(module: nn.Module):
    for p in module.parameters():
        p.requires_grad_(False)


def _read_state_dict(path: str) -> Dict[str, torch.Tensor]:
    file = Path(path).expanduser()
    if not file.is_file():
        raise DataError(file, "backbone weights file not found (weights are never downloaded; "
                              "give a local torchvision-format .pth)")
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
    modules in `skip` (stages cut off by `out_stage`)."""
    state = _read_state_dict(path)
    state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    state = {k: v for k, v in state.items() if not k.startswith(tuple(skip))}
    own = body.state_dict()
    state = {k: v for k, v in state.items()
             if k in own or not (k.startswith(("fc.", "classifier.")) or k.endswith("num_batches_tracked"))}
    if not any(k.endswith("num_batches_tracked") for k in own):
        state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    missing = sorted(set(own) - set(state) - {k for k in own if k.endswith("num_batches_tracked")})
    unexpected = sorted(set(state) - set(own))
    bad_shape = [k for k in state if k in own and state[k].shape != own[k].shape]
    if missing or unexpected or bad_shape:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {prefix}{missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {prefix}{unexpected[0]})")
        if bad_shape:
            k = bad_shape[0]
            parts.append(f"shape of {prefix}{k} is {tuple(state[k].shape)}, "
                         f"expected {tuple(own[k].shape)}")
        raise DataError(path, f"not torchvision {arch} weights: " + "; ".join(parts))
    body.load_state_dict(state, strict=False)


def build_resnet(arch: str, weights: Optional[str] = None, frozen_bn: bool = True,
                 frozen_stages: int = 1, dilation: bool = False,
                 out_stage: Optional[int] = None, channels_last: bool = True) -> Backbone:
    """ResNet without avgpool/fc. `frozen_stages`: -1 trains everything, 0 freezes the stem,
    k >= 1 the stem and layer1..layerk (DETR: 1). `dilation` replaces the last stride by
    dilation (DETR's DC5). `out_stage` < 4 returns an earlier stage (stride 2**(out_stage+1))
    and drops the later ones: finer, cheaper features for small images."""
    out_stage = 4 if out_stage is None else out_stage
    if not 1 <= out_stage <= 4:
        raise ConfigError("out_stage", f"must be in 1..4 for ResNets, got {out_stage}")
    if dilation and out_stage != 4:
        raise ConfigError("dilation", "only applies to the last stage (out_stage 4)")
    if arch not in RESNETS:
        raise ConfigError("name", f"unknown ResNet {arch!r}; choose from {', '.join(RESNETS)}")
    if not -1 <= frozen_stages <= 4:
        raise ConfigError("frozen_stages", f"must be in -1..4, got {frozen_stages}")
    if dilation and arch in ("resnet18", "resnet34"):
        raise ConfigError("dilation", f"{arch} (BasicBlock) does not support dilation")
    norm = FrozenBatchNorm2d if frozen_bn else nn.BatchNorm2d
    block, layers = _RESNET_LAYOUT[arch]
    net = torchvision.models.resnet.ResNet(block, layers, norm_layer=norm,
                                           replace_stride_with_dilation=[False, False, dilation])
    body = ResNetBody(net, out_stage)
    if weights:
        load_backbone_weights(body, weights, prefix="", arch=arch,
                              skip=[f"layer{k}." for k in range(out_stage + 1, 5)])
    stages: List[nn.Module] = [nn.ModuleList([body.conv1, body.bn1])]
    stages += [getattr(body, f"layer{k}") for k in range(1, out_stage + 1)]
    for stage in stages[:frozen_stages + 1]:
        _freeze(stage)
    expansion = 1 if arch in ("resnet18", "resnet34") else 4
    channels = 64 * 2 ** (out_stage - 1) * expansion
    stride = 16 if dilation else 2 ** (out_stage + 1)
    return Backbone(body, channels, stride=stride, channels_last=channels_last)


# MobileNetV2 `features` index where each stage ends: stem conv, then the blocks ending at
# strides 2, 4, 8, 16 and 32 (the last including the final 1x1 conv to 1280 channels)
_MOBILENET_STAGE_ENDS = (1, 2, 4, 7, 14, 19)
_MOBILENET_CHANNELS = (32, 16, 24, 32, 96, 1280)


def build_mobilenet_v2(weights: Optional[str] = None, frozen_bn: bool = True,
                       frozen_stages: int = 1, dilation: bool = False,
                       out_stage: Optional[int] = None, channels_last: bool = True) -> Backbone:
    """MobileNetV2 `features` (1280 channels, stride 32). `frozen_stages`: -1 none, 0 the stem
    conv, k the stem and the first k stages (features[1], [2:4], [4:7], [7:14], [14:19]).
    `out_stage` k in 1..5 returns stage k (stride 2**k; 4: 96 channels at stride 16)."""
    if dilation:
        raise ConfigError("dilation", "mobilenet_v2 does not support dilation")
    out_stage = 5 if out_stage is None else out_stage
    if not 1 <= out_stage <= 5:
        raise ConfigError("out_stage", f"must be in 1..5 for mobilenet_v2, got {out_stage}")
    if not -1 <= frozen_stages <= out_stage:
        raise ConfigError("frozen_stages", f"must be in -1..{out_stage}, got {frozen_stages}")
    norm = FrozenBatchNorm2d if frozen_bn else nn.BatchNorm2d
    body = torchvision.models.mobilenet_v2(weights=None, norm_layer=norm).features
    if weights:
        load_backbone_weights(body, weights, prefix="features.", arch="mobilenet_v2")
    body = body[:_MOBILENET_STAGE_ENDS[out_stage]]
    if frozen_stages >= 0:
        _freeze(body[:_MOBILENET_STAGE_ENDS[frozen_stages]])
    return Backbone(body, _MOBILENET_CHANNELS[out_stage], stride=2 ** out_stage,
                    channels_last=channels_last)


def build(arch: str, cfg) -> Backbone:
    """Build `arch` (resnet18/34/50/101, mobilenet_v2) from a node shaped like
    `trackformer.builtin_plugins.backbones.BackboneConfig`."""
    kwargs = dict(weights=cfg.weights or None, frozen_bn=cfg.frozen_bn,
                  frozen_stages=cfg.frozen_stages, dilation=cfg.dilation,
                  out_stage=getattr(cfg, "out_stage", None),
                  channels_last=getattr(cfg, "channels_last", True))
    if arch == "mobilenet_v2":
        return build_mobilenet_v2(**kwargs)
    return build_resnet(arch, **kwargs)
