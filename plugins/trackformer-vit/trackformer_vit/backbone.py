"""The ViT as a backbone of the multi-scale contract (`trackformer.models.levels`).

Without a pyramid it returns the patch-token map `stride{p}` [B, D, H/p, W/p]. With
`pyramid_channels > 0` it returns ViTDet's simple feature pyramid (Li et al. 2022) built from that one
map, levels named `p{log2 stride}`:

    x4   ConvTranspose 2x2 s2 (D -> D/2), LN, GELU, ConvTranspose 2x2 s2 (D/2 -> D/4)   stride p/4
    x2   ConvTranspose 2x2 s2 (D -> D/2)                                            stride p/2
    x1   identity                                                                   stride p
    x0.5 MaxPool 2x2                                                                stride 2p
    then per level: 1x1 conv -> C + LN, 3x3 conv C + LN (LN over channels, no conv bias beside a norm)

(strides 4/8/16/32 at p = 16). Only the levels in `return_levels` are built and run.
The padding mask [B, H, W], when given, reaches the transformer as an attention mask.
"""
import math
from typing import Dict, List, Optional, Sequence

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from trackformer.models.levels import Level, select_levels

from .settings import ViTConfig
from .vit import VisionTransformer


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a [B, C, H, W] map."""

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias,
                            self.eps).permute(0, 3, 1, 2)


def _scale_branch(scale: float, dim: int) -> nn.Module:
    if scale == 4:
        return nn.Sequential(nn.ConvTranspose2d(dim, dim // 2, 2, stride=2), LayerNorm2d(dim // 2), nn.GELU(),
                             nn.ConvTranspose2d(dim // 2, dim // 4, 2, stride=2))
    if scale == 2:
        return nn.ConvTranspose2d(dim, dim // 2, 2, stride=2)
    if scale == 1:
        return nn.Identity()
    return nn.MaxPool2d(2, stride=2)


_SCALES = (4, 2, 1, 0.5)
_IN_CHANNELS = {4: 4, 2: 2, 1: 1, 0.5: 1}  # D divided by


class SimpleFeaturePyramid(nn.Module):
    """{level: [B, C, H/s, W/s]} from the patch map [B, D, h, w]; `scales` a subset of 4, 2, 1, 0.5."""

    def __init__(self, dim: int, channels: int, names: Sequence[str], scales: Sequence[float]):
        super().__init__()
        self.names = list(names)
        self.stages = nn.ModuleList()
        for scale in scales:
            c_in = dim // _IN_CHANNELS[scale]
            self.stages.append(nn.Sequential(
                _scale_branch(scale, dim),
                nn.Conv2d(c_in, channels, 1, bias=False), LayerNorm2d(channels),
                nn.Conv2d(channels, channels, 3, padding=1, bias=False), LayerNorm2d(channels)))

    def forward(self, x: Tensor) -> Dict[str, Tensor]:
        return {name: stage(x) for name, stage in zip(self.names, self.stages)}


def pyramid_levels(patch_size: int, channels: int) -> Dict[str, Level]:
    """p{log2 s}: Level(channels, s) for s = p/4, p/2, p, 2p, fine to coarse."""
    strides = [int(patch_size / scale) for scale in _SCALES]
    return {f"p{int(math.log2(s))}": Level(channels, s) for s in strides}


class ViTBackbone(nn.Module):
    def __init__(self, vit: VisionTransformer, levels: Dict[str, Level],
                 pyramid: Optional[SimpleFeaturePyramid] = None):
        super().__init__()
        self.vit = vit
        self.pyramid = pyramid
        self.levels = dict(levels)

    def forward(self, images: Tensor, mask: Optional[Tensor] = None) -> Dict[str, Tensor]:
        # images [B, 3, H, W], mask [B, H, W] (True on padding) -> {name: [B, C, H/s, W/s]}
        fmap = self.vit.feature_map(images, mask)  # [B, D, H/p, W/p]
        if self.pyramid is None:
            return {next(iter(self.levels)): fmap}
        return self.pyramid(fmap)


def build_vit_backbone(settings: ViTConfig) -> ViTBackbone:
    from .layouts import load_vit_weights

    s = settings
    vit = VisionTransformer(s.image_size, s.patch_size, s.embed_dim, s.depth, s.num_heads, s.mlp_ratio,
                            s.qkv_bias, s.layer_norm_eps)
    if s.weights:
        load_vit_weights(vit, s.weights)
    if s.frozen:
        vit.requires_grad_(False)
    return_levels: Optional[List[str]] = list(s.return_levels) if s.return_levels is not None else None
    if not s.pyramid_channels:
        levels = select_levels({f"stride{s.patch_size}": Level(s.embed_dim, s.patch_size)}, return_levels)
        return ViTBackbone(vit, levels)
    available = pyramid_levels(s.patch_size, s.pyramid_channels)
    levels = select_levels(available, return_levels)
    scales = [scale for scale, name in zip(_SCALES, available) if name in levels]
    return ViTBackbone(vit, levels, SimpleFeaturePyramid(s.embed_dim, s.pyramid_channels, list(levels), scales))


def build(settings: ViTConfig, **deps) -> ViTBackbone:
    """A `vit_tiny` / `vit_small` / `vit_base` backbone from its settings."""
    return build_vit_backbone(settings)
