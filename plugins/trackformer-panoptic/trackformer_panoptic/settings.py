"""Settings of the panoptic components: plain dataclasses, torch-free (registered at start-up)."""
from dataclasses import dataclass, field
from typing import List, Literal, Optional

from trackformer.errors import ConfigError
from trackformer_detr.settings import DETRConfig, SetCriterionConfig


@dataclass
class DETRPanopticConfig(DETRConfig):
    """DETR (`detr.*`) + the attention map (`bbox_attention.*`) + the mask head (`mask_head.*`).
    The backbone returns DETR's level last and up to three finer ones for the mask head's adapters
    (official: ResNet return_levels [res2, res3, res4, res5])."""
    mask_heads: int = 8  # heads of the attention map
    mask_dims: List[int] = field(default_factory=lambda: [128, 64, 32, 16])  # lay2..lay5 widths
    # what the mask head receives of the attention maps: "softmax" as they are (official; every
    # value ~ 1 / (heads·h·w), a weak query signal next to the features), "mean" times heads·h·w
    # (average 1: small models learn masks in hundreds of steps instead of tens of thousands)
    attention_scale: Literal["softmax", "mean"] = "softmax"
    detr_weights: Optional[str] = None  # a detection checkpoint loaded strictly into `detr` (stage 2)
    threshold: float = 0.85  # panoptic post-processing: keep queries whose best class scores above
    is_thing_max_label: Optional[int] = None  # labels <= this are things (official: 90); None: from the data

    def __post_init__(self):
        super().__post_init__()
        if self.mask_heads < 1 or self.hidden_dim % self.mask_heads:
            raise ConfigError("mask_heads", f"must divide hidden_dim {self.hidden_dim}, got {self.mask_heads}")
        if (self.hidden_dim + self.mask_heads) % 8:
            raise ConfigError("mask_heads", f"hidden_dim + mask_heads must be a multiple of 8 (GroupNorm), "
                                            f"got {self.hidden_dim + self.mask_heads}")
        if len(self.mask_dims) != 4 or any(d < 8 or d % 8 for d in self.mask_dims):
            raise ConfigError("mask_dims", f"four multiples of 8 expected, got {list(self.mask_dims)}")
        if not 0 <= self.threshold < 1:
            raise ConfigError("threshold", f"must be in [0, 1), got {self.threshold}")


@dataclass
class PanopticCriterionConfig(SetCriterionConfig):
    """DETR's set loss + sigmoid focal (alpha 0.25, gamma 2) and dice losses on matched queries."""
    mask_weight: float = 1.0
    dice_weight: float = 1.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0


@dataclass
class PanopticEvalConfig:
    batch_size: int = 8
    write_predictions: bool = True  # PNGs + JSON under <output_dir>/panoptic_predictions
    segm: bool = False  # also instance mask AP of the things (pycocotools segm): segm_AP, segm_AP50, ...


@dataclass
class PanopticAugmentConfig:
    scales: List[int] = field(default_factory=lambda: [480, 512, 544, 576, 608, 640, 672, 704, 736, 768, 800])
    max_size: int = 1333
    val_size: int = 800
    hflip: bool = True
    crop: bool = True
    crop_scales: List[int] = field(default_factory=lambda: [400, 500, 600])
    crop_size: List[int] = field(default_factory=lambda: [384, 600])


@dataclass
class CocoPanopticDataConfig(PanopticAugmentConfig):
    root: str = "data/coco"
    train_images: str = "train2017"
    train_annotations: str = "annotations/panoptic_train2017.json"
    train_panoptic: Optional[str] = None  # PNG folder; None: the JSON path without .json
    val_images: Optional[str] = "val2017"
    val_annotations: Optional[str] = "annotations/panoptic_val2017.json"
    val_panoptic: Optional[str] = None
    test_images: Optional[str] = None  # None: the val split
    test_annotations: Optional[str] = None
    test_panoptic: Optional[str] = None
    label_mapping: str = "category_id"  # official: category ids as labels (250-way head); or contiguous
    subset: Optional[int] = None

    def __post_init__(self):
        if self.label_mapping not in ("category_id", "contiguous"):
            raise ConfigError("label_mapping", f"must be category_id or contiguous, got {self.label_mapping!r}")


@dataclass
class SceneSpec:
    """What the generated panoptic scenes hold (see trackformer_panoptic.shapes)."""
    num_train: int = 1000
    num_val: int = 50
    num_test: int = 100
    image_size: int = 96
    min_things: int = 1
    max_things: int = 4
    thing_min_size: int = 16
    thing_max_size: int = 40
    seed: int = 0

    def __post_init__(self):
        if self.min_things < 0 or self.max_things < self.min_things:
            raise ConfigError("max_things", f"need 0 <= min_things <= max_things, got {self.min_things}, "
                                            f"{self.max_things}")
        if self.image_size < 32:
            raise ConfigError("image_size", f"must be >= 32, got {self.image_size}")


@dataclass
class PanopticShapesConfig(SceneSpec, PanopticAugmentConfig):
    """Generated panoptic scenes as a data set."""
    root: Optional[str] = None  # where to generate; None: ~/.cache/trackformer/panoptic-shapes-<params>
