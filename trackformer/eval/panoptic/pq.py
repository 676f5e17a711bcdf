"""Panoptic quality (Kirillov et al. 2019) over a data set, equal to panopticapi's `pq_compute`.

`pq_compute(gt_json, pred_json, gt_folder, pred_folder)` takes the same files and returns the same
structure, `{"All"|"Things"|"Stuff": {"pq", "sq", "rq", "n"}, "per_class": {category: {"pq", "sq",
"rq"}}}` in 0..1; `summary` flattens it to the metric names of the runs (PQ, SQ, RQ, PQ_th, SQ_th,
RQ_th, PQ_st, SQ_st, RQ_st, fractions). Per category PQ = ΣIoU / (TP + ½FP + ½FN), SQ = ΣIoU / TP
(0 without TP), RQ = TP / (TP + ½FP + ½FN); categories with TP + FP + FN = 0 leave the means.
"""
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, Iterable, Optional, Tuple

import numpy as np

from trackformer.data.panoptic_format import load_panoptic_json, read_id_png
from trackformer.errors import DataError

from .matching import image_stats

Stats = Dict[int, np.ndarray]  # category id -> [sum IoU, TP, FP, FN]


def accumulate(per_image: Iterable[Dict[int, Tuple]]) -> Stats:
    total: Stats = {}
    for stats in per_image:
        for cat, values in stats.items():
            total[cat] = total.get(cat, np.zeros(4)) + np.asarray(values, dtype=np.float64)
    return total


def average(stats: Stats, categories: Dict[int, Dict]) -> Dict:
    """panopticapi's `pq_average` for All, Things and Stuff, plus `per_class` (of All). A group
    without any counted category has n = 0 and 0.0 everywhere (panopticapi divides by zero)."""
    results, per_class = {}, {}
    for name, isthing in (("All", None), ("Things", True), ("Stuff", False)):
        sums, n = np.zeros(3), 0
        for cat, info in categories.items():
            if isthing is not None and (info["isthing"] == 1) != isthing:
                continue
            iou, tp, fp, fn = stats.get(cat, np.zeros(4))
            if tp + fp + fn == 0:
                per_class[cat] = {"pq": 0.0, "sq": 0.0, "rq": 0.0}
                continue
            n += 1
            denominator = tp + 0.5 * fp + 0.5 * fn
            per_class[cat] = {"pq": iou / denominator, "sq": iou / tp if tp else 0.0, "rq": tp / denominator}
            sums += [per_class[cat]["pq"], per_class[cat]["sq"], per_class[cat]["rq"]]
        means = sums / n if n else sums
        results[name] = {"pq": float(means[0]), "sq": float(means[1]), "rq": float(means[2]), "n": n}
    results["per_class"] = {c: {k: float(v) for k, v in r.items()} for c, r in per_class.items()}
    return results


def summary(results: Dict) -> Dict[str, float]:
    """{"PQ", "SQ", "RQ", "PQ_th", "SQ_th", "RQ_th", "PQ_st", "SQ_st", "RQ_st"} as fractions."""
    out = {}
    for group, suffix in (("All", ""), ("Things", "_th"), ("Stuff", "_st")):
        for key in ("pq", "sq", "rq"):
            out[key.upper() + suffix] = results[group][key]
    return out


def pq_compute(gt_json_file, pred_json_file, gt_folder=None, pred_folder=None,
               image_ids: Optional[Iterable] = None, num_threads: int = 1) -> Dict:
    """PQ of the predictions against the ground truth, from COCO panoptic files (folders default to
    the JSON path without `.json`). Every GT image (or each of `image_ids`) needs a prediction.
    `num_threads` > 1 decodes the PNGs (most of the time) in that many threads of this process."""
    gt = load_panoptic_json(gt_json_file)
    pred = load_panoptic_json(pred_json_file, need_categories=False)
    gt_folder = Path(gt_folder) if gt_folder else Path(str(gt_json_file)[:-len(".json")])
    pred_folder = Path(pred_folder) if pred_folder else Path(str(pred_json_file)[:-len(".json")])
    categories = {c["id"]: c for c in gt["categories"]}
    predictions = {a["image_id"]: a for a in pred["annotations"]}
    wanted = None if image_ids is None else set(image_ids)

    pairs = []
    for gt_ann in gt["annotations"]:
        if wanted is not None and gt_ann["image_id"] not in wanted:
            continue
        if gt_ann["image_id"] not in predictions:
            raise DataError(pred_json_file, f"no prediction for the image with id {gt_ann['image_id']}")
        pairs.append((gt_ann, predictions[gt_ann["image_id"]]))

    def decode(pair):
        gt_ann, pred_ann = pair
        return read_id_png(gt_folder / gt_ann["file_name"]), read_id_png(pred_folder / pred_ann["file_name"])

    def per_image(decoded):
        for (gt_ann, pred_ann), (gt_ids, pred_ids) in zip(pairs, decoded):
            if gt_ids.shape != pred_ids.shape:
                raise DataError(pred_folder / pred_ann["file_name"],
                                f"size {pred_ids.shape} differs from the ground truth's {gt_ids.shape}")
            yield image_stats(gt_ann["image_id"], gt_ids, gt_ann["segments_info"], pred_ids,
                              pred_ann["segments_info"], categories)

    if num_threads <= 1:
        return average(accumulate(per_image(map(decode, pairs))), categories)
    with ThreadPoolExecutor(num_threads) as pool:  # PIL releases the GIL while it inflates
        return average(accumulate(per_image(pool.map(decode, pairs))), categories)
