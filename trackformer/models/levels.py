"""Named feature levels: what a backbone returns and declares (see `register_backbones`).

A backbone maps images [B, 3, H, W] to a dict of feature maps {name: [B, C_l, H/s_l, W/s_l]}, fine
to coarse, and declares them in `levels`: {name: Level(channels=C_l, stride=s_l)}, the same names in
the same order. Consumers ask for levels by name and read channels from the declaration; the
padding mask reaches every level through `level_masks`, never through the consumer's own code.
"""
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from trackformer.errors import ConfigError


@dataclass(frozen=True)
class Level:
    channels: int
    stride: int


def select_levels(available: Dict[str, Level], names: Optional[Sequence[str]]) -> Dict[str, Level]:
    """The levels a backbone returns for the setting `return_levels`: None = the last one only.
    Order follows `available` (fine to coarse) whatever the order of `names`."""
    if names is None:
        last = list(available)[-1]
        return {last: available[last]}
    if not names:
        raise ConfigError("return_levels", "is empty; give level names or null (the last level)")
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ConfigError("return_levels", f"unknown level {unknown[0]!r}; this backbone has "
                                           f"{', '.join(available)}")
    return {n: level for n, level in available.items() if n in names}


def last_level(backbone: nn.Module) -> str:
    """The name of the coarsest level a backbone returns (what DETR-style consumers take)."""
    return list(backbone.levels)[-1]


def level_masks(mask: Tensor, features: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """Padding mask [B, H, W] (True on padding) -> {name: [B, h_l, w_l]} for every feature map
    [B, C_l, h_l, w_l], by nearest-neighbour sampling (a position is padding where its top-left
    pixel is)."""
    as_float = mask[None].float()  # [1, B, H, W]
    return {name: F.interpolate(as_float, size=f.shape[-2:])[0].to(torch.bool)
            for name, f in features.items()}


class TappedSequential(nn.Sequential):
    """An nn.Sequential (same children, same state-dict keys) that returns the outputs of some of
    its children by name: `taps` {child index: level name}. Runs only up to the last tap."""

    def __init__(self, layers: List[nn.Module], taps: Dict[int, str]):
        super().__init__(*layers)
        self.taps = dict(sorted(taps.items()))

    def forward(self, x: Tensor) -> Dict[str, Tensor]:
        out = {}
        last = max(self.taps)
        for i, layer in enumerate(self):
            x = layer(x)
            if i in self.taps:
                out[self.taps[i]] = x
            if i == last:
                break
        return out
