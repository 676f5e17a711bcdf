"""The per-identity timeline picture: one row per ground-truth identity, one column per frame, each
cell coloured by the tracker id that covered that person in that frame (the id's colour in the
rendered video), light grey where the person was missed, white where the person is not annotated;
a red bar before a cell marks an identity switch, and each run of one tracker id is labelled with it.

Which tracker box covers which person follows the CLEAR MOT matching (as the official evaluation):
per frame, pairs need IoU >= 0.5, a person keeps the tracker id of the previous frame when it still
qualifies, the rest is an assignment maximising IoU; a switch is a match to another id than the
person's last matched one.
"""
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw
from scipy.optimize import linear_sum_assignment

from .render import colour

MISS, ABSENT, SWITCH, INK = (200, 200, 200), (255, 255, 255), (220, 0, 0), (0, 0, 0)


def _iou_xywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ax2, ay2, bx2, by2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    w = np.clip(np.minimum(ax2[:, None], bx2[None]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(ay2[:, None], by2[None]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = w * h
    return inter / np.maximum(a[:, 2:].prod(1)[:, None] + b[:, 2:].prod(1)[None] - inter, 1e-12)


def coverage(gt, rows: Sequence, frames: Sequence[int]) -> Tuple[List[int], np.ndarray, np.ndarray]:
    """gt: data.mot.Tracks (rows with consider != 0 are used); rows: result rows (frame, id, x, y, w, h, ...).
    -> (gt ids [G], cover [G, F] tracker id per frame (0: missed, -1: not annotated), switch [G, F])."""
    gt = gt.select((gt.score != 0) & np.isin(gt.frame, np.asarray(frames)))
    res = np.asarray(rows, np.float64).reshape(-1, 7) if len(rows) else np.zeros((0, 7))
    ids = sorted(int(i) for i in np.unique(gt.id))
    row_of = {g: k for k, g in enumerate(ids)}
    cover = np.full((len(ids), len(frames)), -1, np.int64)
    switch = np.zeros(cover.shape, bool)
    last, previous = {}, {}                                           # gt id -> tracker id
    for c, f in enumerate(frames):
        g_mask, t_mask = gt.frame == f, res[:, 0] == f
        g_ids, t_ids = gt.id[g_mask], res[t_mask, 1].astype(np.int64)
        cover[[row_of[int(g)] for g in g_ids], c] = 0
        now = {}
        if len(g_ids) and len(t_ids):
            iou = _iou_xywh(gt.boxes[g_mask], res[t_mask, 2:6])
            keep = np.array([[previous.get(int(g)) == int(t) for t in t_ids] for g in g_ids])
            score = np.where(iou >= 0.5 - 1e-12, iou + 1000.0 * keep, 0.0)
            for r, k in zip(*linear_sum_assignment(-score)):
                if score[r, k] > 0:
                    now[int(g_ids[r])] = int(t_ids[k])
        for g, t in now.items():
            cover[row_of[g], c] = t
            switch[row_of[g], c] = g in last and last[g] != t
            last[g] = t
        previous = now
    return ids, cover, switch


def draw_timeline(gt, rows: Sequence, frames: Sequence[int], out_path, title: str = "") -> Path:
    """Writes the PNG (see the module's description) and returns its path."""
    ids, cover, switch = coverage(gt, rows, list(frames))
    n = len(frames)
    cw = max(3, min(16, 960 // max(n, 1)))
    rh, left, top, bottom = 16, 64, 34, 44
    width, height = left + n * cw + 12, top + max(len(ids), 1) * rh + bottom
    im = Image.new("RGB", (width, height), (255, 255, 255))
    d = ImageDraw.Draw(im)
    d.text((4, 4), title or "ground-truth identities over frames", fill=INK)
    d.text((4, 18), "cell colour = tracker id covering the person; grey = missed; red bar = id switch", fill=INK)
    for r, gid in enumerate(ids):
        y = top + r * rh
        d.text((4, y + 2), f"gt {gid}", fill=INK)
        run_start = None
        for c in range(n):
            t = int(cover[r, c])
            fill = ABSENT if t < 0 else MISS if t == 0 else colour(t)
            x = left + c * cw
            d.rectangle([x, y + 1, x + cw - 1, y + rh - 2], fill=fill)
            if switch[r, c]:
                d.rectangle([x, y - 1, x + max(1, cw // 4), y + rh], fill=SWITCH)
            if t > 0 and (c == 0 or cover[r, c - 1] != t):
                run_start = c
            if t > 0 and (c == n - 1 or cover[r, c + 1] != t) and (c - run_start + 1) * cw >= 8 * len(str(t)):
                d.text((left + run_start * cw + 2, y + 2), str(t), fill=INK)
    axis = top + max(len(ids), 1) * rh + 4
    step = max(1, int(np.ceil(40 / cw / 5.0)) * 5)
    for c in range(0, n, step):
        x = left + c * cw
        d.line([x, axis, x, axis + 4], fill=INK)
        d.text((x, axis + 6), str(frames[c]), fill=INK)
    d.text((left, axis + 22), "frame", fill=INK)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    im.save(out_path)
    return out_path


def summary(cover: np.ndarray, switch: np.ndarray) -> Dict[str, int]:
    return {"annotated": int((cover >= 0).sum()), "missed": int((cover == 0).sum()), "switches": int(switch.sum())}
