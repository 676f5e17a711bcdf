"""Dropout whose CPU mask costs a quarter of torch's random draws.

On CPU, `torch.nn.functional.dropout` draws one Bernoulli sample per element (`bernoulli_`), and
`F.scaled_dot_product_attention` with `dropout_p > 0` leaves its fused kernel for the math path
that does the same over the whole attention matrix. In DETR's training step those draws alone cost
more than every elementwise op of the transformer together. Here each 64-bit draw from torch's
generator gives four 16-bit lanes, each compared against `round(p * 2**16)`: four elements per
draw. The drop probability is `round(p * 2**16) / 2**16` (0.1 -> 0.1000061) and survivors are
scaled by the inverse of the keep probability actually used, so the expectation is unchanged.
Seeding works as usual (`torch.manual_seed`). On GPUs torch's own fused dropout is used.
"""
import math

import torch
import torch.nn as nn
from torch import Tensor

_LANES = 2 ** 16


def keep_mask(shape, p: float, device=None):
    """-> (bool mask of `shape`, True where an element is kept; the keep probability used)."""
    drop = round(p * _LANES)
    n = math.prod(shape)
    words = torch.randint(-2 ** 63, 2 ** 63 - 1, ((n + 3) // 4,), dtype=torch.int64, device=device)
    lanes = words.view(torch.int16)[:n]  # uniform over [-2**15, 2**15)
    return (lanes >= drop - _LANES // 2).view(shape), (_LANES - drop) / _LANES


class _MaskedScale(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, keep: Tensor, scale: float) -> Tensor:
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return torch.where(keep, x, 0.0).mul_(scale)  # one pass cheaper than x * keep

    @staticmethod
    def backward(ctx, grad: Tensor):
        (keep,) = ctx.saved_tensors
        return torch.where(keep, grad, 0.0).mul_(ctx.scale), None, None


def dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """Like `F.dropout(x, p, training)`, with the cheaper mask on CPU."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or p >= 1.0:
        return nn.functional.dropout(x, p, training)
    keep, keep_prob = keep_mask(x.shape, p, device=x.device)
    return _MaskedScale.apply(x, keep, 1.0 / keep_prob)


class Dropout(nn.Dropout):
    """`nn.Dropout` (same constructor, no state) computing with `dropout` above."""

    def forward(self, x: Tensor) -> Tensor:
        if self.inplace:
            return super().forward(x)
        return dropout(x, self.p, self.training)
