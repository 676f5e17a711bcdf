"""COCO-format data: label mapping, empty images, boxes that follow the pixels through DETR's
augmentations, malformed files, the deterministic shapes generator, and AP through pycocotools."""
import json
import random

import numpy as np
import pytest
import torch
from PIL import Image

from trackformer.data import transforms as T
from trackformer.data.coco import CocoDetection, load_coco_json
from trackformer.data.shapes import ShapesSpec, generate
from trackformer.errors import DataError
from trackformer.eval.coco import coco_box_metrics, to_coco_results
from trackformer.ops.boxes import box_cxcywh_to_xyxy


def coco128(shared_dir, **kw):
    root = shared_dir / "data" / "coco128"
    return CocoDetection(root / "images" / "train2017", root / "annotations" / "instances_train2017.json", **kw)


def test_coco128_labels_and_empty_images(shared_dir):
    ds = coco128(shared_dir)
    assert len(ds) == 128 and ds.info["num_classes"] == 80
    assert ds.info["label_to_category"][0] == 1 and ds.info["label_to_category"][79] == 90
    n_boxes, empty = 0, 0
    for i in range(len(ds)):
        _, t = ds[i]
        n_boxes += len(t["boxes"])
        empty += len(t["boxes"]) == 0
        assert (t["labels"] < 80).all()
    assert n_boxes == 929 and empty == 2
    assert coco128(shared_dir, label_mapping="category_id").info["num_classes"] == 91


def white_box_image(w=120, h=90, box=(30, 20, 70, 50)):
    a = np.zeros((h, w, 3), np.uint8)
    a[box[1]:box[3], box[0]:box[2]] = 255
    return Image.fromarray(a), {"boxes": torch.tensor([box], dtype=torch.float32),
                                "labels": torch.tensor([1]), "area": torch.tensor([1200.0])}


def pixel_box(image):  # xyxy of the white pixels of a [3, H, W] tensor
    gray = image.mean(0)
    ys, xs = torch.nonzero(gray > (gray.min() + gray.max()) / 2, as_tuple=True)
    return torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32)


@pytest.mark.parametrize("seed", range(12))
def test_detr_augmentations_move_boxes_with_pixels(seed):
    random.seed(seed)
    from trackformer.builtin_plugins.coco import AugmentConfig, detr_transforms

    pipeline = detr_transforms(AugmentConfig(scales=[64, 80, 96], max_size=160, crop_scales=[80, 100],
                                             crop_size=[60, 90]), train=True)
    image, target = white_box_image()
    out, t = pipeline(image, target)
    H, W = out.shape[-2:]
    assert tuple(t["size"].tolist()) == (H, W)
    if len(t["boxes"]) == 0:  # cropped away: then no white pixel may remain
        assert out.mean(0).max() - out.mean(0).min() < 1.0
        return
    box = box_cxcywh_to_xyxy(t["boxes"][0]) * torch.tensor([W, H, W, H])
    assert torch.allclose(box, pixel_box(out), atol=2.5), (box, pixel_box(out))


def test_flip_and_crop_exact():
    image, target = white_box_image()
    flipped, t = T.hflip(T.ToTensor()(image, target)[0], target)
    assert t["boxes"][0].tolist() == [50, 20, 90, 50] and pixel_box(flipped).tolist() == [50, 20, 90, 50]
    degenerate = dict(target, boxes=torch.tensor([[40.0, 30, 40, 45], [5.0, 5, 5, 8]]),
                      labels=torch.tensor([1, 2]), area=torch.zeros(2))
    _, t = T.crop(image, degenerate, (10, 20, 60, 60))  # keeps the zero-width box inside the crop
    assert t["boxes"].tolist() == [[20, 20, 20, 35]] and t["labels"].tolist() == [1]
    # per-box entries are the data set's to declare: only those are filtered with the boxes
    tracked = dict(degenerate, track_ids=torch.tensor([7, 8]))
    _, t = T.crop(image, tracked, (10, 20, 60, 60))
    assert t["track_ids"].tolist() == [7, 8]  # not a core key: left alone
    _, t = T.crop(image, tracked, (10, 20, 60, 60), per_box=T.PER_BOX + ("track_ids",))
    assert t["track_ids"].tolist() == [7] and t["labels"].tolist() == [1]


def test_collate_pads_and_masks():
    batch = [(torch.ones(3, 4, 6), {"id": 0}), (torch.ones(3, 5, 3), {"id": 1})]
    inputs, targets = T.collate(batch)
    assert inputs["images"].shape == (2, 3, 5, 6) and [t["id"] for t in targets] == [0, 1]
    assert inputs["mask"][0, 4].all() and not inputs["mask"][0, :4].any()
    assert inputs["mask"][1, :, 3:].all() and inputs["images"][1, :, :, 3:].abs().sum() == 0


def test_malformed_annotation_files_name_file_and_entry(tmp_path):
    bad_json = tmp_path / "broken.json"
    bad_json.write_text('{"images": [\n{"id": 1,}\n]}')
    with pytest.raises(DataError) as err:
        load_coco_json(bad_json)
    assert "broken.json" in str(err.value) and err.value.line == 2
    data = {"images": [{"id": 1, "file_name": "a.png", "width": 10, "height": 10}],
            "categories": [{"id": 1, "name": "x"}],
            "annotations": [{"id": 7, "image_id": 1, "category_id": 1, "bbox": [0, 0, 2, 2]},
                            {"id": 8, "image_id": 1, "category_id": 1, "bbox": [0, 0, "2"]}]}
    bad_entry = tmp_path / "entry.json"
    bad_entry.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"entry\.json: annotations\[1\] \(id 8\): 'bbox'"):
        load_coco_json(bad_entry)
    data["annotations"][1] = {"id": 8, "image_id": 1, "category_id": 5, "bbox": [0, 0, 1, 1]}
    bad_entry.write_text(json.dumps(data))
    with pytest.raises(DataError, match="category_id 5"):
        load_coco_json(bad_entry)


def test_shapes_generator_is_deterministic_and_boxes_are_tight(tmp_path):
    spec = ShapesSpec(num_train=6, num_val=2, num_test=2, image_size=64, min_objects=1,
                      max_objects=2, object_min_size=10, object_max_size=20, seed=3)
    a, b = generate(tmp_path / "a", spec), generate(tmp_path / "b", spec)
    assert a["train"].read_text() == b["train"].read_text()
    assert (tmp_path / "a/train/000004.png").read_bytes() == (tmp_path / "b/train/000004.png").read_bytes()
    ds = CocoDetection(tmp_path / "a" / "train", a["train"])
    assert ds.info["num_classes"] == 3
    for i in range(len(ds)):
        image, t = ds[i]
        pixels = np.asarray(image).astype(int)
        background = np.median(pixels.reshape(-1, 3), axis=0)
        for box in t["boxes"].round().int().tolist():
            x0, y0, x1, y1 = box
            inside = np.abs(pixels[y0:y1, x0:x1] - background).sum(-1) > 100
            assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()


def test_coco_ap_perfect_and_shifted_predictions(shared_dir):
    ds = coco128(shared_dir)
    gt = ds.coco_ground_truth()
    perfect = {}
    for i in range(len(ds)):
        _, t = ds[i]
        perfect[int(t["image_id"])] = {"boxes": t["boxes"], "labels": t["labels"],
                                       "scores": torch.ones(len(t["labels"]))}
    metrics = coco_box_metrics(gt, to_coco_results(perfect, ds.info["label_to_category"]))
    assert set(metrics) == {"AP", "AP50", "AP75", "APs", "APm", "APl"}
    assert metrics["AP"] == pytest.approx(1.0) and metrics["APl"] == pytest.approx(1.0)
    # shift every box by 30% of its width: IoU 0.54 -> counted at 0.5, missed at 0.75
    shifted = {k: dict(v, boxes=v["boxes"] + (v["boxes"][:, 2:3] - v["boxes"][:, 0:1]) * 0.3
                       * torch.tensor([1.0, 0, 1, 0])) for k, v in perfect.items()}
    metrics = coco_box_metrics(gt, to_coco_results(shifted, ds.info["label_to_category"]))
    # (a shifted box can land on a neighbouring object of its class, hence not exactly 1 and 0)
    assert metrics["AP50"] > 0.98 and metrics["AP75"] < 0.02
