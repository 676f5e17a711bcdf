"""Perturbed panoptic predictions from a COCO panoptic ground truth (PQ tests and bench/bench_pq.py).

Each GT segment may be shifted by a few pixels (IoU near the 0.5 threshold), split in two, dropped
to VOID, relabelled to another category of its kind, or kept; a few false-positive rectangles of
random categories are painted on top (some over VOID and crowd regions); every id is renumbered at
random in 1..2^24-1. The result is written in the COCO panoptic layout, `segments_info` recounted
from the PNGs.

    python bench/gen_panoptic_case.py GT_JSON GT_FOLDER OUT_JSON [--seed 0]
"""
import argparse
from pathlib import Path

import numpy as np

from trackformer.data.panoptic_format import load_panoptic_json, read_id_png, segments_from_ids, write_panoptic


def perturb_image(rng, ids: np.ndarray, segments, things, stuff):
    """One image: GT ids [H, W] + segments_info -> (pred ids [H, W], {pred id: category})."""
    H, W = ids.shape
    out = ids.copy()
    cats = {}
    next_id = max([s["id"] for s in segments] + [0]) + 1
    for s in segments:
        mask = ids == s["id"]
        cat = s["category_id"]
        u = rng.random()
        if u < 0.1:  # dropped
            out[mask & (out == s["id"])] = 0
            continue
        if u < 0.2:  # relabelled within its kind
            pool = things if cat in things else stuff
            cat = int(rng.choice(pool))
        elif u < 0.45:  # shifted
            dy, dx = rng.integers(-12, 13, size=2)
            shifted = np.roll(np.roll(mask, dy, 0), dx, 1)
            out[mask & (out == s["id"])] = 0
            out[shifted] = s["id"]
        elif u < 0.55:  # split at the middle column of its box
            x0, _, w, _ = s["bbox"]
            right = mask.copy()
            right[:, :x0 + w // 2] = False
            out[right] = next_id
            cats[next_id] = cat
            next_id += 1
        cats[s["id"]] = cat
    for _ in range(rng.integers(0, 3)):  # false positives
        h, w = rng.integers(4, max(5, H // 3)), rng.integers(4, max(5, W // 3))
        y, x = rng.integers(0, H - h), rng.integers(0, W - w)
        out[y:y + h, x:x + w] = next_id
        cats[next_id] = int(rng.choice(things + stuff))
        next_id += 1
    present = np.unique(out)
    cats = {k: v for k, v in cats.items() if k in present}
    new_ids = rng.choice(np.arange(1, 256 ** 3), size=len(cats), replace=False)
    lookup = {old: int(new) for old, new in zip(cats, new_ids)}
    table_keys = np.array([0] + list(lookup), dtype=np.int64)
    table_vals = np.array([0] + list(lookup.values()), dtype=np.int64)
    order = np.argsort(table_keys)
    renumbered = table_vals[order][np.searchsorted(table_keys[order], out)]
    renumbered[~np.isin(out, table_keys)] = 0
    return renumbered, {lookup[k]: v for k, v in cats.items()}


def write_case(gt_json, gt_folder, out_json, seed: int = 0) -> Path:
    gt = load_panoptic_json(gt_json)
    things = [c["id"] for c in gt["categories"] if c["isthing"] == 1]
    stuff = [c["id"] for c in gt["categories"] if c["isthing"] == 0]
    rng = np.random.default_rng(seed)
    out_json = Path(out_json)
    folder = out_json.with_suffix("")
    pairs = []
    for ann in gt["annotations"]:
        ids = read_id_png(Path(gt_folder) / ann["file_name"])
        pred, cats = perturb_image(rng, ids, ann["segments_info"], things, stuff)
        pairs.append(({"image_id": ann["image_id"], "file_name": ann["file_name"],
                       "segments_info": segments_from_ids(pred, cats)}, pred))
    return write_panoptic(folder, out_json, pairs, gt["categories"])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("gt_json")
    parser.add_argument("gt_folder")
    parser.add_argument("out_json")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(write_case(args.gt_json, args.gt_folder, args.out_json, args.seed))
