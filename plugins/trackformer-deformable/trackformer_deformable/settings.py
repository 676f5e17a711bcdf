"""Settings of Deformable DETR's components: plain dataclasses, torch-free, registered by `hooks.py`.

The official COCO settings (Zhu et al. 2021, fundamentalvision/Deformable-DETR `main.py`) are the
defaults. The matcher reuses DETR's `HungarianConfig` with the focal cost's class weight 2; the focal
criterion has no no-object class, so DETR's `SetCriterionConfig` (`eos_coef`) does not fit it.
"""
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

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


@dataclass
class DeformableTrackFormerConfig(DeformableDETRConfig):
    """TrackFormer on Deformable DETR (Meinhardt et al. 2022, the released MOT17/MOT20 models). Box
    refinement is on; two-stage is refused (TrackFormer never supported it with track queries)."""
    with_box_refine: bool = True
    multi_frame: bool = True  # the encoder runs on the previous and the current frame; the decoder reads both
    # quirk (a): divide 2-d references' sampling offsets by (W, H) ("wh", correct) or (H, W) ("hw", the
    # released TrackFormer models were trained so)
    offset_normalizer: Literal["wh", "hw"] = "wh"
    # quirk (b): the decoder's memory as [previous, current] (correct) or [current, previous] while level
    # shapes, masks and level embeddings stay [previous, current] (the released models were trained so)
    memory_order: Literal["previous_current", "current_previous"] = "previous_current"
    overflow_boxes: bool = False  # boxes may leave the image: post-processing never clips them
    fn_prob: float = 0.4  # drop each track query in training (false negatives)
    fp_prob: float = 0.1  # add up to ceil(fp_prob x T) background queries (false positives)
    # matching of the previous frame's outputs to its ground truth, which picks the track queries
    prev_matcher: FocalHungarianConfig = field(default_factory=FocalHungarianConfig)

    def __post_init__(self):
        super().__post_init__()
        if self.two_stage:
            raise ConfigError("two_stage", "is not supported with track queries (the released TrackFormer "
                                           "models are box refine without two-stage)")
        if not self.with_box_refine:
            raise ConfigError("with_box_refine", "must be true: track queries are refined like object queries")
        if self.multi_frame and (self.hidden_dim % 3 or (self.hidden_dim // 3) % 2):
            raise ConfigError("hidden_dim", f"multi_frame needs a multiple of 6 (3-D sine: d/3 even features "
                                            f"per axis), got {self.hidden_dim}")
        for name in ("fn_prob", "fp_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(name, f"must be in [0, 1], got {getattr(self, name)}")
