"""A complete third-party plugin: one backbone, usable as `backbone: {name: tiny_cnn, width: 32}`."""
from dataclasses import dataclass

from trackformer import hookimpl


@dataclass
class TinyCNNConfig:
    width: int = 32
    stride: int = 4


def build_tiny_cnn(settings: TinyCNNConfig, **deps):
    """The factory: receives the validated settings as a `TinyCNNConfig`."""
    import torch.nn as nn

    from trackformer.models.levels import Level

    class TinyCNN(nn.Module):
        """[B, 3, H, W] -> {"stride4": [B, width, H/4, W/4]} (for stride 4), declared in `levels`."""

        def __init__(self, width: int, stride: int):
            super().__init__()
            self.name = f"stride{stride}"
            self.levels = {self.name: Level(channels=width, stride=stride)}
            self.body = nn.Sequential(nn.Conv2d(3, width, 3, stride, 1), nn.ReLU(), nn.Conv2d(width, width, 3, 1, 1))

        def forward(self, images):
            return {self.name: self.body(images)}

    return TinyCNN(settings.width, settings.stride)


@hookimpl
def register_backbones(register):
    register("tiny_cnn", build_tiny_cnn, schema=TinyCNNConfig, help="two-conv CNN from the example plugin")
