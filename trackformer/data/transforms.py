"""Detection augmentations that move the boxes with the pixels (DETR's, degenerate-box safe).

A transform maps (image, target) -> (image, target). Until `Normalize`, `target["boxes"]` are
xyxy pixels [N, 4] of the current image; `Normalize` turns them into cxcywh relative to the
image, the form DETR predicts. Per-box entries are filtered together with the boxes: `PER_BOX`
by default; a data set with more (e.g. identities) gives its own list as `per_box`.
"""
import random
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torchvision.transforms.functional as TF
from PIL import Image

from trackformer.ops.boxes import box_xyxy_to_cxcywh

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PER_BOX = ("boxes", "labels", "area", "iscrowd")


def _image_size(image) -> Tuple[int, int]:
    """(w, h) of a PIL image or a [C, H, W] tensor."""
    if isinstance(image, Image.Image):
        return image.size
    return image.shape[-1], image.shape[-2]


def _filter(target: Dict, keep: torch.Tensor, per_box: Sequence[str]) -> Dict:
    return {k: (v[keep] if k in per_box and torch.is_tensor(v) else v) for k, v in target.items()}


def crop(image, target: Dict, region: Tuple[int, int, int, int], per_box: Sequence[str] = PER_BOX):
    """Crop to region (top, left, height, width); boxes are clipped, those left outside dropped
    with their `per_box` entries. A box of zero width or height survives if it lies inside the
    region."""
    i, j, h, w = region
    image = TF.crop(image, i, j, h, w)
    target = dict(target, size=torch.tensor([h, w]))
    if "boxes" in target:
        boxes = target["boxes"]
        shifted = boxes - torch.as_tensor([j, i, j, i], dtype=boxes.dtype)
        lo = torch.zeros(2, dtype=boxes.dtype)
        hi = torch.as_tensor([w, h], dtype=boxes.dtype)
        clipped = torch.cat([torch.min(torch.max(shifted[:, :2], lo), hi),
                             torch.min(torch.max(shifted[:, 2:], lo), hi)], dim=1)
        size = clipped[:, 2:] - clipped[:, :2]
        flat = (boxes[:, 2:] - boxes[:, :2]) <= 0  # degenerate along that axis
        inside = (shifted[:, :2] >= 0) & (shifted[:, :2] <= hi)
        keep = ((size > 0) | (flat & inside)).all(1)
        target["boxes"] = clipped
        if "area" in target:
            target["area"] = size.prod(1)
        target = _filter(target, keep, per_box)
    return image, target


def hflip(image, target: Dict):
    image = TF.hflip(image)
    w, _ = _image_size(image)
    if "boxes" in target:
        b = target["boxes"]
        target = dict(target, boxes=torch.stack([w - b[:, 2], b[:, 1], w - b[:, 0], b[:, 3]], 1))
    return image, target


def resized_size(size: Tuple[int, int], short: int, max_size: Optional[int]) -> Tuple[int, int]:
    """(h, w) with the short side `short` (reduced so the long side stays <= max_size), as DETR."""
    w, h = size
    if max_size is not None:
        lo, hi = float(min(w, h)), float(max(w, h))
        if hi / lo * short > max_size:
            short = int(round(max_size * lo / hi))
    if (w <= h and w == short) or (h <= w and h == short):
        return h, w
    if w < h:
        return int(short * h / w), short
    return short, int(short * w / h)


def resize(image, target: Dict, short: int, max_size: Optional[int] = None):
    w0, h0 = _image_size(image)
    h, w = resized_size((w0, h0), short, max_size)
    image = TF.resize(image, [h, w], antialias=True)
    rw, rh = w / w0, h / h0
    target = dict(target, size=torch.tensor([h, w]))
    if "boxes" in target:
        target["boxes"] = target["boxes"] * torch.as_tensor([rw, rh, rw, rh])
    if "area" in target:
        target["area"] = target["area"] * (rw * rh)
    return image, target


class RandomHorizontalFlip:
    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, image, target):
        return hflip(image, target) if random.random() < self.p else (image, target)


class RandomResize:
    """Short side drawn from `sizes` (DETR's multi-scale training), long side capped at max_size."""

    def __init__(self, sizes: Sequence[int], max_size: Optional[int] = None):
        self.sizes = list(sizes)
        self.max_size = max_size

    def __call__(self, image, target):
        return resize(image, target, random.choice(self.sizes), self.max_size)


class RandomSizeCrop:
    """A crop of random height and width in [min_size, max_size] (clamped to the image)."""

    def __init__(self, min_size: int, max_size: int, per_box: Sequence[str] = PER_BOX):
        self.min_size = min_size
        self.max_size = max_size
        self.per_box = tuple(per_box)

    def __call__(self, image, target):
        w, h = _image_size(image)
        cw = random.randint(min(w, self.min_size), min(w, self.max_size))
        ch = random.randint(min(h, self.min_size), min(h, self.max_size))
        i, j = random.randint(0, h - ch), random.randint(0, w - cw)
        return crop(image, target, (i, j, ch, cw), self.per_box)


class RandomSelect:
    """Apply `first` with probability p, else `second` (DETR: plain resize vs resize-crop-resize)."""

    def __init__(self, first, second, p: float = 0.5):
        self.first, self.second, self.p = first, second, p

    def __call__(self, image, target):
        return self.first(image, target) if random.random() < self.p else self.second(image, target)


class ToTensor:
    def __call__(self, image, target):
        return TF.to_tensor(image), target


class Normalize:
    """Image to ImageNet statistics; boxes xyxy pixels -> cxcywh relative to the image."""

    def __init__(self, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        self.mean, self.std = list(mean), list(std)

    def __call__(self, image, target):
        image = TF.normalize(image, self.mean, self.std)
        if "boxes" in target:
            h, w = image.shape[-2:]
            boxes = box_xyxy_to_cxcywh(target["boxes"])
            target = dict(target, boxes=boxes / torch.tensor([w, h, w, h], dtype=boxes.dtype))
        return image, target


class Compose:
    def __init__(self, transforms: List):
        self.transforms = transforms

    def __call__(self, image, target):
        for t in self.transforms:
            image, target = t(image, target)
        return image, target


def pad_images(images: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
    """[3, H_i, W_i] images -> (images [B, 3, H, W] padded bottom/right with zeros to the largest,
    mask [B, H, W] True on padding), on the images' device."""
    H = max(im.shape[1] for im in images)
    W = max(im.shape[2] for im in images)
    padded = images[0].new_zeros((len(images), images[0].shape[0], H, W))
    mask = torch.ones((len(images), H, W), dtype=torch.bool, device=images[0].device)
    for im, p, m in zip(images, padded, mask):
        p[:, :im.shape[1], :im.shape[2]].copy_(im)
        m[:im.shape[1], :im.shape[2]] = False
    return padded, mask


def collate(batch):
    """[(image [3, H_i, W_i], target)] -> ({"images": [B, 3, H, W], "mask": [B, H, W]}, [target])
    (see `pad_images`)."""
    images, mask = pad_images([im for im, _ in batch])
    return {"images": images, "mask": mask}, [t for _, t in batch]
