"""Builtin COCO-format detection data (`coco`, `shapes`) and COCO box AP (`coco` evaluator).

Data sets yield (image [3, H, W], target) with DETR's augmentations; their `collate_fn` pads to
({"images", "mask"}, [targets]). The evaluator calls the model's `predict(inputs, targets)`
(boxes in original pixels, as `trackformer_detr`'s DETR provides) and pycocotools.
"""
from dataclasses import dataclass, field
from typing import List, Literal, Optional

from omegaconf import MISSING

from trackformer.data.shapes import ShapesSpec
from trackformer.hookspecs import hookimpl

_DETR_SCALES = [480, 512, 544, 576, 608, 640, 672, 704, 736, 768, 800]


@dataclass
class AugmentConfig:
    """DETR's augmentations; the defaults are its COCO settings."""
    scales: List[int] = field(default_factory=lambda: list(_DETR_SCALES))
    max_size: int = 1333
    val_size: int = 800
    crop: bool = True  # half the training images: resize to crop_scales, random crop, resize
    crop_scales: List[int] = field(default_factory=lambda: [400, 500, 600])
    crop_size: List[int] = field(default_factory=lambda: [384, 600])  # min, max crop side
    hflip: bool = True


@dataclass
class CocoDataConfig(AugmentConfig):
    root: str = MISSING  # folder the paths below are relative to
    train_images: str = "train2017"
    train_annotations: str = "annotations/instances_train2017.json"
    val_images: Optional[str] = "val2017"
    val_annotations: Optional[str] = "annotations/instances_val2017.json"
    test_images: Optional[str] = None  # None: the val split (COCO's test-dev has no labels)
    test_annotations: Optional[str] = None
    label_mapping: Literal["contiguous", "category_id"] = "contiguous"  # official DETR: category_id, 91-way head
    subset: Optional[int] = None  # only the first N images of each split (smoke runs)


@dataclass
class ShapesDataConfig(ShapesSpec, AugmentConfig):
    root: Optional[str] = None  # where to generate; None: ~/.cache/trackformer/shapes-<params>


@dataclass
class CocoEvalConfig:
    batch_size: int = 8


def detr_transforms(cfg: AugmentConfig, train: bool):
    """DETR's COCO pipeline from `cfg`: train = flip, then a multi-scale resize or (with `crop`)
    either that or a resize to `crop_scales`, a random crop in `crop_size` and the multi-scale
    resize; eval = one resize to `val_size`."""
    from trackformer.data import transforms as T

    final = T.Compose([T.ToTensor(), T.Normalize()])
    if not train:
        return T.Compose([T.RandomResize([cfg.val_size], cfg.max_size), final])
    resize = T.RandomResize(list(cfg.scales), cfg.max_size)
    steps = [T.RandomHorizontalFlip()] if cfg.hflip else []
    if cfg.crop:
        lo, hi = cfg.crop_size
        steps.append(T.RandomSelect(resize, T.Compose([T.RandomResize(list(cfg.crop_scales)),
                                                       T.RandomSizeCrop(lo, hi), resize])))
    else:
        steps.append(resize)
    return T.Compose(steps + [final])


def build_coco(cfg, split: str, **context):
    from pathlib import Path

    from trackformer.data.coco import CocoDetection

    images, ann = getattr(cfg, f"{split}_images"), getattr(cfg, f"{split}_annotations")
    if split == "test" and not ann:
        images, ann = cfg.val_images, cfg.val_annotations
    if not ann:
        return None
    root = Path(cfg.root)
    return CocoDetection(root / images, root / ann, detr_transforms(cfg, split == "train"),
                         label_mapping=cfg.label_mapping, subset=cfg.subset)


def build_shapes(cfg, split: str, **context):
    import hashlib
    import json
    import os
    from dataclasses import asdict, fields
    from pathlib import Path

    from trackformer.data.coco import CocoDetection
    from trackformer.data.shapes import ensure_shapes

    spec = ShapesSpec(**{f.name: getattr(cfg, f.name) for f in fields(ShapesSpec)})
    root = cfg.root
    if root is None:
        digest = hashlib.sha1(json.dumps(asdict(spec), sort_keys=True).encode()).hexdigest()[:10]
        cache = Path(os.environ.get("TRACKFORMER_CACHE", Path.home() / ".cache" / "trackformer"))
        root = cache / f"shapes-{digest}"
    paths = ensure_shapes(root, spec)
    if getattr(spec, f"num_{split}") == 0:
        return None
    return CocoDetection(Path(root) / split, paths[split], detr_transforms(cfg, split == "train"))


def build_coco_evaluator(cfg, data_info=None, **context):
    from trackformer.eval.coco import CocoEvaluator

    return CocoEvaluator(batch_size=cfg.batch_size,
                         label_to_category=(data_info or {}).get("label_to_category"))


@hookimpl
def register_datasets(register):
    register("coco", build_coco, schema=CocoDataConfig,
             help="COCO-format detection: image folder + instances JSON per split")
    register("shapes", build_shapes, schema=ShapesDataConfig,
             help="generated circles/squares/triangles in COCO format (deterministic)")


@hookimpl
def register_evaluators(register):
    register("coco", build_coco_evaluator, schema=CocoEvalConfig,
             help="COCO box AP via pycocotools (model.predict): AP, AP50, AP75, APs, APm, APl")
