"""Settings of DETR's components: plain dataclasses, torch-free, so `hooks.py` registers them at
start-up and plugins that extend a DETR component (TrackFormer) reuse them by subclassing.

The architecture owns what must agree with it: `num_classes` and `aux_loss` are set here once and the
criterion reads them from the built model.
"""
from dataclasses import dataclass
from typing import Any, Literal, Optional

from trackformer.errors import ConfigError
from trackformer.schema import component


@dataclass
class TransformerStackConfig:
    """A stack of post-norm layers: `model.encoder` / `model.decoder`."""
    num_layers: int = 6
    nhead: int = 8
    dim_feedforward: int = 2048
    dropout: float = 0.1

    def __post_init__(self):
        for name in ("num_layers", "nhead", "dim_feedforward"):
            if getattr(self, name) < 1:
                raise ConfigError(name, f"must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.dropout < 1:
            raise ConfigError("dropout", f"must be in [0, 1), got {self.dropout}")


@dataclass
class DETRConfig:
    backbone: Any = component("backbones", "resnet50")
    encoder: Any = component("encoders", "detr_encoder")
    decoder: Any = component("decoders", "detr_decoder")
    num_classes: Optional[int] = None  # None: from the data (`num_classes` of the training split)
    num_queries: int = 100
    hidden_dim: int = 256
    position_embedding: Literal["sine", "learned"] = "sine"
    aux_loss: bool = True  # decoder layers before the last predict too, and the loss sees them
    weights: Optional[str] = None  # checkpoint to load after building (official DETR files work)
    weights_strict: bool = True

    def __post_init__(self):
        if self.num_classes is not None and self.num_classes < 1:
            raise ConfigError("num_classes", f"must be >= 1, got {self.num_classes}")
        if self.num_queries < 1:
            raise ConfigError("num_queries", f"must be >= 1, got {self.num_queries}")
        if self.hidden_dim < 2 or self.hidden_dim % 2:
            raise ConfigError("hidden_dim", f"must be even (half per image axis), got {self.hidden_dim}")


@dataclass
class HungarianConfig:
    cost_class: float = 1.0
    cost_bbox: float = 5.0
    cost_giou: float = 2.0


@dataclass
class SetCriterionConfig:
    eos_coef: float = 0.1  # CE weight of the no-object class
    ce_weight: float = 1.0
    bbox_weight: float = 5.0
    giou_weight: float = 2.0
