"""Data set factories: `coco_panoptic` (files on disk) and `panoptic_shapes` (generated, same layout)."""
import hashlib
import json
import os
from dataclasses import asdict, fields
from pathlib import Path

from .settings import CocoPanopticDataConfig, PanopticShapesConfig


def build_coco_panoptic(cfg: CocoPanopticDataConfig, split: str, **context):
    from trackformer.data.coco_panoptic import CocoPanoptic
    from trackformer.data.mask_transforms import panoptic_transforms

    images, ann, png = (getattr(cfg, f"{split}_{k}") for k in ("images", "annotations", "panoptic"))
    if split == "test" and not ann:
        images, ann, png = cfg.val_images, cfg.val_annotations, cfg.val_panoptic
    if not ann:
        return None
    root = Path(cfg.root)
    return CocoPanoptic(root / images, root / ann, root / png if png else None,
                        panoptic_transforms(cfg, split == "train"), label_mapping=cfg.label_mapping,
                        subset=cfg.subset)


def build_panoptic_shapes(cfg: PanopticShapesConfig, split: str, **context):
    from trackformer.data.coco_panoptic import CocoPanoptic
    from trackformer.data.mask_transforms import panoptic_transforms

    from .shapes import SceneSpec, ensure_scenes

    spec = SceneSpec(**{f.name: getattr(cfg, f.name) for f in fields(SceneSpec)})
    root = cfg.root
    if root is None:
        digest = hashlib.sha1(json.dumps(asdict(spec), sort_keys=True).encode()).hexdigest()[:10]
        cache = Path(os.environ.get("TRACKFORMER_CACHE", Path.home() / ".cache" / "trackformer"))
        root = cache / f"panoptic-shapes-{digest}"
    root = ensure_scenes(root, spec)
    if getattr(spec, f"num_{split}") == 0:
        return None
    return CocoPanoptic(root / split / "images", root / split / "panoptic.json", root / split / "panoptic",
                        panoptic_transforms(cfg, split == "train"), label_mapping="contiguous")
