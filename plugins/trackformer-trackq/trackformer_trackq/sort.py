"""SORT (Bewley et al., ICIP 2016): the tracking-by-detection baseline run on the same detector.

Each track is a constant-velocity Kalman filter over (cx, cy, area, aspect); per frame the predicted
boxes are associated with the detections by Hungarian matching on IoU (pairs below `iou_threshold`
rejected); unmatched detections start tracks, which are reported once confirmed by `min_hits`
consecutive hits (or during the first `min_hits` frames) and deleted after `max_age` frames unmatched.
"""
from typing import Dict, List

import numpy as np
from scipy.optimize import linear_sum_assignment

from .settings import SortConfig


def _to_z(box):
    """xyxy -> [cx, cy, area, aspect] as a column."""
    w, h = box[2] - box[0], box[3] - box[1]
    return np.array([box[0] + w / 2, box[1] + h / 2, w * h, w / max(h, 1e-6)]).reshape(4, 1)


def _to_box(x):
    w = np.sqrt(max(x[2, 0] * x[3, 0], 0.0))
    h = x[2, 0] / w if w > 0 else 0.0
    return np.array([x[0, 0] - w / 2, x[1, 0] - h / 2, x[0, 0] + w / 2, x[1, 0] + h / 2])


class KalmanBoxTrack:
    """State [cx, cy, s, r, vcx, vcy, vs]; the aspect ratio r is assumed constant."""

    _F = np.eye(7)
    _F[0, 4] = _F[1, 5] = _F[2, 6] = 1
    _H = np.eye(4, 7)
    _R = np.diag([1.0, 1.0, 10.0, 10.0])
    _Q = np.diag([1.0, 1.0, 1.0, 1.0, 0.01, 0.01, 0.0001])

    def __init__(self, box, tid: int, score: float):
        self.x = np.zeros((7, 1))
        self.x[:4] = _to_z(box)
        # unobserved velocities start very uncertain
        self.P = np.diag([10.0, 10.0, 10.0, 10.0, 1e4, 1e4, 1e4])
        self.id, self.score = tid, score
        self.time_since_update, self.hits, self.hit_streak, self.age = 0, 0, 0, 0

    def predict(self) -> np.ndarray:
        if self.x[6, 0] + self.x[2, 0] <= 0:  # the area must not become negative
            self.x[6, 0] = 0.0
        self.x = self._F @ self.x
        self.P = self._F @ self.P @ self._F.T + self._Q
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
        y = _to_z(box) - self._H @ self.x
        S = self._H @ self.P @ self._H.T + self._R
        K = self.P @ self._H.T @ np.linalg.inv(S)
        self.x = self.x + K @ y
        self.P = (np.eye(7) - K @ self._H) @ self.P

    def box(self) -> np.ndarray:
        return _to_box(self.x)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[N,4] x [M,4] xyxy -> [N,M]."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None] - inter, 1e-9)


def associate(dets: np.ndarray, trks: np.ndarray, iou_threshold: float):
    """Hungarian matching on IoU; returns (matches [(d, t)], unmatched dets, unmatched tracks)."""
    if len(dets) == 0 or len(trks) == 0:
        return [], list(range(len(dets))), list(range(len(trks)))
    iou = iou_matrix(dets, trks)
    rows, cols = linear_sum_assignment(-iou)
    matches = [(r, c) for r, c in zip(rows, cols) if iou[r, c] >= iou_threshold]
    md, mt = {r for r, _ in matches}, {c for _, c in matches}
    return matches, [d for d in range(len(dets)) if d not in md], [t for t in range(len(trks)) if t not in mt]


class Sort:
    def __init__(self, cfg: SortConfig = SortConfig()):
        self.cfg = cfg
        self.reset()

    def reset(self):
        self.tracks: List[KalmanBoxTrack] = []
        self.frame_count = 0
        self.next_id = 1

    def step(self, boxes, scores) -> List[Dict]:
        """`boxes [N,4]` xyxy pixels and `scores [N]` of this frame's detections (any array-like);
        returns the confirmed tracks updated in this frame: dicts `id, box [4], score`."""
        cfg = self.cfg
        self.frame_count += 1
        boxes, scores = np.asarray(boxes, dtype=np.float64).reshape(-1, 4), np.asarray(scores, dtype=np.float64)
        keep = (scores > cfg.detection_threshold) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        boxes, scores = boxes[keep], scores[keep]
        predicted = np.array([t.predict() for t in self.tracks]).reshape(-1, 4)
        valid = np.isfinite(predicted).all(axis=1)
        self.tracks = [t for t, v in zip(self.tracks, valid) if v]
        predicted = predicted[valid]
        matches, unmatched, _ = associate(boxes, predicted, cfg.iou_threshold)
        for d, t in matches:
            self.tracks[t].update(boxes[d], scores[d])
        for d in unmatched:
            self.tracks.append(KalmanBoxTrack(boxes[d], self.next_id, scores[d]))
            self.next_id += 1
        out = []
        for t in self.tracks:
            if t.time_since_update < 1 and (t.hit_streak >= cfg.min_hits or self.frame_count <= cfg.min_hits):
                out.append({"id": t.id, "box": t.box(), "score": t.score})
        self.tracks = [t for t in self.tracks if t.time_since_update <= cfg.max_age]
        return out


def build(cfg) -> Sort:
    fields = SortConfig.__dataclass_fields__
    return Sort(SortConfig(**{k: cfg[k] for k in fields if k in cfg}))
