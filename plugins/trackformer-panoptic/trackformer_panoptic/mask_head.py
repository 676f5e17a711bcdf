"""DETR's `MaskHeadSmallConv`: an FPN-style convolutional head turning, per query, the projected
backbone features + that query's attention maps into a mask logit map at the finest level's stride.

Input per query: the projected coarsest features `src` [B, D, h, w] (before the encoder) repeated
for each query, concatenated with the query's N attention maps -> D + N channels. Then

    lay1 (D+N -> D+N), lay2 (-> dims[0])                                   at the coarsest stride
    + adapter1(fpn[0]) after nearest upsampling, lay3 (-> dims[1])          e.g. stride 16 (res4)
    + adapter2(fpn[1]), lay4 (-> dims[2])                                   stride 8 (res3)
    + adapter3(fpn[2]), lay5 (-> dims[3]), out_lay (-> 1, no norm)          stride 4 (res2)

3×3 convolutions (kaiming-uniform a = 1, zero bias) + GroupNorm(8) + ReLU; 1×1 adapters. The
official widths (D = 256, N = 8) are dims = [128, 64, 32, 16]: 1,202,073 parameters with ResNet-50.
A backbone with fewer finer levels (e.g. res2..res4 for small images) gets fewer adapters; the
lay blocks after the last adapter run at its resolution.
"""
from typing import List, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

GROUPS = 8


def _expand(x: Tensor, length: int) -> Tensor:
    """[B, C, h, w] -> [B·length, C, h, w], each image repeated `length` times in a row."""
    return x.unsqueeze(1).repeat(1, int(length), 1, 1, 1).flatten(0, 1)


class MaskHeadSmallConv(nn.Module):
    def __init__(self, dim: int, fpn_dims: Sequence[int], dims: Sequence[int] = (128, 64, 32, 16)):
        super().__init__()
        if not 1 <= len(fpn_dims) <= 3 or len(dims) != 4:
            raise ValueError("the mask head takes one to three finer levels and four widths")
        for width in [dim, *dims]:
            if width % GROUPS:
                raise ValueError(f"width {width} is not a multiple of GroupNorm's {GROUPS} groups")
        widths = [dim, dim, *dims]  # input of lay1, outputs of lay1..lay5
        for i in range(1, 6):
            setattr(self, f"lay{i}", nn.Conv2d(widths[i - 1], widths[i], 3, padding=1))
            setattr(self, f"gn{i}", nn.GroupNorm(GROUPS, widths[i]))
        self.out_lay = nn.Conv2d(dims[3], 1, 3, padding=1)
        self.dim = dim
        # registration order of the official module: lay1..5/gn1..5 interleaved, out_lay, adapters
        for i, channels in enumerate(fpn_dims):
            setattr(self, f"adapter{i + 1}", nn.Conv2d(channels, dims[i], 1))
        self.num_fpns = len(fpn_dims)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=1)
                nn.init.constant_(m.bias, 0)

    def _block(self, i: int, x: Tensor) -> Tensor:
        return F.relu(getattr(self, f"gn{i}")(getattr(self, f"lay{i}")(x)))

    def forward(self, x: Tensor, bbox_mask: Tensor, fpns: List[Tensor]) -> Tensor:
        """x [B, D, h, w], bbox_mask [B, Q, N, h, w], fpns finest-last [B, C_i, h_i, w_i] (strides
        16, 8, 4 for ResNet) -> mask logits [B·Q, 1, h_3, w_3] (query-major within each image)."""
        Q = bbox_mask.shape[1]
        x = torch.cat([_expand(x, Q), bbox_mask.flatten(0, 1)], 1)  # [B·Q, D+N, h, w]
        x = self._block(2, self._block(1, x))
        for i in range(3):  # lay3..lay5, each after a finer level's adapter while there are levels
            if i < self.num_fpns:
                cur = getattr(self, f"adapter{i + 1}")(fpns[i])  # [B, dims[i], h_i, w_i]
                if cur.shape[0] != x.shape[0]:
                    cur = _expand(cur, x.shape[0] // cur.shape[0])
                x = cur + F.interpolate(x, size=cur.shape[-2:], mode="nearest")
            x = self._block(i + 3, x)
        return self.out_lay(x)
