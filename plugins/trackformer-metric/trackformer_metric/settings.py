"""Settings of the intra-batch metric learning model and loss: plain dataclasses, torch-free, so
`hooks.py` registers them at start-up."""
from dataclasses import dataclass
from typing import Any, Literal, Optional

from trackformer.errors import ConfigError
from trackformer.schema import component


@dataclass
class IntraBatchConfig:
    backbone: Any = component("backbones")
    num_classes: Optional[int] = None  # default: the training data's num_classes
    embed_dim: int = 512
    pooling: Literal["max", "avg"] = "max"  # global pooling of the backbone's last feature map
    mpn_layers: int = 1  # 0 disables the message passing network (the no-MPN baseline)
    mpn_heads: int = 2
    mpn_ffn: int = 2048
    mpn_dropout: float = 0.1
    refine_k: int = 0  # test-time refinement over k reciprocal neighbours (the paper's optional step; 0: off)
    weights: Optional[str] = None  # a trained checkpoint to start from / evaluate
    weights_strict: bool = True

    def __post_init__(self):
        if self.mpn_layers > 0 and self.embed_dim % self.mpn_heads:
            raise ConfigError("mpn_heads", f"{self.mpn_heads} heads do not divide embed_dim {self.embed_dim}")


@dataclass
class IntraBatchLossConfig:
    temperature: float = 0.2
    label_smoothing: float = 0.1
    backbone_weight: float = 1.0
    mpn_weight: float = 1.0

    def __post_init__(self):
        if self.temperature <= 0:
            raise ConfigError("temperature", f"must be > 0, got {self.temperature}")
