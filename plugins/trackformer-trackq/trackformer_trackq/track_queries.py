"""Track queries during training: which previous-frame outputs become queries for the current frame,
and TrackFormer's false-negative / false-positive augmentation. Both go through the plugin's own hooks
(`trackq_build_track_queries`, `trackq_augment_track_queries`) so another plugin can replace them; the
functions here are the defaults.
"""
import math
from typing import Dict, List, Optional

import torch
from torch import Tensor


def default_build(prev_outputs: Dict, index: int, prev_match, prev_target: Dict, target: Dict) -> Dict:
    out_idx, tgt_idx = prev_match
    prev_ids = prev_target["track_ids"][tgt_idx.to(prev_target["track_ids"].device)]  # [M]
    same = prev_ids[:, None] == target["track_ids"][None, :]  # [M, N]
    if same.shape[1] == 0:  # no object in the current frame: every track query learns no-object
        match_ids = torch.full_like(prev_ids, -1)
    else:
        match_ids = torch.where(same.any(1), same.float().argmax(1), torch.full_like(prev_ids, -1))
    return {"query_ind": out_idx.to(torch.int64), "match_ids": match_ids.to(torch.int64),
            "matched": torch.ones(len(out_idx), dtype=torch.bool)}


def default_augment(queries: Dict, prev_outputs: Dict, index: int, prev_match, fn_prob: float,
                    fp_prob: float, generator: Optional[torch.Generator] = None) -> Dict:
    q = {k: v.cpu() for k, v in queries.items()}
    n = len(q["query_ind"])
    if fn_prob > 0 and n:
        keep = torch.rand(n, generator=generator) >= fn_prob
        q = {k: v[keep] for k, v in q.items()}
    n_kept = len(q["query_ind"])
    if fp_prob > 0 and n:
        boxes = prev_outputs["pred_boxes"][index].detach().cpu()  # [Q, 4] cxcywh
        used = set(prev_match[0].tolist())
        free = [i for i in range(len(boxes)) if i not in used]
        # as TrackFormer: between 0 and ceil(fp_prob * matched) false positives per image
        num_fp = int(torch.randint(int(math.ceil(fp_prob * n)) + 1, (1,), generator=generator))
        anchors = boxes[q["query_ind"][q["matched"]]] if n_kept else boxes[prev_match[0]]
        added = []
        for j in range(min(num_fp, len(free))):
            cand = boxes[free]
            # favour unmatched outputs close to a real object: weight 1 / centre distance
            dist = torch.cdist(cand[:, :2], anchors[j % len(anchors), None, :2]).squeeze(1)
            pick = int(torch.multinomial(1.0 / (dist + 0.02), 1, generator=generator))
            added.append(free.pop(pick))
        if added:
            q = {"query_ind": torch.cat([q["query_ind"], torch.tensor(added, dtype=torch.int64)]),
                 "match_ids": torch.cat([q["match_ids"], torch.full((len(added),), -1, dtype=torch.int64)]),
                 "matched": torch.cat([q["matched"], torch.zeros(len(added), dtype=torch.bool)])}
    return q


def make_track_queries(prev_outputs: Dict, prev_indices: List, prev_targets: List[Dict],
                       targets: List[Dict], fn_prob: float, fp_prob: float,
                       generator: Optional[torch.Generator] = None, hook=None) -> List[Dict]:
    """Writes `track_query_hs_embeds [T, D]` and `track_query_match_ids [T]` into each target (the
    criterion reads them back) and returns the targets. `hook` is the plugin manager's hook caller,
    through which other plugins choose and augment the queries; None uses the defaults here."""
    build_hook = getattr(hook, "trackq_build_track_queries", None)
    augment_hook = getattr(hook, "trackq_augment_track_queries", None)
    for i, (match, prev_t, t) in enumerate(zip(prev_indices, prev_targets, targets)):
        args = dict(prev_outputs=prev_outputs, index=i, prev_match=match, prev_target=prev_t, target=t)
        q = build_hook(**args) if build_hook is not None else None
        if q is None:
            q = default_build(**args)
        aug = dict(queries=q, prev_outputs=prev_outputs, index=i, prev_match=match,
                   fn_prob=fn_prob, fp_prob=fp_prob, generator=generator)
        q2 = augment_hook(**aug) if augment_hook is not None else None
        q = q2 if q2 is not None else default_augment(**aug)
        hs = prev_outputs["hs_embed"][i]  # [Q, D]
        t["track_query_hs_embeds"] = hs[q["query_ind"].to(hs.device)].detach()  # [T, D]
        t["track_query_match_ids"] = q["match_ids"].to(hs.device)  # [T]
    return targets


def pad_track_queries(embeds: List[Tensor], d_model: int, device, dtype):
    """Per-image `[T_i, D]` -> padded `[T_max, B, D]` and validity `[B, T_max]` (True = real)."""
    T = max((len(e) for e in embeds), default=0)
    out = torch.zeros((T, len(embeds), d_model), device=device, dtype=dtype)
    valid = torch.zeros((len(embeds), T), dtype=torch.bool, device=device)
    for b, e in enumerate(embeds):
        out[: len(e), b] = e.to(device=device, dtype=dtype)
        valid[b, : len(e)] = True
    return out, valid
