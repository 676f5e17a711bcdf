"""An opt-in module-surgery pass that makes float32 training faster on CPU, outputs unchanged.

`optimize_for_cpu_training(model)` rewrites the model in place (switched on by the train setting
`cpu_training_pass`). Every swap changes a module's class only, so parameters, buffers and
state-dict keys stay exactly as they were: checkpoints of the rewritten model load into the
plain one and back. What it does, each kept because it measurably shortens the step
(bench/bench_detr.py):

- torchvision ResNet blocks and stems whose BatchNorm is frozen fold its per-channel affine map into
  the (still trainable) convolution weights on the fly: one pass over the activations fewer,
  forward and backward.
- 1x1 stride-1 convolutions on channels-last CPU tensors run as one matrix product over the pixels
  (PyTorch's CPU convolution sends them to a slower im2col path), through an autograd function
  whose result is not a view, so the residual sums after it stay in place.
- nn.Dropout draws its mask four elements per 64-bit random draw (`trackformer.ops.dropout`;
  the drop probability is p rounded to 1/65536).
- a module whose class names a `cpu_training_variant` (a subclass with the same parameters, e.g.
  DETR's attention) becomes that variant.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torch import Tensor

from trackformer.ops.dropout import Dropout

from .backbones import FrozenBatchNorm2d, ResNetBody


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
    """A 1x1, stride-1 convolution of channels-last `x` (weight [C_out, C_in]) as one matrix
    product; the result is a channels-last tensor of its own, not a permuted view."""
    return _PointwiseConv.apply(x, weight, bias)


def conv_frozen_bn(conv: nn.Conv2d, bn: nn.Module, x: Tensor) -> Tensor:
    """bn(conv(x)) as one convolution when `bn` is frozen (its affine map folded into the conv
    weights); other norms run as usual."""
    if not isinstance(bn, FrozenBatchNorm2d):
        return bn(conv(x))
    scale, shift = bn.scale_shift()
    weight = conv.weight * scale.view(-1, 1, 1, 1).to(conv.weight.dtype)
    bias = (shift if conv.bias is None else conv.bias * scale + shift).to(weight.dtype)
    if (conv.kernel_size == (1, 1) and conv.stride == (1, 1) and conv.groups == 1
            and x.device.type == "cpu" and x.is_contiguous(memory_format=torch.channels_last)):
        return pointwise_conv(x, weight.flatten(1), bias)
    return F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)


# The residual sums are in place, as in torchvision.
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


class FusedResNetBody(ResNetBody):
    """ResNetBody with the stem's frozen BN folded into its convolution."""

    def stem(self, x):
        return self.maxpool(self.relu(conv_frozen_bn(self.conv1, self.bn1, x)))


_FUSED = {torchvision.models.resnet.BasicBlock: FusedBasicBlock,
          torchvision.models.resnet.Bottleneck: FusedBottleneck, ResNetBody: FusedResNetBody}


def optimize_for_cpu_training(model: nn.Module) -> nn.Module:
    """Swap, in place, the classes of the modules listed in this module's docstring for their
    faster CPU training variants; returns `model`. Parameters and state-dict keys are unchanged."""
    for module in model.modules():
        cls = type(module)
        if cls in _FUSED:
            module.__class__ = _FUSED[cls]
        elif cls is nn.Dropout:
            module.__class__ = Dropout
        elif getattr(cls, "cpu_training_variant", None) is not None:
            module.__class__ = cls.cpu_training_variant
    return model
