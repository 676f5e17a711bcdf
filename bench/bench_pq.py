"""PQ evaluation time: ours (`trackformer.eval.panoptic.pq_compute`) vs panopticapi's `pq_compute` run
single-process (`pq_compute_single_core`), on the 100 coco128 panoptic images against perturbed
predictions (bench/gen_panoptic_case.py). Both read the same PNGs; the numbers must agree (<= 1e-9).

Two timings: end to end from the files (PNG decoding included, the same PIL decoder for both), and
the matching alone on id maps already decoded (what an evaluator that keeps the GT in memory pays;
panopticapi's per-image code re-run on the arrays).

    python bench/bench_pq.py [--repeats 3] [--seed 0]
"""
import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
ROOT = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "coco128" / "annotations"


def _reference_matching(gt_ids, gt_segments, pred_ids, pred_segments):
    """panopticapi's per-image statistics (evaluation.py, the loop body) on decoded id maps."""
    OFFSET, VOID = 256 * 256 * 256, 0
    gt_segms = {el["id"]: el for el in gt_segments}
    pred_segms = {el["id"]: dict(el) for el in pred_segments}
    labels, labels_cnt = np.unique(pred_ids, return_counts=True)
    for label, label_cnt in zip(labels, labels_cnt):
        if label != VOID:
            pred_segms[label]["area"] = label_cnt
    pan_gt_pred = gt_ids.astype(np.uint64) * OFFSET + pred_ids.astype(np.uint64)
    gt_pred_map = {}
    labels, labels_cnt = np.unique(pan_gt_pred, return_counts=True)
    for label, intersection in zip(labels, labels_cnt):
        gt_pred_map[(label // OFFSET, label % OFFSET)] = intersection
    stats = defaultdict(lambda: [0.0, 0, 0, 0])
    gt_matched, pred_matched = set(), set()
    for (gt_label, pred_label), intersection in gt_pred_map.items():
        if gt_label not in gt_segms or pred_label not in pred_segms or gt_segms[gt_label]["iscrowd"] == 1:
            continue
        if gt_segms[gt_label]["category_id"] != pred_segms[pred_label]["category_id"]:
            continue
        union = pred_segms[pred_label]["area"] + gt_segms[gt_label]["area"] - intersection \
            - gt_pred_map.get((VOID, pred_label), 0)
        iou = intersection / union
        if iou > 0.5:
            stats[gt_segms[gt_label]["category_id"]][0] += iou
            stats[gt_segms[gt_label]["category_id"]][1] += 1
            gt_matched.add(gt_label)
            pred_matched.add(pred_label)
    crowd = {}
    for gt_label, gt_info in gt_segms.items():
        if gt_label in gt_matched:
            continue
        if gt_info["iscrowd"] == 1:
            crowd[gt_info["category_id"]] = gt_label
            continue
        stats[gt_info["category_id"]][3] += 1
    for pred_label, pred_info in pred_segms.items():
        if pred_label in pred_matched:
            continue
        intersection = gt_pred_map.get((VOID, pred_label), 0)
        if pred_info["category_id"] in crowd:
            intersection += gt_pred_map.get((crowd[pred_info["category_id"]], pred_label), 0)
        if intersection / pred_info["area"] > 0.5:
            continue
        stats[pred_info["category_id"]][2] += 1
    return stats


def best_of(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        tic = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - tic)
    return min(times), max(times), out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from panopticapi import evaluation

    from gen_panoptic_case import write_case
    from trackformer.data.panoptic_format import read_id_png
    from trackformer.eval.panoptic import image_stats, pq_compute

    gt_json, gt_folder = ROOT / "panoptic_train2017.json", ROOT / "panoptic_train2017"
    tmp = Path(tempfile.mkdtemp(prefix="bench_pq_"))
    pred_json = write_case(gt_json, gt_folder, tmp / "pred.json", seed=args.seed)
    gt, pred = json.loads(gt_json.read_text()), json.loads(pred_json.read_text())
    categories = {c["id"]: c for c in gt["categories"]}
    by_image = {a["image_id"]: a for a in pred["annotations"]}
    pairs = [(a, by_image[a["image_id"]]) for a in gt["annotations"]]

    def reference():
        with contextlib.redirect_stdout(io.StringIO()):
            stat = evaluation.pq_compute_single_core(0, pairs, str(gt_folder), str(tmp / "pred"), categories)
        return stat.pq_average(categories, isthing=None)[0]

    ours_lo, ours_hi, ours = best_of(lambda: pq_compute(gt_json, pred_json, gt_folder), args.repeats)
    threads_lo, threads_hi, threaded = best_of(lambda: pq_compute(gt_json, pred_json, gt_folder, num_threads=2),
                                               args.repeats)
    assert threaded == ours
    ref_lo, ref_hi, ref = best_of(reference, args.repeats)
    assert ours["All"]["n"] == ref["n"] and all(abs(ours["All"][k] - ref[k]) <= 1e-9 for k in ("pq", "sq", "rq"))

    maps = [(g, read_id_png(gt_folder / g["file_name"]), p, read_id_png(tmp / "pred" / p["file_name"]))
            for g, p in pairs]
    m_ours = best_of(lambda: [image_stats(g["image_id"], a, g["segments_info"], b, p["segments_info"], categories)
                              for g, a, p, b in maps], args.repeats)[0]
    m_ref = best_of(lambda: [_reference_matching(a, g["segments_info"], b, p["segments_info"])
                             for g, a, p, b in maps], args.repeats)[0]
    print(f"PQ {ours['All']['pq']:.6f} SQ {ours['All']['sq']:.6f} RQ {ours['All']['rq']:.6f} (both; "
          f"{len(pairs)} images)")
    print(f"files -> PQ:  ours {ours_lo:.3f}-{ours_hi:.3f} s, pq_compute single core {ref_lo:.3f}-{ref_hi:.3f} s, "
          f"ratio {ours_lo / ref_lo:.2f}x (best of {args.repeats})")
    print(f"files -> PQ, ours decoding in 2 threads: {threads_lo:.3f}-{threads_hi:.3f} s, ratio {threads_lo / ref_lo:.2f}x")
    print(f"matching on decoded maps:  ours {m_ours:.3f} s, panopticapi's {m_ref:.3f} s, ratio {m_ours / m_ref:.2f}x")


if __name__ == "__main__":
    main()
