"""Instance mask AP (pycocotools `segm`) of a panoptic model's thing predictions: the ground truth's
thing segments become COCO instance annotations with RLE masks (crowd segments as `iscrowd`), every
query's binary mask (sigmoid > 0.5, cropped and resized as `instance_masks`) a scored result."""
import contextlib
import io
from pathlib import Path
from typing import Dict, List

import numpy as np

from trackformer.data.panoptic_format import masks_to_rle, read_id_png

METRIC_NAMES = ("segm_AP", "segm_AP50", "segm_AP75", "segm_APs", "segm_APm", "segm_APl")


def instance_ground_truth(gt: Dict, gt_folder, image_ids) -> Dict:
    """A COCO instances dict (RLE segmentations) of the thing segments of `image_ids`."""
    things = {c["id"] for c in gt["categories"] if c["isthing"] == 1}
    by_image = {a["image_id"]: a for a in gt["annotations"]}
    images, annotations = [], []
    for image_id in image_ids:
        ann = by_image[image_id]
        ids = read_id_png(Path(gt_folder) / ann["file_name"])
        images.append({"id": image_id, "height": ids.shape[0], "width": ids.shape[1]})
        segs = [s for s in ann["segments_info"] if s["category_id"] in things]
        rles = masks_to_rle(np.stack([ids == s["id"] for s in segs])) if segs else []
        for s, rle in zip(segs, rles):
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": s["category_id"],
                                "segmentation": rle, "area": float(s["area"]), "bbox": s["bbox"],
                                "iscrowd": s.get("iscrowd", 0)})
    categories = [{"id": c["id"], "name": c.get("name", str(c["id"]))} for c in gt["categories"] if c["id"] in things]
    return {"images": images, "annotations": annotations, "categories": categories}


def results_of(image_id, prediction: Dict, label_to_category: Dict[int, int], thing_categories) -> List[Dict]:
    """One image's `predict` output (scores, labels, masks [Q, 1, H, W]) -> COCO segm results."""
    masks = prediction["masks"][:, 0].cpu().numpy()
    rles = masks_to_rle(masks) if len(masks) else []
    out = []
    for rle, score, label in zip(rles, prediction["scores"].tolist(), prediction["labels"].tolist()):
        cat = int(label_to_category.get(int(label), int(label)))
        if cat in thing_categories:
            out.append({"image_id": image_id, "category_id": cat, "segmentation": rle, "score": float(score)})
    return out


def segm_metrics(ground_truth: Dict, results: List[Dict]) -> Dict[str, float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not results or not ground_truth["annotations"]:
        return {k: 0.0 for k in METRIC_NAMES}
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = ground_truth
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(results), "segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {k: float(max(v, 0.0)) for k, v in zip(METRIC_NAMES, ev.stats[:6])}
