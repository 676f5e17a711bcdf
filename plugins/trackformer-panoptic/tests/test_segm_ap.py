"""Instance mask AP: the coco128 panoptic things as instances; themselves as results score AP 1."""
import pytest
import torch

from trackformer.data.panoptic_format import load_panoptic_json, rle_to_masks
from trackformer_panoptic.segm_ap import instance_ground_truth, results_of, segm_metrics


def test_ground_truth_things_score_ap_one(shared_dir):
    ann = shared_dir / "data" / "coco128" / "annotations"
    if not (ann / "panoptic_train2017.json").is_file():
        pytest.skip("coco128 panoptic annotations absent")
    gt = load_panoptic_json(ann / "panoptic_train2017.json")
    ids = [a["image_id"] for a in gt["annotations"][:20]]
    instances = instance_ground_truth(gt, ann / "panoptic_train2017", ids)
    things = {c["id"] for c in gt["categories"] if c["isthing"] == 1}
    assert {a["category_id"] for a in instances["annotations"]} <= things and len(instances["annotations"]) > 50
    results = []
    for image in instances["images"]:
        anns = [a for a in instances["annotations"] if a["image_id"] == image["id"] and not a["iscrowd"]]
        masks = torch.from_numpy(rle_to_masks([a["segmentation"] for a in anns], image["height"], image["width"]))
        prediction = {"masks": masks[:, None].bool(), "scores": torch.ones(len(anns)),
                      "labels": torch.tensor([a["category_id"] for a in anns])}
        results += results_of(image["id"], prediction, {}, things)
    metrics = segm_metrics(instances, results)
    assert metrics["segm_AP"] == pytest.approx(1.0) and metrics["segm_AP50"] == pytest.approx(1.0)
