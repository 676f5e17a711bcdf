"""HOTA (Luiten et al., IJCV 2021): DetA, AssA, LocA and friends over 19 IoU thresholds.

Same definition and arithmetic as the official evaluation (TrackEval's `HOTA`), computed on the sparse
pairs of `Prepared`: the global alignment between ids is accumulated only where boxes overlap, the
per-frame matching solves only frames that are not trivially determined (see assign.py), and the 19
thresholds are applied to the flat list of matches at once instead of frame by frame.
"""
import numpy as np

from .assign import frame_matches

EPS = np.finfo("float").eps
ALPHAS = np.arange(0.05, 0.99, 0.05)          # [19], exactly the official thresholds
COUNT_FIELDS = ("HOTA_TP", "HOTA_FN", "HOTA_FP")
AVERAGED_FIELDS = ("AssA", "AssRe", "AssPr")


def _line_sums(p, dense_frames):
    """Row and column sums of every frame's similarity matrix, bit-identical to numpy's on the dense
    matrix: a sum of at most two non-zeros is exact in any order, so only frames with a row or a
    column of three or more overlaps are summed densely."""
    row = np.bincount(p.pair_gt, weights=p.pair_sim, minlength=p.num_gt)       # [G]
    col = np.bincount(p.pair_trk, weights=p.pair_sim, minlength=p.num_trk)     # [K]
    for f in dense_frames:
        g0, g1, t0, t1 = p.gt_start[f], p.gt_start[f + 1], p.trk_start[f], p.trk_start[f + 1]
        lo, hi = np.searchsorted(p.pair_gt, [g0, g1])
        dense = np.zeros((g1 - g0, t1 - t0))
        dense[p.pair_gt[lo:hi] - g0, p.pair_trk[lo:hi] - t0] = p.pair_sim[lo:hi]
        row[g0:g1] = dense.sum(1)
        col[t0:t1] = dense.sum(0)
    return row, col


def _crowded_frames(p):
    rows = np.bincount(p.pair_gt, minlength=p.num_gt)
    cols = np.bincount(p.pair_trk, minlength=p.num_trk)
    frames = np.r_[p.gt_frame[rows >= 3], p.trk_frame[cols >= 3]]
    return np.unique(frames)


def hota_sequence(p) -> dict:
    """Per-threshold counts and averages of one sequence (the fields `hota_final` reads)."""
    n = len(ALPHAS)
    res = {k: np.zeros(n) for k in COUNT_FIELDS + AVERAGED_FIELDS}
    res["LocA"] = np.ones(n)
    if p.num_trk == 0 or p.num_gt == 0:
        res["HOTA_FN"][:] = p.num_gt if p.num_trk == 0 else 0
        res["HOTA_FP"][:] = p.num_trk if p.num_trk > 0 else 0
        return res
    gt_count = np.bincount(p.gt_id, minlength=p.num_gt_ids).astype(float)       # [num_gt_ids]
    trk_count = np.bincount(p.trk_id, minlength=p.num_trk_ids).astype(float)    # [num_trk_ids]

    # global alignment: sum over frames of sim / (row sum + column sum - sim), per id pair
    row, col = _line_sums(p, _crowded_frames(p))
    denom = col[p.pair_trk] + row[p.pair_gt] - p.pair_sim
    sim_iou = np.zeros_like(p.pair_sim)
    ok = denom > EPS
    sim_iou[ok] = p.pair_sim[ok] / denom[ok]
    gid, tid = p.gt_id[p.pair_gt], p.trk_id[p.pair_trk]
    keys, key_of_pair = np.unique(gid * p.num_trk_ids + tid, return_inverse=True)
    potential = np.bincount(key_of_pair, weights=sim_iou)       # accumulates in frame order
    key_g, key_t = keys // p.num_trk_ids, keys % p.num_trk_ids
    alignment = potential / (gt_count[key_g] + trk_count[key_t] - potential)

    # per-frame matching that maximises alignment-weighted similarity
    score = alignment[key_of_pair] * p.pair_sim
    mg, mt = frame_matches(p.pair_gt, p.pair_trk, score, p.gt_start, p.trk_start, min_score=0.0)
    pos = np.searchsorted(p.pair_gt * p.num_trk + p.pair_trk, mg * p.num_trk + mt)
    match_sim = p.pair_sim[pos]                                                  # [M]
    match_key = key_of_pair[pos]
    m_keys, m_inv = np.unique(match_key, return_inverse=True)
    m_gc, m_tc = gt_count[key_g[m_keys]], trk_count[key_t[m_keys]]

    for a, alpha in enumerate(ALPHAS):
        hit = match_sim >= alpha - EPS
        tp = float(hit.sum())
        res["HOTA_TP"][a] = tp
        res["HOTA_FN"][a] = p.num_gt - tp
        res["HOTA_FP"][a] = p.num_trk - tp
        res["LocA"][a] = max(1e-10, match_sim[hit].sum()) / max(1e-10, tp)
        counts = np.bincount(m_inv[hit], minlength=len(m_keys)).astype(float)   # matches per id pair
        res["AssA"][a] = np.sum(counts * (counts / np.maximum(1, m_gc + m_tc - counts))) / max(1, tp)
        res["AssRe"][a] = np.sum(counts * (counts / np.maximum(1, m_gc))) / max(1, tp)
        res["AssPr"][a] = np.sum(counts * (counts / np.maximum(1, m_tc))) / max(1, tp)
    return res


def hota_combine(all_res) -> dict:
    """Sequences combined as the official tool does: counts summed, averages weighted by HOTA_TP."""
    res = {k: sum(r[k] for r in all_res) for k in COUNT_FIELDS}
    tp = res["HOTA_TP"]
    for k in AVERAGED_FIELDS:
        res[k] = sum(r[k] * r["HOTA_TP"] for r in all_res) / np.maximum(1.0, tp)
    res["LocA"] = np.maximum(1e-10, sum(r["LocA"] * r["HOTA_TP"] for r in all_res)) / np.maximum(1e-10, tp)
    return res


def hota_final(res) -> dict:
    """Summary values: each the mean over the 19 thresholds, as the official tables report them."""
    tp, fn, fp = res["HOTA_TP"], res["HOTA_FN"], res["HOTA_FP"]
    det_re = tp / np.maximum(1, tp + fn)
    det_pr = tp / np.maximum(1, tp + fp)
    det_a = tp / np.maximum(1, tp + fn + fp)
    hota = np.sqrt(det_a * res["AssA"])
    out = {"HOTA": hota, "DetA": det_a, "AssA": res["AssA"], "DetRe": det_re, "DetPr": det_pr,
           "AssRe": res["AssRe"], "AssPr": res["AssPr"], "LocA": res["LocA"]}
    summary = {k: float(np.mean(v)) for k, v in out.items()}
    summary["HOTA(0)"] = float(hota[0])
    summary["LocA(0)"] = float(res["LocA"][0])
    return summary
