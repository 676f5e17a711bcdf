"""Settings of Deformable DETR's components: plain dataclasses, torch-free, registered by `hooks.py`.

The official COCO settings (Zhu et al. 2021, fundamentalvision/Deformable-DETR `main.py`) are the
defaults. The matcher reuses DETR's `HungarianConfig` with the focal cost's class weight 2; the focal
criterion has no no-object class, so DETR's `SetCriterionConfig` (`eos_coef`) does not fit it.
"""
from dataclasses import dataclass
from typing import Any, Optional

from trackformer.errors import ConfigError
from trackformer.schema import component

from trackformer_detr.settings import HungarianConfig


def _multi_scale_resnet50():
    # the official backbone: ResNet-50 layer2..layer4 (strides 8, 16, 32); a 4th level is made from res5
    return {"name": "resnet50", "return_levels": ["res3", "res4", "res5"]}


@dataclass
class DeformableDETRConfig:
    backbone: Any = component("backbones", default_factory=_multi_scale_resnet50)
    num_classes: Optional[int] = None  # None: from the data; sigmoid outputs, no no-object column
    num_queries: int = 300
    hidden_dim: int = 256
    num_feature_levels: int = 4  # the backbone's levels, then stride-2 convs on the last one
    enc_layers: int = 6
    dec_layers: int = 6
    nheads: int = 8
    n_points: int = 4  # sampling points per head and level, encoder and decoder
    dim_feedforward: int = 1024
    dropout: float = 0.1
    with_box_refine: bool = False  # every decoder layer refines the previous layer's boxes
    two_stage: bool = False  # the encoder proposes the decoder's reference boxes (needs with_box_refine)
    aux_loss: bool = True
    weights: Optional[str] = None  # checkpoint to load after building (official Deformable DETR files work)
    weights_strict: bool = True

    def __post_init__(self):
        if self.num_classes is not None and self.num_classes < 1:
            raise ConfigError("num_classes", f"must be >= 1, got {self.num_classes}")
        for name in ("num_queries", "num_feature_levels", "enc_layers", "dec_layers", "nheads", "n_points",
                     "dim_feedforward"):
            if getattr(self, name) < 1:
                raise ConfigError(name, f"must be >= 1, got {getattr(self, name)}")
        if self.hidden_dim < 32 or self.hidden_dim % 32:
            raise ConfigError("hidden_dim", f"must be a multiple of 32 (GroupNorm(32) on every level), "
                                            f"got {self.hidden_dim}")
        if self.hidden_dim % self.nheads:
            raise ConfigError("nheads", f"{self.nheads} does not divide hidden_dim {self.hidden_dim}")
        if not 0 <= self.dropout < 1:
            raise ConfigError("dropout", f"must be in [0, 1), got {self.dropout}")
        if self.two_stage and not self.with_box_refine:
            raise ConfigError("two_stage", "needs with_box_refine: true (the proposal head is the decoder's "
                                           "last box head)")


@dataclass
class FocalHungarianConfig(HungarianConfig):
    cost_class: float = 2.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0


@dataclass
class DeformableCriterionConfig:
    focal_alpha: float = 0.25  # weight of the positive term of the sigmoid focal loss
    focal_gamma: float = 2.0
    class_weight: float = 2.0
    bbox_weight: float = 5.0
    giou_weight: float = 2.0

    def __post_init__(self):
        if not 0 <= self.focal_alpha <= 1:
            raise ConfigError("focal_alpha", f"must be in [0, 1], got {self.focal_alpha}")
        if self.focal_gamma < 0:
            raise ConfigError("focal_gamma", f"must be >= 0, got {self.focal_gamma}")
