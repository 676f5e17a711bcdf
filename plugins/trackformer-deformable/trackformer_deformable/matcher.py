"""Deformable DETR's Hungarian matcher: DETR's (`trackformer_detr.matcher.HungarianMatcher`: L1 and GIoU
box costs, one batched cost, scipy per image) with the focal class cost of the official code,

cost_class = alpha (1 - p)^gamma (-log(p + 1e-8)) - (1 - alpha) p^gamma (-log(1 - p + 1e-8)),

p = sigmoid(logit of the target class): the focal loss the query would pay as a positive minus the one
it pays as a negative. Weights (official): class 2, L1 5, GIoU 2.
"""
from torch import Tensor

from trackformer_detr.matcher import HungarianMatcher

from .settings import FocalHungarianConfig


def focal_class_cost(prob: Tensor, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    """Sigmoid probabilities -> the official focal matching cost, elementwise."""
    neg = (1 - alpha) * prob ** gamma * -(1 - prob + 1e-8).log()
    pos = alpha * (1 - prob) ** gamma * -(prob + 1e-8).log()
    return pos - neg


class FocalHungarianMatcher(HungarianMatcher):
    def __init__(self, cost_class: float = 2.0, cost_bbox: float = 5.0, cost_giou: float = 2.0,
                 focal_alpha: float = 0.25, focal_gamma: float = 2.0):
        super().__init__(cost_class, cost_bbox, cost_giou)
        self.focal_alpha, self.focal_gamma = focal_alpha, focal_gamma

    def class_cost(self, logits: Tensor, img: Tensor, labels: Tensor) -> Tensor:
        """logits [B, Q, C] (sigmoid, no no-object column) -> [sum T, Q]."""
        prob = logits.float()[img, :, labels].sigmoid()  # [sum T, Q]
        return focal_class_cost(prob, self.focal_alpha, self.focal_gamma)


def build(settings: FocalHungarianConfig, **deps) -> FocalHungarianMatcher:
    """The `focal_hungarian` matcher from its settings."""
    return FocalHungarianMatcher(settings.cost_class, settings.cost_bbox, settings.cost_giou,
                                 settings.focal_alpha, settings.focal_gamma)
