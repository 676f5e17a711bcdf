"""From gt and tracker rows to the data the metrics read: IoU of every overlapping pair in each
frame, the MOTChallenge preprocessing, contiguous ids.

All frames are handled at once with flat arrays. A sequence is stored frame-sorted (rows of one
frame keep their file order, which the official tool's per-frame matrices also have), and the
similarity of frame t is the sparse set of its overlapping (gt, tracker) pairs: the dense [G_t, T_t]
matrix of the official evaluation is zero everywhere else, so both give bit-identical values.

Preprocessing (MOT16/17/20, as the official evaluation): per frame, all gt boxes of any class are
Hungarian-matched to the tracker boxes on IoU >= 0.5; tracker boxes matched to a distractor (classes
2, 7, 8, 12; MOT20 adds 6) are removed; then only gt with consider != 0 and class 1 remain. MOT15
only drops gt with consider == 0.
"""
from dataclasses import dataclass

import numpy as np

from ...errors import ConfigError, DataError
from .assign import frame_matches

EPS = np.finfo("float").eps
PAIR_CHUNK = 1 << 18            # candidate pairs per vectorized IoU step
BENCHMARKS = ("MOT15", "MOT16", "MOT17", "MOT20")
DISTRACTORS = {"MOT16": (2, 7, 8, 12), "MOT17": (2, 7, 8, 12), "MOT20": (2, 6, 7, 8, 12)}
VALID_CLASSES = tuple(range(1, 14))


@dataclass
class Prepared:
    """One sequence ready for the metrics. G gt boxes, K tracker boxes, E overlapping pairs."""
    num_frames: int
    gt_frame: np.ndarray        # [G] 0-based frame, sorted
    gt_id: np.ndarray           # [G] contiguous id 0..num_gt_ids-1
    trk_frame: np.ndarray       # [K]
    trk_id: np.ndarray          # [K]
    gt_start: np.ndarray        # [T + 1] rows of frame t are gt_start[t]:gt_start[t+1]
    trk_start: np.ndarray       # [T + 1]
    pair_gt: np.ndarray         # [E] gt row, sorted by (frame, gt row, tracker row)
    pair_trk: np.ndarray        # [E] tracker row
    pair_sim: np.ndarray        # [E] IoU > 0
    num_gt_ids: int
    num_trk_ids: int

    @property
    def num_gt(self):
        return len(self.gt_id)

    @property
    def num_trk(self):
        return len(self.trk_id)


def _xyxy(boxes):
    # the official tool converts with x1 = x0 + w (not w directly): areas below use the converted corners
    return boxes[:, 0], boxes[:, 1], boxes[:, 0] + boxes[:, 2], boxes[:, 1] + boxes[:, 3]


def pair_ious(gt_boxes, trk_boxes, gt_frame, trk_frame, trk_start):
    """IoU of all (gt, tracker) pairs that overlap within the same frame.

    gt_boxes [G, 4], trk_boxes [K, 4] xywh with their 0-based frames, frame-sorted; trk_start [T + 1]
    the tracker rows of each frame. Returns (gt row [E], tracker row [E], IoU [E] > 0) sorted by
    (gt row, tracker row), i.e. by frame. The arithmetic is the official tool's, operation for
    operation, so values match it bit for bit.

    Candidates come from a sweep along x instead of all G_t x T_t pairs: tracker boxes sorted by
    (frame, x0); a gt box [ax0, ax1] can only overlap those with ax0 - (widest box of the frame) <
    bx0 < ax1, a contiguous run found by binary search."""
    ax0, ay0, ax1, ay1 = _xyxy(gt_boxes)
    bx0, by0, bx1, by1 = _xyxy(trk_boxes)
    if len(ax0) == 0 or len(bx0) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    area_a = (ax1 - ax0) * (ay1 - ay0)
    area_b = (bx1 - bx0) * (by1 - by0)
    # sortable key (frame, x): frames lie `span` apart, more than any gt range plus margins
    lo_x = min(ax0.min(), bx0.min())
    width = np.zeros(len(trk_start) - 1)
    np.maximum.at(width, trk_frame, bx1 - bx0)
    span = max(ax1.max(), bx1.max()) - lo_x + 2 * width.max() + 4
    key = trk_frame * span + (bx0 - lo_x)
    by_x = np.argsort(key, kind="stable")                                # [K]
    key = key[by_x]
    low = gt_frame * span + (ax0 - lo_x) - width[gt_frame] - 1
    high = gt_frame * span + (ax1 - lo_x) + 1
    first = np.maximum(np.searchsorted(key, low), trk_start[gt_frame])
    last = np.minimum(np.searchsorted(key, high), trk_start[gt_frame + 1])
    counts = np.maximum(last - first, 0)                                 # [G] candidates per gt box
    out_g, out_t, out_s = [], [], []
    ends = np.cumsum(counts)
    begin = 0
    while begin < len(counts):
        # gt rows [begin, stop) hold at most PAIR_CHUNK candidates: bounds the temporaries
        stop = max(int(np.searchsorted(ends, ends[begin] - counts[begin] + PAIR_CHUNK, "right")), begin + 1)
        c = counts[begin:stop]
        g = np.repeat(np.arange(begin, stop), c)
        t = by_x[np.repeat(first[begin:stop] - np.cumsum(c) + c, c) + np.arange(c.sum())]
        iw = np.minimum(ax1[g], bx1[t]) - np.maximum(ax0[g], bx0[t])
        keep = iw > 0
        g, t, iw = g[keep], t[keep], iw[keep]
        ih = np.minimum(ay1[g], by1[t]) - np.maximum(ay0[g], by0[t])
        keep = ih > 0
        g, t, inter = g[keep], t[keep], iw[keep] * ih[keep]
        union = area_a[g] + area_b[t] - inter
        inter[(area_a[g] <= EPS) | (area_b[t] <= EPS) | (union <= EPS)] = 0
        union[union <= EPS] = 1
        iou = inter / union
        keep = iou > 0
        out_g.append(g[keep])
        out_t.append(t[keep])
        out_s.append(iou[keep])
        begin = stop
    g, t, s = np.concatenate(out_g), np.concatenate(out_t), np.concatenate(out_s)
    order = np.lexsort((t, g))
    return g[order], t[order], s[order]


def _frame_sort(tracks, num_frames):
    order = np.argsort(tracks.frame, kind="stable")                     # keeps file order within a frame
    frame = tracks.frame[order] - 1
    return order, frame, np.searchsorted(frame, np.arange(num_frames + 1))


def _remove_distractor_matches(gt, gt_order, g, t, s, gt_start, trk_start, distractors):
    """Tracker rows (frame-sorted index) that the preprocessing removes."""
    strong = s >= 0.5 - EPS
    g, t, s = g[strong], t[strong], s[strong]
    is_distractor = np.isin(gt.cls[gt_order], distractors)
    if not is_distractor[g].any():
        return np.zeros(0, np.int64)
    mg, mt = frame_matches(g, t, s, gt_start, trk_start, focus=is_distractor)
    return mt[is_distractor[mg]]


def check_benchmark(benchmark: str):
    """The one check of a benchmark name (the entry points call it before any work)."""
    if benchmark not in BENCHMARKS:
        raise ConfigError("benchmark", f"must be one of {', '.join(BENCHMARKS)}, not {benchmark!r}")


def prepare_sequence(gt, trk, num_frames: int, benchmark: str = "MOT17") -> Prepared:
    """gt, trk: `trackformer.data.mot.Tracks` of one sequence (validated by the readers)."""
    check_benchmark(benchmark)
    bad = trk.cls > 1
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(trk.path, f"class {trk.cls[i]}: only pedestrians (class 1 or -1) can be evaluated",
                        line=int(trk.line[i]))
    preprocess = benchmark != "MOT15"
    if preprocess:
        bad = ~np.isin(gt.cls, VALID_CLASSES)
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(gt.path, f"class {gt.cls[i]} is not a MOTChallenge class (1-13); MOT15-style "
                                     f"ground truth needs benchmark MOT15", line=int(gt.line[i]))
    for rows, what in ((gt, "ground truth"), (trk, "results")):
        if len(rows) and rows.frame.max() > num_frames:
            i = int(np.argmax(rows.frame > num_frames))
            raise DataError(rows.path, f"{what} frame {rows.frame[i]} is outside the sequence "
                                       f"(frames 1..{num_frames})", line=int(rows.line[i]))

    gt_order, gt_frame, gt_start = _frame_sort(gt, num_frames)
    trk_order, trk_frame, trk_start = _frame_sort(trk, num_frames)
    g, t, s = pair_ious(gt.boxes[gt_order], trk.boxes[trk_order], gt_frame, trk_frame, trk_start)

    keep_trk = np.ones(len(trk_order), bool)
    keep_gt = gt.score[gt_order] != 0
    if preprocess:
        removed = _remove_distractor_matches(gt, gt_order, g, t, s, gt_start, trk_start,
                                             DISTRACTORS[benchmark])
        keep_trk[removed] = False
        keep_gt &= gt.cls[gt_order] == 1

    # renumber rows after dropping, and ids to 0..n-1 in sorted order (as the official tool does)
    new_gt = np.cumsum(keep_gt) - 1
    new_trk = np.cumsum(keep_trk) - 1
    keep_pair = keep_gt[g] & keep_trk[t]
    gt_ids, gt_id = np.unique(gt.id[gt_order][keep_gt], return_inverse=True)
    trk_ids, trk_id = np.unique(trk.id[trk_order][keep_trk], return_inverse=True)
    gt_frame, trk_frame = gt_frame[keep_gt], trk_frame[keep_trk]
    frames = np.arange(num_frames + 1)
    return Prepared(
        num_frames=num_frames, gt_frame=gt_frame, gt_id=gt_id.reshape(-1), trk_frame=trk_frame,
        trk_id=trk_id.reshape(-1), gt_start=np.searchsorted(gt_frame, frames),
        trk_start=np.searchsorted(trk_frame, frames), pair_gt=new_gt[g[keep_pair]],
        pair_trk=new_trk[t[keep_pair]], pair_sim=s[keep_pair], num_gt_ids=len(gt_ids),
        num_trk_ids=len(trk_ids))
