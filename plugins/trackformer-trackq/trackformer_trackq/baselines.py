"""Tracking by detection without track queries: SORT or ByteTrack over a sequence's public
detections (`det/det.txt`) or over a model's own detections (its object queries, no track queries).

Everything here is in MOTChallenge file coordinates: xyxy with x1 = x, x2 = x + w of the 1-based
files, as the reference SORT script reads det.txt, so that a result row is (frame, id, x1, y1,
x2 - x1, y2 - y1, score) with nothing shifted (a model's 0-based pixel boxes get +1 first).
"""
from typing import Dict, Iterable, List, Optional, Tuple

import numpy as np

from .bytetrack import ByteTrack, normalise_scores, output_filter
from .settings import ByteTrackConfig, SortConfig
from .sort import Sort

Dets = Dict[int, Tuple[np.ndarray, np.ndarray]]     # frame -> (xyxy [N, 4], scores [N])
Row = Tuple[int, int, float, float, float, float, float]
NAMES = ("sort", "bytetrack", "sort_public", "bytetrack_public")


def public_detections(seq_dir, frames: Optional[Iterable[int]] = None, score_norm: str = "none") -> Dets:
    """det/det.txt of a sequence folder -> frame -> (xyxy, scores), for `frames` (default: all present);
    `score_norm` as ByteTrack's (`rank`/`auto`: each score's quantile among the file's)."""
    from trackformer.data import mot
    from trackformer.errors import DataError

    seq = mot.read_sequence(seq_dir, gt=False, det=True)
    if seq.det is None:
        raise DataError(seq.info.path / "det" / "det.txt", "no public detections: the file is missing")
    d = seq.det
    scores = normalise_scores(d.score, score_norm)
    xyxy = np.concatenate([d.boxes[:, :2], d.boxes[:, :2] + d.boxes[:, 2:]], 1)
    wanted = range(1, seq.info.num_frames + 1) if frames is None else frames
    return {f: (xyxy[d.frame == f], scores[d.frame == f]) for f in wanted}


def model_detections(model, frames: Iterable, short: int, max_size: Optional[int], device="cpu",
                     on_frame=None) -> Dets:
    """A TrackFormer/DETR model's detections per frame (object queries only), in file coordinates."""
    out: Dets = {}
    for frame, image in frames:
        boxes, scores = detect(model, image, short, max_size, device)
        out[frame] = (boxes + 1.0, scores)
        if on_frame is not None:
            on_frame(frame)
    return out


def detect(model, image, short: int, max_size: Optional[int], device="cpu"):
    """One frame's detections: (xyxy 0-based pixels [Q, 4], scores [Q]) as numpy, all object queries."""
    import torch

    from .online import _to_pixels, preprocess

    w, h = image.size
    with torch.no_grad():
        out = model.track_step(preprocess(image, short, max_size, device), None)["det"]
    det = _to_pixels(out, w, h)
    return det["boxes"].double().numpy(), det["scores"].double().numpy()


def make_tracker(name: str, sort_cfg: SortConfig, byte_cfg: ByteTrackConfig, frame_rate: float = 30.0):
    """`sort*` -> Sort, `bytetrack*` -> ByteTrack. Public SORT runs as the reference: every detection."""
    from dataclasses import replace

    if name.startswith("sort"):
        return Sort(replace(sort_cfg, detection_threshold=None) if name.endswith("_public") else sort_cfg)
    if name.startswith("bytetrack"):
        return ByteTrack(byte_cfg, frame_rate)
    raise ValueError(f"unknown tracker {name!r}; one of {', '.join(NAMES)}")


def track_detections(tracker, dets: Dets) -> List[Row]:
    """Runs `tracker` (Sort or ByteTrack, reset first) over every frame of `dets` in order, empty
    frames included (SORT's counters need them); ByteTrack's output filter applied to its rows."""
    tracker.reset()
    keep = (lambda box: output_filter(tracker.cfg, box)) if isinstance(tracker, ByteTrack) else (lambda box: True)
    rows: List[Row] = []
    for frame in sorted(dets):
        boxes, scores = dets[frame]
        for r in tracker.step(boxes, scores):
            b = r["box"]
            if keep(b):
                rows.append((frame, r["id"], float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1]),
                             float(r["score"])))
    return rows
