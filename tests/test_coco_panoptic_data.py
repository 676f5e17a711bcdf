"""COCO panoptic data set: masks equal to the PNG's segments, boxes from masks equal to the JSON's
bbox, the augmentations move masks with pixels and boxes."""
import random

import numpy as np
import pytest
import torch

from trackformer.data import mask_transforms as MT
from trackformer.data.coco_panoptic import CocoPanoptic, masks_to_boxes
from trackformer.data.panoptic_format import read_id_png


@pytest.fixture(scope="module")
def coco128(shared_dir):
    root = shared_dir / "data" / "coco128"
    if not (root / "annotations" / "panoptic_train2017.json").is_file():
        pytest.skip("coco128 panoptic annotations absent")
    return CocoPanoptic(root / "images" / "train2017", root / "annotations" / "panoptic_train2017.json")


def test_targets_match_the_files(coco128):
    assert len(coco128) == 100 and coco128.info["num_classes"] == 201
    assert len(coco128.info["thing_labels"]) == 80 and max(coco128.info["thing_labels"]) == 90
    for index in (0, 1, 50):
        image, target = coco128[index]
        ann = coco128.anns[index]
        ids = read_id_png(coco128.png_dir / ann["file_name"])
        assert target["masks"].shape == (len(ann["segments_info"]), image.size[1], image.size[0])
        for m, s, box, label in zip(target["masks"], ann["segments_info"], target["boxes"], target["labels"]):
            assert torch.equal(m, torch.from_numpy(ids == s["id"]))
            x, y, w, h = s["bbox"]
            assert box.tolist() == [x, y, x + w - 1, y + h - 1] and int(label) == s["category_id"]
        assert target["iscrowd"].tolist() == [s["iscrowd"] for s in ann["segments_info"]]


def test_augmentations_move_masks_with_boxes(coco128):
    random.seed(0)
    image, target = coco128[2]
    steps = [lambda im, t: MT.hflip(im, t), lambda im, t: MT.resize(im, t, 300),
             lambda im, t: MT.crop(im, t, (40, 60, 200, 150))]
    for step in steps:
        image, target = step(image, target)
        assert target["masks"].shape[-2:] == (image.size[1], image.size[0])
        assert target["masks"].flatten(1).any(1).all()  # emptied instances were dropped
        assert len(target["labels"]) == len(target["masks"]) == len(target["boxes"])
        # boxes that moved with the pixels still enclose their masks' pixels (within resampling);
        # before any crop they are the masks' own boxes
        inner, outer = masks_to_boxes(target["masks"]), target["boxes"]
        assert (inner[:, :2] >= outer[:, :2] - 2).all() and (inner[:, 2:] <= outer[:, 2:] + 2).all()
        if step is not steps[-1]:
            assert (inner - outer).abs().max() <= 2.0


def test_masks_to_boxes_gives_zeros_for_empty_masks():
    from torchvision.ops import masks_to_boxes as reference

    masks = torch.from_numpy(np.random.default_rng(0).random((5, 9, 7)) > 0.8)
    masks[2] = False
    boxes = masks_to_boxes(masks)
    assert torch.equal(boxes[2], torch.zeros(4))
    assert torch.equal(boxes[[0, 1, 3, 4]], reference(masks[[0, 1, 3, 4]]))
