"""COCO panoptic data: an image folder, a folder of panoptic PNGs and their JSON.

Each item is (image, target) with DETR panoptic's target: `masks` [N, H, W] bool (id map == segment
id), `labels` (category ids, or contiguous 0..C-1), `boxes` from the masks (xyxy of inclusive pixel
indices, as torchvision's `masks_to_boxes`; cxcywh relative after `Normalize`), `iscrowd`, `area`
(pixels), `image_id`, `orig_size`, `size`. Crowd segments are kept (DETR panoptic does; the matcher
sees them as objects). Annotations pair with images by `image_id`; the images' sizes come from
the JSON's `images` (or the PNGs). `info` adds `thing_labels` and the categories for writing.
"""
from pathlib import Path
from typing import Callable, Dict, Optional

import numpy as np
import torch
import torchvision
from PIL import Image

from trackformer.errors import DataError

from .panoptic_format import load_panoptic_json, read_id_png
from .transforms import collate


def masks_to_boxes(masks: torch.Tensor) -> torch.Tensor:
    """[N, H, W] bool -> [N, 4] xyxy (torchvision's `masks_to_boxes`); an empty mask gives zeros."""
    boxes = torch.zeros((masks.shape[0], 4), dtype=torch.float32)
    present = masks.flatten(1).any(1)  # [N]
    if present.any():
        boxes[present] = torchvision.ops.masks_to_boxes(masks[present]).float()
    return boxes


class CocoPanoptic(torch.utils.data.Dataset):
    def __init__(self, image_dir, ann_file, png_dir=None, transforms: Optional[Callable] = None,
                 label_mapping: str = "category_id", subset: Optional[int] = None):
        self.image_dir = Path(image_dir)
        self.ann_file = Path(ann_file)
        self.png_dir = Path(png_dir) if png_dir else self.ann_file.with_suffix("")
        self.transforms = transforms
        self.data = load_panoptic_json(self.ann_file)
        cats = sorted(self.data["categories"], key=lambda c: c["id"])
        if label_mapping == "contiguous":
            self.cat_to_label = {c["id"]: i for i, c in enumerate(cats)}
            num_classes = len(cats)
        else:
            self.cat_to_label = {c["id"]: c["id"] for c in cats}
            num_classes = max(self.cat_to_label) + 1
        images = {im["id"]: im for im in self.data.get("images", [])}
        anns = self.data["annotations"][:subset] if subset else self.data["annotations"]
        for a in anns:
            if images and a["image_id"] not in images:
                raise DataError(self.ann_file, f"annotation of image_id {a['image_id']} has no entry in 'images'")
        self.anns = anns
        self.images = [images.get(a["image_id"], {"id": a["image_id"],
                                                  "file_name": Path(a["file_name"]).with_suffix(".jpg").name})
                       for a in anns]
        self.info = {
            "num_classes": num_classes,
            "label_to_category": {lab: cid for cid, lab in self.cat_to_label.items()},
            "category_names": {c["id"]: c.get("name", str(c["id"])) for c in cats},
            "label_mapping": label_mapping,
            "thing_labels": sorted(self.cat_to_label[c["id"]] for c in cats if c["isthing"] == 1),
            "categories": cats,
        }

    def __len__(self):
        return len(self.anns)

    def panoptic_ground_truth(self):
        """(JSON path, PNG folder, image ids) of this data set, for PQ."""
        return self.ann_file, self.png_dir, [a["image_id"] for a in self.anns]

    def load_image(self, index: int) -> Image.Image:
        path = self.image_dir / self.images[index]["file_name"]
        try:
            return Image.open(path).convert("RGB")
        except (OSError, ValueError) as e:
            raise DataError(path, f"cannot read image: {e}") from None

    def load_target(self, index: int, width: int, height: int) -> Dict:
        ann = self.anns[index]
        ids = read_id_png(self.png_dir / ann["file_name"])
        if ids.shape != (height, width):
            raise DataError(self.png_dir / ann["file_name"], f"size {ids.shape[::-1]} differs from the image's "
                                                             f"{(width, height)}")
        segments = ann["segments_info"]
        seg_ids = np.array([s["id"] for s in segments], dtype=np.int32)
        masks = torch.from_numpy(ids[None] == seg_ids[:, None, None]) if len(segments) \
            else torch.zeros((0, height, width), dtype=torch.bool)
        return {
            "masks": masks,
            "labels": torch.tensor([self.cat_to_label[s["category_id"]] for s in segments], dtype=torch.int64),
            "boxes": masks_to_boxes(masks),
            "iscrowd": torch.tensor([s.get("iscrowd", 0) for s in segments], dtype=torch.int64),
            "area": masks.flatten(1).sum(1).float(),
            "image_id": torch.tensor(ann["image_id"]),
            "orig_size": torch.tensor([height, width]),
            "size": torch.tensor([height, width]),
        }

    def __getitem__(self, index: int):
        image = self.load_image(index)
        target = self.load_target(index, *image.size)
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target

    @staticmethod
    def collate_fn(batch):
        return collate(batch)
