"""SORT (Bewley et al., ICIP 2016) as the reference implementation (abewley/sort) runs it, so that
its output on a sequence's public detections is reproduced box for box and id for id.

Each track is a constant-velocity Kalman filter over z = (cx, cy, s = w*h, r = w/h) with state
(cx, cy, s, r, vcx, vcy, vs); dt 1; R = diag(1, 1, 10, 10), initial P = diag(10, 10, 10, 10, 1e4,
1e4, 1e4), Q = diag(1, 1, 1, 1, .01, .01, 1e-4); the update uses the Joseph form (filterpy's), so
the arithmetic is the reference's operation for operation. Per frame:
  1. every track predicts (a track whose predicted box is not finite is dropped);
  2. association on IoU: when no detection and no track has two IoUs above `iou_threshold`, those
     pairs; otherwise the assignment maximising the total IoU; then pairs below the threshold split;
  3. matched tracks update; unmatched detections start tracks, in the reference's order (never
     assigned ones first, then split pairs), which fixes the order of new ids;
  4. reported: tracks updated this frame whose streak reached `min_hits` (or during the first
     `min_hits` frames), with the filtered box; tracks unmatched for more than `max_age` frames die.
Scores play no part in the reference; `detection_threshold` (None: off) filters the model's outputs.
"""
from typing import Dict, List

import numpy as np
from scipy.optimize import linear_sum_assignment

from .settings import SortConfig


def _to_z(box) -> np.ndarray:
    """xyxy -> [cx, cy, area, aspect] as a column [4, 1]."""
    w = box[2] - box[0]
    h = box[3] - box[1]
    return np.array([box[0] + w / 2.0, box[1] + h / 2.0, w * h, w / float(h)]).reshape((4, 1))


def _to_box(x) -> np.ndarray:
    """State [7, 1] -> xyxy [4] (not finite when area * aspect < 0)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.sqrt(x[2, 0] * x[3, 0])
        h = x[2, 0] / w
    return np.array([x[0, 0] - w / 2.0, x[1, 0] - h / 2.0, x[0, 0] + w / 2.0, x[1, 0] + h / 2.0])


class KalmanBoxTrack:
    """One track's filter and life-cycle counters."""

    F = np.eye(7)
    F[0, 4] = F[1, 5] = F[2, 6] = 1.0
    H = np.eye(4, 7)
    R = np.diag([1.0, 1.0, 10.0, 10.0])
    Q = np.diag([1.0, 1.0, 1.0, 1.0, 0.01, 0.01, 1e-4])
    I7 = np.eye(7)

    def __init__(self, box, tid: int, score: float):
        self.x = np.zeros((7, 1))
        self.x[:4] = _to_z(box)
        self.P = np.diag([10.0, 10.0, 10.0, 10.0, 1e4, 1e4, 1e4])  # unobserved velocities: very uncertain
        self.id, self.score = tid, score
        self.time_since_update, self.hits, self.hit_streak, self.age = 0, 0, 0, 0

    def predict(self) -> np.ndarray:
        if self.x[6, 0] + self.x[2, 0] <= 0:  # the area must not become negative
            self.x[6, 0] *= 0.0
        self.x = np.dot(self.F, self.x)
        self.P = 1.0 * np.dot(np.dot(self.F, self.P), self.F.T) + self.Q
        self.age += 1
        if self.time_since_update > 0:
            self.hit_streak = 0
        self.time_since_update += 1
        return _to_box(self.x)

    def update(self, box, score: float):
        self.time_since_update = 0
        self.hits += 1
        self.hit_streak += 1
        self.score = score
        y = _to_z(box) - np.dot(self.H, self.x)
        PHT = np.dot(self.P, self.H.T)
        S = np.dot(self.H, PHT) + self.R
        K = np.dot(PHT, np.linalg.inv(S))
        self.x = self.x + np.dot(K, y)
        I_KH = self.I7 - np.dot(K, self.H)
        self.P = np.dot(np.dot(I_KH, self.P), I_KH.T) + np.dot(np.dot(K, self.R), K.T)

    def box(self) -> np.ndarray:
        return _to_box(self.x)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[N, 4] x [M, 4] xyxy -> [N, M] IoU, with the reference's arithmetic."""
    a, b = a[:, None], b[None]
    w = np.maximum(0.0, np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]))
    h = np.maximum(0.0, np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]))
    wh = w * h
    return wh / ((a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1]) + (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
                 - wh)


def associate(dets: np.ndarray, trks: np.ndarray, iou_threshold: float):
    """-> (matches [(det, track)], unmatched detections, unmatched tracks), in the reference's order."""
    if len(trks) == 0 or len(dets) == 0:
        return [], list(range(len(dets))), list(range(len(trks)))
    iou = iou_matrix(dets, trks)                                             # [D, T]
    above = iou > iou_threshold
    if above.sum(1).max() == 1 and above.sum(0).max() == 1:                  # unambiguous: take them
        pairs = list(zip(*np.nonzero(above)))
    else:
        rows, cols = linear_sum_assignment(-iou)
        pairs = list(zip(rows, cols))
    paired_d, paired_t = {int(d) for d, _ in pairs}, {int(t) for _, t in pairs}
    unmatched_d = [d for d in range(len(dets)) if d not in paired_d]
    unmatched_t = [t for t in range(len(trks)) if t not in paired_t]
    matches = []
    for d, t in pairs:
        if iou[d, t] < iou_threshold:
            unmatched_d.append(int(d))
            unmatched_t.append(int(t))
        else:
            matches.append((int(d), int(t)))
    return matches, unmatched_d, unmatched_t


class Sort:
    def __init__(self, cfg: SortConfig = SortConfig()):
        self.cfg = cfg
        self.reset()

    def reset(self):
        self.tracks: List[KalmanBoxTrack] = []
        self.frame_count = 0
        self.next_id = 1

    def step(self, boxes, scores) -> List[Dict]:
        """`boxes [N, 4]` xyxy and `scores [N]` of this frame's detections (call it for every frame,
        empty ones too); returns the reported tracks, dicts `id, box [4], score`, in the reference's
        order (newest track first)."""
        cfg = self.cfg
        self.frame_count += 1
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        if cfg.detection_threshold is not None:
            keep &= scores > cfg.detection_threshold
        boxes, scores = boxes[keep], scores[keep]
        predicted = np.array([t.predict() for t in self.tracks]).reshape(-1, 4)
        valid = np.isfinite(predicted).all(axis=1)
        self.tracks = [t for t, v in zip(self.tracks, valid) if v]
        matches, unmatched, _ = associate(boxes, predicted[valid], cfg.iou_threshold)
        for d, t in matches:
            self.tracks[t].update(boxes[d], scores[d])
        for d in unmatched:
            self.tracks.append(KalmanBoxTrack(boxes[d], self.next_id, scores[d]))
            self.next_id += 1
        out = []
        for t in reversed(self.tracks):
            if t.time_since_update < 1 and (t.hit_streak >= cfg.min_hits or self.frame_count <= cfg.min_hits):
                box = t.box()
                if np.isfinite(box).all():
                    out.append({"id": t.id, "box": box, "score": t.score})
        self.tracks = [t for t in self.tracks if t.time_since_update <= cfg.max_age]
        return out


def build(cfg) -> Sort:
    fields = SortConfig.__dataclass_fields__
    return Sort(SortConfig(**{k: cfg[k] for k in fields if k in cfg}))
