"""COCO box AP through pycocotools, as fractions under the keys AP, AP50, AP75, APs, APm, APl.

The detector side is duck-typed: `model.predict(inputs, targets) -> list of {"scores", "labels",
"boxes" (xyxy pixels of the original image)}` (or any `predict(model, inputs, targets)` given to
the evaluator); labels map back to the file's category ids via
the data set's `info["label_to_category"]`.
"""
import contextlib
import io
import json
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch

from trackformer.ops.boxes import box_xyxy_to_xywh

METRIC_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def to_coco_results(predictions: Dict[int, Dict[str, torch.Tensor]],
                    label_to_category: Optional[Dict[int, int]] = None) -> List[Dict]:
    """{image_id: {"scores", "labels", "boxes" xyxy}} -> COCO results list (bbox as xywh)."""
    results = []
    for image_id, p in predictions.items():
        boxes = box_xyxy_to_xywh(p["boxes"].float()).tolist()
        for box, score, label in zip(boxes, p["scores"].tolist(), p["labels"].tolist()):
            cat = label_to_category.get(int(label), int(label)) if label_to_category else int(label)
            results.append({"image_id": int(image_id), "category_id": int(cat),
                            "bbox": [round(v, 3) for v in box], "score": round(float(score), 5)})
    return results


def coco_box_metrics(ground_truth: Dict, results: List[Dict]) -> Dict[str, float]:
    """pycocotools' bbox evaluation of `results` against a COCO annotation dict."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not results:
        return {k: 0.0 for k in METRIC_NAMES}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress chatter
        gt = COCO()
        gt.dataset = json.loads(json.dumps(ground_truth))  # private copy: COCO mutates it
        gt.dataset.setdefault("annotations", [])
        gt.createIndex()
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    # stats[k] is -1 when an area range holds no ground truth; report that as 0 rather than -1
    return {k: float(max(v, 0.0)) for k, v in zip(METRIC_NAMES, ev.stats[:6])}


class CocoEvaluator:
    """`evaluate(model, dataset, device, output_dir)` runs `predict` over the data set in
    batches, writes `coco_results.json` and returns the six AP numbers."""

    def __init__(self, predict: Optional[Callable] = None, batch_size: int = 8,
                 label_to_category=None):
        self.predict = predict or (lambda model, inputs, targets:
                                        getattr(model, "module", model).predict(inputs, targets))
        self.batch_size = batch_size
        self.label_to_category = label_to_category

    @torch.no_grad()
    def evaluate(self, model, dataset, device, output_dir=None) -> Dict[str, float]:
        from trackformer.utils import progress, to_device

        was_training = model.training
        model.eval()
        loader = torch.utils.data.DataLoader(dataset, batch_size=self.batch_size, shuffle=False,
                                             collate_fn=getattr(dataset, "collate_fn", None))
        predictions = {}
        for inputs, targets in progress(loader, desc="eval coco"):
            inputs = to_device(inputs, device)
            for t, p in zip(targets, self.predict(model, inputs, targets)):
                predictions[int(t["image_id"])] = {k: v.cpu() for k, v in p.items()}
        model.train(was_training)
        label_map = self.label_to_category or getattr(dataset, "info", {}).get("label_to_category")
        results = to_coco_results(predictions, label_map)
        if output_dir is not None:
            Path(output_dir).mkdir(parents=True, exist_ok=True)
            with open(Path(output_dir) / "coco_results.json", "w") as f:
                json.dump(results, f)
        return coco_box_metrics(dataset.coco_ground_truth(), results)


