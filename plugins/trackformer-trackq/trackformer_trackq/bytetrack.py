"""Two-threshold association in the style of ByteTrack (Zhang et al., ECCV 2022; ifzhang/ByteTrack's
BYTETracker and defaults), written from its description.

Detections split into a high pool (score > `track_thresh`) and a low pool (`low_thresh` < score <
`track_thresh`). Per frame:
  1. confirmed tracked tracks and lost tracks are Kalman-predicted (lost ones with their height
     velocity zeroed) and associated with the HIGH detections (cost 1 - IoU, times the score when
     `fuse_score`; no pair above `match_thresh`); matched lost tracks come back with their old id;
  2. the still unmatched TRACKED tracks (not the lost ones) are associated with the LOW detections
     (cost 1 - IoU, below `second_match_thresh`): occluded, low-scoring people keep their track;
     the tracks left over become lost;
  3. unconfirmed tracks (born last frame) meet the remaining high detections (`unconfirmed_match_thresh`);
     matched ones are confirmed, the others removed;
  4. remaining high detections scoring >= track_thresh + new_track_offset start tracks (confirmed at
     once only in the first frame); low detections never start tracks;
  5. lost tracks older than the buffer are removed; of a tracked and a lost track overlapping with
     IoU > 0.85, the shorter-lived goes.
Output: confirmed tracks matched in this frame, with the Kalman box and the last detection's score.
The assignment never forms a pair above its cost limit (an unmatched row or column costs half the
limit, as lap.lapjv's `cost_limit` does).
"""
from typing import Dict, List, Optional

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from scipy.optimize import linear_sum_assignment

from .settings import ByteTrackConfig
from .sort import iou_matrix

TRACKED, LOST, REMOVED = 0, 1, 2
POS, VEL = 1.0 / 20, 1.0 / 160  # DeepSORT's noise weights (relative to the box height)


class KalmanXYAH:
    """Constant velocity over (cx, cy, a = w/h, h) and their velocities; noise scaled by h."""

    F = np.eye(8)
    F[:4, 4:] = np.eye(4)
    H = np.eye(4, 8)

    def initiate(self, z):
        h = z[3]
        std = [2 * POS * h, 2 * POS * h, 1e-2, 2 * POS * h, 10 * VEL * h, 10 * VEL * h, 1e-5, 10 * VEL * h]
        return np.r_[z, np.zeros(4)], np.diag(np.square(std))

    def predict(self, mean, cov):
        h = mean[3]
        q = np.diag(np.square([POS * h, POS * h, 1e-2, POS * h, VEL * h, VEL * h, 1e-5, VEL * h]))
        return self.F @ mean, self.F @ cov @ self.F.T + q

    def update(self, mean, cov, z):
        h = mean[3]
        S = self.H @ cov @ self.H.T + np.diag(np.square([POS * h, POS * h, 1e-1, POS * h]))
        K = cho_solve(cho_factor(S, lower=True, check_finite=False), (cov @ self.H.T).T, check_finite=False).T
        return mean + (z - self.H @ mean) @ K.T, cov - K @ S @ K.T


def _xyah(box):
    w, h = box[2] - box[0], box[3] - box[1]
    return np.array([box[0] + w / 2, box[1] + h / 2, w / h, h])


class STrack:
    def __init__(self, box, score: float):
        self.det_box, self.score = np.asarray(box, np.float64), float(score)
        self.mean = self.cov = None
        self.id, self.state, self.confirmed = 0, TRACKED, False
        self.frame = self.start_frame = 0

    @property
    def box(self) -> np.ndarray:
        """xyxy from the filter's mean (the detection's box before the first filter step)."""
        if self.mean is None:
            return self.det_box
        cx, cy, a, h = self.mean[:4]
        w = a * h
        return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])

    def start(self, kf, tid: int, frame: int):
        self.mean, self.cov = kf.initiate(_xyah(self.det_box))
        self.id, self.state, self.frame, self.start_frame = tid, TRACKED, frame, frame
        self.confirmed = frame == 1

    def absorb(self, kf, det: "STrack", frame: int):
        """Update with a matched detection (also how a lost track comes back, with its id)."""
        self.mean, self.cov = kf.update(self.mean, self.cov, _xyah(det.det_box))
        self.state, self.confirmed, self.frame, self.score = TRACKED, True, frame, det.score


def assign(cost: np.ndarray, limit: float):
    """Optimal assignment that forms no pair costing more than `limit` -> (pairs, free rows, free cols)."""
    n, m = cost.shape
    if n == 0 or m == 0:
        return [], list(range(n)), list(range(m))
    big = np.full((n + m, n + m), limit / 2.0)
    big[:n, :m] = np.where(cost > limit, limit + 1.0, cost)
    big[n:, m:] = 0.0
    rows, cols = linear_sum_assignment(big)
    pairs = [(r, c) for r, c in zip(rows, cols) if r < n and c < m and cost[r, c] <= limit]
    used_r, used_c = {r for r, _ in pairs}, {c for _, c in pairs}
    return pairs, [r for r in range(n) if r not in used_r], [c for c in range(m) if c not in used_c]


def _cost(tracks: List[STrack], dets: List[STrack], fuse: bool) -> np.ndarray:
    if not tracks or not dets:
        return np.zeros((len(tracks), len(dets)))
    iou = iou_matrix(np.stack([t.box for t in tracks]), np.stack([d.det_box for d in dets]))
    if fuse:
        iou = iou * np.array([d.score for d in dets])[None]
    return 1.0 - iou


class ByteTrack:
    def __init__(self, cfg: ByteTrackConfig = ByteTrackConfig(), frame_rate: float = 30.0):
        self.cfg, self.kf = cfg, KalmanXYAH()
        self.buffer = int(frame_rate / 30.0 * cfg.track_buffer)
        self.reset()

    def reset(self):
        self.tracked: List[STrack] = []
        self.lost: List[STrack] = []
        self.frame, self.next_id = 0, 1
        self.last_low_matches: List[int] = []  # low-pool rows used by step 2 of the last frame (for tests)

    def step(self, boxes, scores) -> List[Dict]:
        """`boxes [N, 4]` xyxy, `scores [N]` in [0, 1]; returns the confirmed tracks matched in this
        frame: dicts `id, box [4], score`."""
        cfg, kf = self.cfg, self.kf
        self.frame += 1
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        scores = np.asarray(scores, np.float64).reshape(-1)
        ok = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        high_rows = np.nonzero(ok & (scores > cfg.track_thresh))[0]
        low_rows = np.nonzero(ok & (scores > cfg.low_thresh) & (scores < cfg.track_thresh))[0]
        high = [STrack(boxes[i], scores[i]) for i in high_rows]
        low = [STrack(boxes[i], scores[i]) for i in low_rows]
        unconfirmed = [t for t in self.tracked if not t.confirmed]
        pool = [t for t in self.tracked if t.confirmed] + self.lost
        for t in pool:
            if t.state != TRACKED:
                t.mean[7] = 0.0
            t.mean, t.cov = kf.predict(t.mean, t.cov)
        active: List[STrack] = []

        # 1. everything predicted x high detections
        pairs, free_t, free_h = assign(_cost(pool, high, cfg.fuse_score), cfg.match_thresh)
        for r, c in pairs:
            pool[r].absorb(kf, high[c], self.frame)
            active.append(pool[r])
        # 2. tracks that were tracked until now x low detections
        rest = [pool[r] for r in free_t if pool[r].state == TRACKED]
        pairs, free_r, _ = assign(_cost(rest, low, False), cfg.second_match_thresh)
        self.last_low_matches = [int(low_rows[c]) for _, c in pairs]
        for r, c in pairs:
            rest[r].absorb(kf, low[c], self.frame)
            active.append(rest[r])
        newly_lost = [rest[r] for r in free_r]
        for t in newly_lost:
            t.state = LOST
        # 3. unconfirmed x remaining high detections
        high = [high[c] for c in free_h]
        pairs, _, free_h = assign(_cost(unconfirmed, high, cfg.fuse_score), cfg.unconfirmed_match_thresh)
        for r, c in pairs:
            unconfirmed[r].absorb(kf, high[c], self.frame)
            active.append(unconfirmed[r])
        # 4. births
        for c in free_h:
            if high[c].score >= cfg.track_thresh + cfg.new_track_offset:
                high[c].start(kf, self.next_id, self.frame)
                self.next_id += 1
                active.append(high[c])
        # 5. bookkeeping
        lost = [t for t in self.lost if t.state == LOST and self.frame - t.frame <= self.buffer] + newly_lost
        self.tracked, self.lost = _drop_duplicates(active, [t for t in lost if t not in active])
        return [{"id": t.id, "box": t.box, "score": t.score} for t in self.tracked if t.confirmed]


def _drop_duplicates(tracked: List[STrack], lost: List[STrack]):
    """Of a tracked and a lost track with IoU > 0.85, the one tracked for fewer frames goes."""
    if not tracked or not lost:
        return tracked, lost
    close = np.argwhere(iou_matrix(np.stack([t.box for t in tracked]), np.stack([t.box for t in lost])) > 0.85)
    drop_t, drop_l = set(), set()
    for p, q in close:
        if tracked[p].frame - tracked[p].start_frame > lost[q].frame - lost[q].start_frame:
            drop_l.add(q)
        else:
            drop_t.add(p)
    return ([t for i, t in enumerate(tracked) if i not in drop_t], [t for i, t in enumerate(lost) if i not in drop_l])


def output_filter(cfg: ByteTrackConfig, box) -> bool:
    """ByteTrack's result filter: area above `min_box_area`, not wider than `max_aspect` x height."""
    w, h = box[2] - box[0], box[3] - box[1]
    return w * h > cfg.min_box_area and (cfg.max_aspect is None or w / h <= cfg.max_aspect)


def normalise_scores(scores: np.ndarray, mode: str) -> np.ndarray:
    """Scores in [0, 1] for the thresholds: `rank` -> each score's quantile among all of them
    (ties share the lower one), `auto` -> `rank` only when some score exceeds 1."""
    scores = np.asarray(scores, np.float64)
    if mode == "none" or len(scores) == 0 or (mode == "auto" and scores.max() <= 1.0):
        return scores
    ordered = np.sort(scores)
    return np.searchsorted(ordered, scores, side="left") / max(len(scores) - 1, 1)


def build(cfg, frame_rate: Optional[float] = None) -> ByteTrack:
    fields = ByteTrackConfig.__dataclass_fields__
    return ByteTrack(ByteTrackConfig(**{k: cfg[k] for k in fields if k in cfg}), frame_rate or 30.0)
