"""CLEAR MOT (Bernardin & Stiefelhagen 2008): MOTA, MOTP, ID switches, fragmentations, MT/PT/ML.

The official evaluation's rules (TrackEval's `CLEAR`, threshold IoU >= 0.5):
- per frame, a Hungarian matching that first keeps the previous frame's pairs (score + 1000), then
  maximises IoU; "previous frame" is the last frame that had both gt and tracker boxes;
- an ID switch is a gt matched to a tracker id other than the one it was last matched to, however
  long ago (motmetrics instead remembers the last match across unmatched frames when choosing the
  matching too, so its IDSW and MOTA can differ slightly; see docs/mot-eval.md);
- a fragmentation is a track that resumes after being untracked; MT is tracked > 80% of its frames
  (motmetrics: >= 80%), ML < 20%.
Frames whose matching is forced (see assign.py) need no solve; the others are solved in frame order
because the +1000 bonus depends on the previous frame's result.
"""
import numpy as np

from .assign import hard_frames, solve_frame

EPS = np.finfo("float").eps
THRESHOLD = 0.5
COUNT_FIELDS = ("CLR_TP", "CLR_FN", "CLR_FP", "IDSW", "MT", "PT", "ML", "Frag", "CLR_Frames")


def _matches(p):
    """Matched (gt row, tracker row) of every frame in frame order, as the official loop finds them."""
    edge = p.pair_sim >= THRESHOLD - EPS
    g, t, s = p.pair_gt[edge], p.pair_trk[edge], p.pair_sim[edge]
    forced, frames = hard_frames(g, t, np.ones(len(g), bool), p.gt_start)
    edge_frame = np.searchsorted(p.gt_start, g, "right") - 1
    if len(frames) == 0:
        return g[forced], t[forced]
    # frames with boxes on both sides: the official tool only updates its "previous frame" there
    n_gt, n_trk = np.diff(p.gt_start), np.diff(p.trk_start)
    active = np.flatnonzero((n_gt > 0) & (n_trk > 0))
    prev_active = np.full(p.num_frames, -1)
    prev_active[active[1:]] = active[:-1]
    forced_frame = edge_frame[forced]
    fg, ft = g[forced], t[forced]
    solved = {}
    prev_of = np.full(p.num_gt_ids, -1)              # tracker id matched at the previous active frame
    bounds = np.searchsorted(edge_frame, np.stack([frames, frames + 1]))
    for f, lo, hi in zip(frames, bounds[0], bounds[1]):
        q = prev_active[f]
        if q >= 0:
            if q in solved:
                qg, qt = solved[q]
            else:
                a, b = np.searchsorted(forced_frame, [q, q + 1])
                qg, qt = fg[a:b], ft[a:b]
            prev_of[p.gt_id[qg]] = p.trk_id[qt]
        gg, tt = g[lo:hi], t[lo:hi]
        score = 1000.0 * (p.trk_id[tt] == prev_of[p.gt_id[gg]]) + s[lo:hi]
        g0, t0 = p.gt_start[f], p.trk_start[f]
        solved[f] = solve_frame(gg, tt, score, g0, t0, p.gt_start[f + 1] - g0, p.trk_start[f + 1] - t0, EPS)
        if q >= 0:
            prev_of[p.gt_id[qg]] = -1
    in_solved = np.isin(forced_frame, frames)
    mg = np.concatenate([fg[~in_solved]] + [v[0] for v in solved.values()])
    mt = np.concatenate([ft[~in_solved]] + [v[1] for v in solved.values()])
    order = np.argsort(mg, kind="stable")
    return mg[order], mt[order]


def clear_sequence(p) -> dict:
    res = {k: 0 for k in COUNT_FIELDS}
    res["MOTP_sum"] = 0.0
    if p.num_trk == 0 or p.num_gt == 0:
        # the official tool returns early here: rates stay 0 (MOTA too, even with FPs), MLR is 1
        res["empty"] = True
        if p.num_trk == 0:
            res.update(CLR_FN=p.num_gt, ML=p.num_gt_ids)
        else:
            res["CLR_FP"] = p.num_trk
        return res
    mg, mt = _matches(p)
    key = mg * p.num_trk + mt
    pos = np.searchsorted(p.pair_gt * p.num_trk + p.pair_trk, key)
    gid, tid = p.gt_id[mg], p.trk_id[mt]
    tp = len(mg)
    res.update(CLR_TP=tp, CLR_FN=p.num_gt - tp, CLR_FP=p.num_trk - tp, CLR_Frames=p.num_frames,
               MOTP_sum=float(p.pair_sim[pos].sum()))

    # switches and fragmentations from each gt id's matches in time order
    by_id = np.argsort(gid, kind="stable")                    # stable: time order within an id
    gid_s, tid_s = gid[by_id], tid[by_id]
    n_gt, n_trk = np.diff(p.gt_start), np.diff(p.trk_start)
    active_index = np.cumsum((n_gt > 0) & (n_trk > 0)) - 1    # [T] rank among frames with both
    step = active_index[p.gt_frame[mg[by_id]]]
    same = gid_s[1:] == gid_s[:-1]
    res["IDSW"] = int(np.sum(same & (tid_s[1:] != tid_s[:-1])))
    starts = len(gid_s) - int(np.sum(same & (step[1:] - step[:-1] == 1)))
    res["Frag"] = starts - len(np.unique(gid_s))

    gt_count = np.bincount(p.gt_id, minlength=p.num_gt_ids)
    matched = np.bincount(gid, minlength=p.num_gt_ids)
    ratio = matched[gt_count > 0] / gt_count[gt_count > 0]
    res["MT"] = int(np.sum(ratio > 0.8))
    res["PT"] = int(np.sum(ratio >= 0.2)) - res["MT"]
    res["ML"] = p.num_gt_ids - res["MT"] - res["PT"]
    return res


def clear_combine(all_res) -> dict:
    return {k: sum(r[k] for r in all_res) for k in COUNT_FIELDS + ("MOTP_sum",)}


def clear_final(res) -> dict:
    tp, fn, fp, idsw = res["CLR_TP"], res["CLR_FN"], res["CLR_FP"], res["IDSW"]
    num_ids = res["MT"] + res["PT"] + res["ML"]
    counts = {"CLR_TP": int(tp), "FN": int(fn), "FP": int(fp), "IDSW": int(idsw), "MT": int(res["MT"]),
              "PT": int(res["PT"]), "ML": int(res["ML"]), "Frag": int(res["Frag"])}
    if res.get("empty"):
        return {"MOTA": 0.0, "MOTP": 0.0, "MODA": 0.0, "CLR_Re": 0.0, "CLR_Pr": 0.0, "MTR": 0.0, "PTR": 0.0,
                "MLR": 1.0, **counts}
    return {
        "MOTA": (tp - fp - idsw) / max(1.0, tp + fn), "MOTP": res["MOTP_sum"] / max(1.0, tp),
        "MODA": (tp - fp) / max(1.0, tp + fn), "CLR_Re": tp / max(1.0, tp + fn), "CLR_Pr": tp / max(1.0, tp + fp),
        "MTR": res["MT"] / max(1.0, num_ids), "PTR": res["PT"] / max(1.0, num_ids),
        "MLR": res["ML"] / max(1.0, num_ids), **counts,
    }
