"""Identity metrics (Ristani et al. 2016): IDF1, IDP, IDR from a global one-to-one id assignment.

The official tool (TrackEval's `Identity`) minimises IDFN + IDFP over a dense (G + K)^2 matrix of
all gt and tracker ids. That optimum is the total co-occurrence count (frames where the two boxes
have IoU >= 0.5) of a maximum-weight matching between gt and tracker ids, found here on the sparse
co-occurrence graph (assign.max_weight_matching); counts are integers, so the values are exact.
"""
import numpy as np

from .assign import max_weight_matching

THRESHOLD = 0.5
COUNT_FIELDS = ("IDTP", "IDFN", "IDFP")


def identity_sequence(p) -> dict:
    if p.num_trk == 0 or p.num_gt == 0:
        return {"IDTP": 0, "IDFN": p.num_gt, "IDFP": p.num_trk if p.num_gt == 0 else 0}
    edge = p.pair_sim >= THRESHOLD                         # the official rule has no epsilon here
    key = p.gt_id[p.pair_gt[edge]] * p.num_trk_ids + p.trk_id[p.pair_trk[edge]]
    keys, counts = np.unique(key, return_counts=True)
    idtp = int(round(max_weight_matching(keys // p.num_trk_ids, keys % p.num_trk_ids, counts.astype(float))))
    return {"IDTP": idtp, "IDFN": p.num_gt - idtp, "IDFP": p.num_trk - idtp}


def identity_combine(all_res) -> dict:
    return {k: sum(r[k] for r in all_res) for k in COUNT_FIELDS}


def identity_final(res) -> dict:
    tp, fn, fp = res["IDTP"], res["IDFN"], res["IDFP"]
    return {"IDF1": tp / max(1.0, tp + 0.5 * fp + 0.5 * fn), "IDP": tp / max(1.0, tp + fp),
            "IDR": tp / max(1.0, tp + fn), "IDTP": int(tp), "IDFN": int(fn), "IDFP": int(fp)}
