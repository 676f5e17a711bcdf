"""A small convolutional backbone for the synthetic tracking config: trains from scratch on CPU in
minutes, where an ImageNet ResNet would need pretrained weights and far more compute."""
import torch.nn as nn

from .settings import SmallCNNConfig


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class SmallCNN(nn.Module):
    """[B, 3, H, W] -> [B, C, H/s, W/s] with s = 2 ** len(widths) (one stride-2 block per width,
    each followed by `depth - 1` stride-1 blocks)."""

    def __init__(self, widths=(32, 64, 96), depth: int = 2):
        super().__init__()
        layers, cin = [], 3
        for w in widths:
            layers.append(_block(cin, w, 2))
            layers.extend(_block(w, w, 1) for _ in range(depth - 1))
            cin = w
        self.body = nn.Sequential(*layers)
        self.num_channels = cin
        self.stride = 2 ** len(widths)

    def forward(self, images):
        return self.body(images)


def build(settings: SmallCNNConfig, **deps) -> SmallCNN:
    """The `small_cnn` backbone from its settings."""
    return SmallCNN(tuple(settings.widths), settings.depth)
