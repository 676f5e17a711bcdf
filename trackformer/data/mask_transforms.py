"""The detection augmentations (trackformer.data.transforms) extended to instance masks
`target["masks"]` [N, H, W] (bool), as DETR applies them to panoptic data:

- flip: masks flipped with the image;
- resize: masks resized nearest, then > 0.5;
- crop: masks sliced with the image; instances whose mask is emptied are dropped (with their
  boxes, labels, areas, crowd flags).
Boxes still follow the pixels as in detection; `Normalize` leaves masks alone.
"""
import random
from typing import Dict, Sequence, Tuple

import torch
import torch.nn.functional as F

from . import transforms as T

PER_INSTANCE = T.PER_BOX + ("masks",)


def hflip(image, target: Dict):
    image, target = T.hflip(image, target)
    if "masks" in target:
        target = dict(target, masks=target["masks"].flip(-1))
    return image, target


def resize(image, target: Dict, short: int, max_size=None):
    image, target = T.resize(image, target, short, max_size)
    if "masks" in target:
        h, w = (int(s) for s in target["size"])
        masks = target["masks"]
        resized = F.interpolate(masks[:, None].float(), size=(h, w), mode="nearest")[:, 0] > 0.5 \
            if masks.shape[0] else masks.new_zeros((0, h, w))
        target = dict(target, masks=resized)
    return image, target


def crop(image, target: Dict, region: Tuple[int, int, int, int]):
    i, j, h, w = region
    if "masks" not in target:
        return T.crop(image, target, region)
    masks = target["masks"][:, i:i + h, j:j + w]
    image, cropped = T.crop(image, dict(target, masks=masks, boxes=target["boxes"]), region, per_box=())
    keep = masks.flatten(1).any(1)  # [N] instances with pixels left
    cropped["masks"] = masks
    return image, {k: (v[keep] if k in PER_INSTANCE and torch.is_tensor(v) else v) for k, v in cropped.items()}


class RandomHorizontalFlip:
    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, image, target):
        return hflip(image, target) if random.random() < self.p else (image, target)


class RandomResize:
    def __init__(self, sizes: Sequence[int], max_size=None):
        self.sizes, self.max_size = list(sizes), max_size

    def __call__(self, image, target):
        return resize(image, target, random.choice(self.sizes), self.max_size)


class RandomSizeCrop:
    def __init__(self, min_size: int, max_size: int):
        self.min_size, self.max_size = min_size, max_size

    def __call__(self, image, target):
        w, h = T._image_size(image)
        cw = random.randint(min(w, self.min_size), min(w, self.max_size))
        ch = random.randint(min(h, self.min_size), min(h, self.max_size))
        i, j = random.randint(0, h - ch), random.randint(0, w - cw)
        return crop(image, target, (i, j, ch, cw))


def panoptic_transforms(cfg, train: bool):
    """DETR's COCO panoptic pipeline from an augmentation config (scales, max_size, val_size, hflip,
    crop, crop_scales, crop_size), as `trackformer.builtin_plugins.coco.detr_transforms`."""
    final = T.Compose([T.ToTensor(), T.Normalize()])
    if not train:
        return T.Compose([RandomResize([cfg.val_size], cfg.max_size), final])
    resize_ = RandomResize(list(cfg.scales), cfg.max_size)
    steps = [RandomHorizontalFlip()] if cfg.hflip else []
    if cfg.crop:
        lo, hi = cfg.crop_size
        steps.append(T.RandomSelect(resize_, T.Compose([RandomResize(list(cfg.crop_scales)),
                                                         RandomSizeCrop(lo, hi), resize_])))
    else:
        steps.append(resize_)
    return T.Compose(steps + [final])
