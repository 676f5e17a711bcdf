"""The `panoptic` evaluator: the model's panoptic segmentation of every image (`predict_panoptic`),
scored against the data set's COCO panoptic ground truth with trackformer.eval.panoptic (equal to
panopticapi's pq_compute), and written as COCO panoptic PNGs + JSON under
`<output_dir>/panoptic_predictions/` (the files pq_compute takes). With `segm: true` also instance
mask AP of the thing classes via pycocotools (`segm_AP`, `segm_AP50`, ...; segm_ap.py).
"""
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import torch

from trackformer.data.panoptic_format import load_panoptic_json, read_id_png, write_panoptic
from trackformer.eval.panoptic import accumulate, average, image_stats, summary

from .segm_ap import instance_ground_truth, results_of, segm_metrics
from .settings import PanopticEvalConfig


def to_coco_segments(prediction: Dict, label_to_category: Dict[int, int]) -> Tuple[np.ndarray, List[Dict]]:
    """A `predict_panoptic` result -> (ids [H, W] int32, COCO `segments_info`), segments without
    pixels left out."""
    ids = prediction["ids"].cpu().numpy().astype(np.int32)
    segments = []
    for s in prediction["segments_info"]:
        if s["area"] == 0:
            continue
        ys, xs = np.nonzero(ids == s["id"])
        segments.append({"id": s["id"], "category_id": int(label_to_category.get(s["label"], s["label"])),
                         "iscrowd": 0, "area": int(s["area"]),
                         "bbox": [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
                                  int(ys.max() - ys.min() + 1)]})
    return ids, segments


class PanopticEvaluator:
    def __init__(self, batch_size: int = 8, write_predictions: bool = True, label_to_category=None,
                 segm: bool = False):
        self.batch_size = batch_size
        self.write_predictions = write_predictions
        self.label_to_category = label_to_category
        self.segm = segm

    @torch.no_grad()
    def predictions(self, model, dataset, device):
        """Yield (image_id, panoptic result, instance result or None) over the data set, from one
        forward pass per batch."""
        from trackformer.utils import progress, to_device
        from trackformer_detr.detr import as_padded_batch, original_sizes
        from trackformer_detr.postprocess import PostProcess

        from .postprocess import instance_masks, panoptic

        net = getattr(model, "module", model)
        loader = torch.utils.data.DataLoader(dataset, batch_size=self.batch_size, shuffle=False,
                                             collate_fn=getattr(dataset, "collate_fn", None))
        for inputs, targets in progress(loader, desc="eval panoptic"):
            inputs = to_device(inputs, device)
            outputs = net(inputs)
            mask, sizes = as_padded_batch(inputs)[1], original_sizes(inputs, targets)
            pan = panoptic(outputs, mask, sizes, net.is_thing, net.threshold)
            inst = instance_masks(PostProcess()(outputs, sizes), outputs["pred_masks"], mask, sizes) \
                if self.segm else [None] * len(pan)
            for t, p, i in zip(targets, pan, inst):
                yield int(t["image_id"]), p, i

    def evaluate(self, model, dataset, device, output_dir=None) -> Dict[str, float]:
        was_training = model.training
        model.eval()
        gt_json, gt_folder, image_ids = dataset.panoptic_ground_truth()
        gt = load_panoptic_json(gt_json)
        categories = {c["id"]: c for c in gt["categories"]}
        gt_by_image = {a["image_id"]: a for a in gt["annotations"]}
        label_map = self.label_to_category or dataset.info.get("label_to_category") or {}
        stats, written, segm_results = [], [], []
        things = {c["id"] for c in gt["categories"] if c["isthing"] == 1}
        for image_id, prediction, instances in self.predictions(model, dataset, device):
            if instances is not None:
                segm_results += results_of(image_id, instances, label_map, things)
            ids, segments = to_coco_segments(prediction, label_map)
            gt_ann = gt_by_image[image_id]
            gt_ids = read_id_png(Path(gt_folder) / gt_ann["file_name"])
            stats.append(image_stats(image_id, gt_ids, gt_ann["segments_info"], ids, segments, categories))
            written.append(({"image_id": image_id, "file_name": Path(gt_ann["file_name"]).with_suffix(".png").name,
                             "segments_info": segments}, ids))
        model.train(was_training)
        if output_dir is not None and self.write_predictions:
            folder = Path(output_dir) / "panoptic_predictions"
            write_panoptic(folder, folder.with_suffix(".json"), written, gt["categories"])
        metrics = summary(average(accumulate(stats), categories))
        if self.segm:
            metrics.update(segm_metrics(instance_ground_truth(gt, gt_folder, image_ids), segm_results))
        return metrics


def build(cfg: PanopticEvalConfig, data_info=None, **context) -> PanopticEvaluator:
    return PanopticEvaluator(cfg.batch_size, cfg.write_predictions, (data_info or {}).get("label_to_category"),
                             cfg.segm)
