"""A small convolutional backbone for the synthetic tracking config: trains from scratch on CPU in
minutes, where an ImageNet ResNet would need pretrained weights and far more compute."""
from typing import Optional, Sequence

import torch.nn as nn

from trackformer.models.levels import Level, TappedSequential, select_levels

from .settings import SmallCNNConfig


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class SmallCNN(nn.Module):
    """[B, 3, H, W] -> {"stride2": [B, widths[0], H/2, W/2], ..., "stride{2**n}": [B, widths[-1],
    H/2**n, W/2**n]}: one stride-2 block per width, each followed by `depth - 1` stride-1 blocks;
    `return_levels` picks the levels (None: the last)."""

    def __init__(self, widths=(32, 64, 96), depth: int = 2,
                 return_levels: Optional[Sequence[str]] = None):
        super().__init__()
        layers, cin, available, ends = [], 3, {}, {}
        for k, w in enumerate(widths, start=1):
            layers.append(_block(cin, w, 2))
            layers.extend(_block(w, w, 1) for _ in range(depth - 1))
            available[f"stride{2 ** k}"] = Level(w, 2 ** k)
            ends[f"stride{2 ** k}"] = len(layers) - 1
            cin = w
        self.levels = select_levels(available, return_levels)
        self.body = TappedSequential(layers, {ends[name]: name for name in self.levels})

    def forward(self, images):  # [B, 3, H, W] -> {level: [B, C, h, w]}
        return self.body(images)


def build(settings: SmallCNNConfig, **deps) -> SmallCNN:
    """The `small_cnn` backbone from its settings."""
    return SmallCNN(tuple(settings.widths), settings.depth, settings.return_levels)
