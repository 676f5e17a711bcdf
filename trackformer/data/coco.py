"""COCO-format detection data: an image folder plus an instances JSON.

Category ids become contiguous labels 0..C-1 in ascending id order (`label_mapping: contiguous`),
or stay as they are (`category_id`, the official DETR checkpoints' 91-way head). The mapping and
`num_classes` are taken from the file and published in `info`, which the run saves. Images
without objects are kept; boxes of zero width or height are kept (the loss and the metrics handle
them); crowd regions are left out of training targets but stay in the evaluation ground truth.
"""
import json
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch
from PIL import Image

from trackformer.errors import DataError

from .transforms import collate


def _num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x == x


def load_coco_json(path) -> Dict:
    """Read and check an instances file; any problem -> DataError naming the file and the entry."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "annotation file not found")
    try:
        with open(path) as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(path, f"not valid JSON: {e.msg} (column {e.colno})", line=e.lineno) from None
    if not isinstance(data, dict):
        raise DataError(path, "expected a JSON object with 'images', 'annotations', 'categories'")
    for key in ("images", "categories"):
        if not isinstance(data.get(key), list):
            raise DataError(path, f"missing list '{key}'")
    data.setdefault("annotations", [])
    if not isinstance(data["annotations"], list):
        raise DataError(path, "'annotations' is not a list")
    image_ids, cat_ids = set(), set()
    for i, im in enumerate(data["images"]):
        if not isinstance(im, dict) or not isinstance(im.get("id"), int) or not isinstance(im.get("file_name"), str):
            raise DataError(path, f"images[{i}]: needs an integer 'id' and a string 'file_name'")
        if im["id"] in image_ids:
            raise DataError(path, f"images[{i}]: duplicate image id {im['id']}")
        image_ids.add(im["id"])
    for i, cat in enumerate(data["categories"]):
        if not isinstance(cat, dict) or not isinstance(cat.get("id"), int) or cat["id"] < 0:
            raise DataError(path, f"categories[{i}]: needs a non-negative integer 'id'")
        if cat["id"] in cat_ids:
            raise DataError(path, f"categories[{i}]: duplicate category id {cat['id']}")
        cat_ids.add(cat["id"])
    for i, ann in enumerate(data["annotations"]):
        where = f"annotations[{i}]" + (f" (id {ann['id']})" if isinstance(ann, dict) and "id" in ann else "")
        if not isinstance(ann, dict):
            raise DataError(path, f"{where}: not an object")
        bbox = ann.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(_num(v) for v in bbox)):
            raise DataError(path, f"{where}: 'bbox' must be [x, y, w, h] numbers, got {bbox!r}")
        if bbox[2] < 0 or bbox[3] < 0:
            raise DataError(path, f"{where}: negative box size in bbox {bbox}")
        if ann.get("image_id") not in image_ids:
            raise DataError(path, f"{where}: image_id {ann.get('image_id')!r} is not in 'images'")
        if ann.get("category_id") not in cat_ids:
            raise DataError(path, f"{where}: category_id {ann.get('category_id')!r} is not in 'categories'")
        ann.setdefault("iscrowd", 0)
        ann.setdefault("area", bbox[2] * bbox[3])
        ann.setdefault("id", i + 1)
    return data


class CocoDetection(torch.utils.data.Dataset):
    """Items: (image, target) after `transforms`; target has `boxes` (xyxy pixels before the
    transforms' Normalize, cxcywh relative after), `labels`, `image_id`, `orig_size` and `size`
    as (h, w), `area`, `iscrowd`."""

    def __init__(self, image_dir, ann_file, transforms: Optional[Callable] = None,
                 label_mapping: str = "contiguous", subset: Optional[int] = None):
        self.image_dir = Path(image_dir)
        self.ann_file = Path(ann_file)
        self.transforms = transforms
        self.data = load_coco_json(self.ann_file)
        cats = sorted(self.data["categories"], key=lambda c: c["id"])
        if label_mapping == "contiguous":
            self.cat_to_label = {c["id"]: i for i, c in enumerate(cats)}
            num_classes = len(cats)
        elif label_mapping == "category_id":
            self.cat_to_label = {c["id"]: c["id"] for c in cats}
            num_classes = max(self.cat_to_label) + 1
        else:
            raise ValueError(f"label_mapping must be contiguous or category_id, not {label_mapping!r}")
        self.images = self.data["images"][:subset] if subset else self.data["images"]
        self.anns: Dict[int, List[Dict]] = {im["id"]: [] for im in self.data["images"]}
        for ann in self.data["annotations"]:
            self.anns[ann["image_id"]].append(ann)
        self.info = {
            "num_classes": num_classes,
            # label -> category id, and names, so results are written back in the file's ids
            "label_to_category": {lab: cid for cid, lab in self.cat_to_label.items()},
            "category_names": {c["id"]: c.get("name", str(c["id"])) for c in cats},
            "label_mapping": label_mapping,
        }

    def __len__(self):
        return len(self.images)

    def coco_ground_truth(self) -> Dict:
        """The annotation dict restricted to this data set's images (for pycocotools)."""
        ids = {im["id"] for im in self.images}
        return dict(self.data, images=self.images,
                    annotations=[a for a in self.data["annotations"] if a["image_id"] in ids])

    def load_image(self, index: int) -> Image.Image:
        path = self.image_dir / self.images[index]["file_name"]
        try:
            return Image.open(path).convert("RGB")
        except (OSError, ValueError) as e:
            raise DataError(path, f"cannot read image: {e}") from None

    def load_target(self, index: int, width: int, height: int) -> Dict:
        info = self.images[index]
        anns = [a for a in self.anns[info["id"]] if not a.get("iscrowd", 0)]
        boxes = torch.tensor([a["bbox"] for a in anns], dtype=torch.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]  # xywh -> xyxy
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
        return {
            "boxes": boxes,
            "labels": torch.tensor([self.cat_to_label[a["category_id"]] for a in anns], dtype=torch.int64),
            "area": torch.tensor([float(a["area"]) for a in anns], dtype=torch.float32),
            "iscrowd": torch.zeros(len(anns), dtype=torch.int64),
            "image_id": torch.tensor(info["id"]),
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
