"""TrackFormer's matching and loss on Deformable DETR: the track-query plugin's rules with the focal terms.

Matching (`focal_track_hungarian`): a track query whose identity is in the current frame is fixed to that
object; a track query whose object left, and every false-positive query, stays unmatched; the remaining
objects are Hungarian-matched to the object queries on the focal class cost, L1 and GIoU (TrackFormer's
official matcher with `focal_loss`). Loss (`deformable_track_criterion`): the sigmoid focal loss, L1 and
GIoU of Deformable DETR; unmatched track queries learn no-object at full weight (the focal loss has no
down-weighting to undo), empty track slots of images with fewer track queries than the batch maximum
weigh 0.
"""
from typing import Dict

from torch import Tensor

from trackformer_trackq.criterion import TrackMatcher

from .criterion import DeformableCriterion
from .matcher import focal_class_cost
from .settings import DeformableCriterionConfig, FocalHungarianConfig


class FocalTrackMatcher(TrackMatcher):
    def __init__(self, cost_class: float = 2.0, cost_bbox: float = 5.0, cost_giou: float = 2.0,
                 focal_alpha: float = 0.25, focal_gamma: float = 2.0, hook=None):
        super().__init__(cost_class, cost_bbox, cost_giou, hook=hook)
        self.focal_alpha, self.focal_gamma = focal_alpha, focal_gamma

    def class_cost(self, logits: Tensor, img: Tensor, labels: Tensor) -> Tensor:
        """logits [B, Q, C] (sigmoid, no no-object column) -> [sum T, Q]."""
        return focal_class_cost(logits.float()[img, :, labels].sigmoid(), self.focal_alpha, self.focal_gamma)


class DeformableTrackCriterion(DeformableCriterion):
    def query_weights(self, outputs: Dict):
        """0 on empty track slots, 1 elsewhere ([B, T + Q]); None without empty slots."""
        valid = outputs.get("track_valid")
        if not outputs.get("num_track_slots", 0) or valid is None or bool(valid.all()):
            return None
        weights = valid.new_ones((valid.shape[0], outputs["pred_logits"].shape[1]), dtype=outputs["pred_logits"].dtype)
        weights[:, :valid.shape[1]] = valid.to(weights)
        return weights


def build_matcher(settings: FocalHungarianConfig, **deps) -> FocalTrackMatcher:
    """The `focal_track_hungarian` matcher from its settings."""
    from trackformer.plugins import load_plugins

    return FocalTrackMatcher(settings.cost_class, settings.cost_bbox, settings.cost_giou, settings.focal_alpha,
                             settings.focal_gamma, hook=load_plugins().hook)


def build_criterion(settings: DeformableCriterionConfig, model, matcher=None, **deps) -> DeformableTrackCriterion:
    """The `deformable_track_criterion`; classes and auxiliary outputs are the model's."""
    return DeformableTrackCriterion(model.num_classes, matcher if matcher is not None else FocalTrackMatcher(),
                                    settings.focal_alpha, settings.focal_gamma, settings.class_weight,
                                    settings.bbox_weight, settings.giou_weight, aux_loss=model.aux_loss)
