"""Running a trained model over a sequence: the TrackFormer tracker (track queries) and the SORT
baseline on the same detector (object queries alone), writing MOTChallenge result rows.

A frame source yields `(frame_number, PIL image)` (1-based numbers as in MOTChallenge files).
Result rows: `frame, id, x, y, w, h, score` with x, y the 1-based top-left corner.
"""
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from trackformer.data.transforms import IMAGENET_MEAN, IMAGENET_STD, resized_size
from trackformer.ops.boxes import box_cxcywh_to_xyxy

from .sort import Sort
from .tracker import Tracker

Row = Tuple[int, int, float, float, float, float, float]


@dataclass
class Timing:
    """Seconds spent in the network vs. the whole per-frame step (for the overhead benchmark)."""
    model: float = 0.0
    total: float = 0.0
    frames: int = 0


def preprocess(image: Image.Image, short: int, max_size: Optional[int], device) -> torch.Tensor:
    w, h = image.size
    nh, nw = resized_size((w, h), short, max_size) if short else (h, w)
    x = TF.to_tensor(image if (nh, nw) == (h, w) else image.resize((nw, nh), Image.BILINEAR))
    return TF.normalize(x, list(IMAGENET_MEAN), list(IMAGENET_STD)).to(device)  # [3, H', W']


def _to_pixels(out: Dict, w: int, h: int) -> Dict:
    boxes = box_cxcywh_to_xyxy(out["boxes"].float()) * torch.tensor([w, h, w, h], device=out["boxes"].device)
    return {"scores": out["scores"].float().cpu(), "boxes": boxes.cpu(), "embeds": out["embeds"]}


def _row(frame: int, tid: int, box, score: float) -> Row:
    x1, y1, x2, y2 = (float(v) for v in box)
    return (frame, tid, x1 + 1, y1 + 1, x2 - x1, y2 - y1, float(score))


def _reset_model(model):
    """A new sequence: models that keep the previous frame (multi-frame attention) forget it."""
    reset = getattr(model, "reset_tracking", None)
    if reset is not None:
        reset()


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


@torch.no_grad()
def track_sequence(model, frames: Iterable, tracker: Tracker, short: int, max_size: Optional[int],
                   device="cpu", public_dets: Optional[Dict[int, np.ndarray]] = None,
                   timing: Optional[Timing] = None, on_frame: Optional[Callable] = None) -> List[Row]:
    """TrackFormer online tracking. `public_dets` maps frame -> xyxy pixel boxes [P, 4]."""
    model.eval()
    tracker.reset()
    _reset_model(model)
    rows: List[Row] = []
    for frame, image in frames:
        t0 = time.perf_counter()
        w, h = image.size
        x = preprocess(image, short, max_size, device)
        queries = tracker.queries()
        _sync(device)
        t1 = time.perf_counter()
        out = model.track_step(x, queries.to(device) if queries is not None else None)
        _sync(device)
        t2 = time.perf_counter()
        track_out = _to_pixels(out["track"], w, h) if queries is not None else None
        public = None if public_dets is None else torch.as_tensor(public_dets.get(frame, np.zeros((0, 4))))
        raw = TF.to_tensor(image) if tracker.embed is not None else None
        for r in tracker.step(track_out, _to_pixels(out["det"], w, h), public_boxes=public, image=raw):
            rows.append(_row(frame, r["id"], r["box"], r["score"]))
        t3 = time.perf_counter()
        if timing is not None:
            timing.model += t2 - t1
            timing.total += t3 - t0
            timing.frames += 1
        if on_frame is not None:
            on_frame(frame)
    return rows


@torch.no_grad()
def sort_sequence(model, frames: Iterable, sort: Sort, short: int, max_size: Optional[int],
                  device="cpu", on_frame: Optional[Callable] = None) -> List[Row]:
    """The SORT baseline on the model's detections (object queries only, no track queries)."""
    model.eval()
    sort.reset()
    _reset_model(model)
    rows: List[Row] = []
    for frame, image in frames:
        w, h = image.size
        det = _to_pixels(model.track_step(preprocess(image, short, max_size, device), None)["det"], w, h)
        for r in sort.step(det["boxes"].numpy(), det["scores"].numpy()):
            rows.append(_row(frame, r["id"], r["box"], r["score"]))
        if on_frame is not None:
            on_frame(frame)
    return rows


def write_results(rows: List[Row], path) -> Path:
    """MOTChallenge result file `frame,id,x,y,w,h,conf,-1,-1,-1` through the core's writer."""
    from trackformer.data.mot import write_results as write

    a = np.asarray(rows, dtype=np.float64).reshape(-1, 7)
    return write(path, a[:, 0].astype(np.int64), a[:, 1].astype(np.int64), a[:, 2:6], a[:, 6])


def read_public_detections(seq_dir, min_score: float = 0.0) -> Dict[int, np.ndarray]:
    """det/det.txt -> frame -> xyxy 0-based pixel boxes, restricted to the frames present."""
    from trackformer.data import mot

    seq = mot.read_sequence(seq_dir, gt=False, det=True)
    out: Dict[int, np.ndarray] = {}
    if seq.det is None:
        return out
    d = seq.det.select(seq.det.score >= min_score)
    xyxy = np.concatenate([d.boxes[:, :2] - 1, d.boxes[:, :2] - 1 + d.boxes[:, 2:]], 1)
    for f in np.unique(d.frame):
        out[int(f)] = xyxy[d.frame == f]
    return out
