"""TrackFormer's matching and loss on top of DETR's.

Matching (per image, queries = T track slots then the object queries): a track query whose identity
is present in the current frame is fixed to that object (row and column taken out of the
assignment); a track query whose object left, and every false-positive query, stays unmatched and
learns no-object; the remaining objects are Hungarian-matched to the object queries with DETR's cost,
which plugins may edit through `trackq_edit_matching_cost`. The loss is DETR's, except that track
queries learning no-object keep class weight 1 (no `eos_coef` down-weighting) and padding slots of
images with fewer track queries than the batch maximum weigh 0.
"""
from typing import Dict

import numpy as np
import torch

from trackformer_detr.criterion import SetCriterion
from trackformer_detr.matcher import HungarianMatcher
from trackformer_detr.settings import HungarianConfig, SetCriterionConfig


class TrackMatcher(HungarianMatcher):
    def __init__(self, cost_class: float = 1.0, cost_bbox: float = 5.0, cost_giou: float = 2.0, hook=None):
        super().__init__(cost_class, cost_bbox, cost_giou)
        self.hook = hook  # the plugin manager's hook caller (`trackq_edit_matching_cost`); None: no edits

    def match_image(self, cost: np.ndarray, index: int, outputs: Dict, target: Dict):
        T = outputs.get("num_track_slots", 0)
        match_ids = outputs.get("track_match_ids")
        if not T or match_ids is None or match_ids[index] is None:
            rows, cols = super().match_image(cost[T:], index, outputs, target)
            return rows + T, cols
        ids = match_ids[index].cpu()
        fixed_rows = torch.nonzero(ids >= 0).flatten()
        fixed_cols = ids[fixed_rows]
        free_cols = np.setdiff1d(np.arange(cost.shape[1]), fixed_cols.numpy())
        sub = np.ascontiguousarray(cost[T:][:, free_cols])  # [Q_obj, T_free]
        hook = getattr(self.hook, "trackq_edit_matching_cost", None)
        if hook is not None and sub.size:
            hook(cost=sub, outputs=outputs, index=index, target=target, num_track_slots=T)
        rows, cols = super().match_image(sub, index, outputs, target)
        rows = torch.cat([fixed_rows, rows + T])
        cols = torch.cat([fixed_cols, torch.as_tensor(free_cols, dtype=torch.int64)[cols]])
        return rows, cols


class TrackCriterion(SetCriterion):
    def class_weights(self, outputs, targets, indices, target_classes):
        weights = super().class_weights(outputs, targets, indices, target_classes)  # [B, Q]
        T = outputs.get("num_track_slots", 0)
        if T:
            valid = outputs["track_valid"].to(weights)  # [B, T]: 1 real track query, 0 padding
            weights = weights.clone()
            matched = torch.zeros_like(valid, dtype=torch.bool)
            for b, (rows, _) in enumerate(indices):
                matched[b, rows[rows < T]] = True
            # unmatched track queries learn no-object at full weight; padding slots not at all
            weights[:, :T] = torch.where(matched, weights[:, :T], valid)
        return weights


def build_matcher(settings: HungarianConfig, **deps) -> TrackMatcher:
    """The `track_hungarian` matcher: DETR's costs, track queries fixed to their identities."""
    from trackformer.plugins import load_plugins

    return TrackMatcher(settings.cost_class, settings.cost_bbox, settings.cost_giou, hook=load_plugins().hook)


def build_criterion(settings: SetCriterionConfig, model, matcher=None, **deps) -> TrackCriterion:
    """The `trackformer_criterion`: DETR's settings; classes and auxiliary outputs are the model's."""
    return TrackCriterion(model.num_classes, matcher if matcher is not None else TrackMatcher(),
                          settings.eos_coef, settings.ce_weight, settings.bbox_weight, settings.giou_weight,
                          model.aux_loss)
