"""Deformable DETR's set criterion: DETR's (`trackformer_detr.criterion.SetCriterion`: Hungarian
matching, L1 + GIoU on matched boxes, every auxiliary layer) with the sigmoid focal loss for classes,

loss_ce = sum over all B * Q * C logits of BCE * (1 - p_t)^gamma * alpha_t / num_boxes,

targets one-hot at the matched queries' classes, all zero elsewhere (no no-object class). Weights
(official): class 2, L1 5, GIoU 2. With two-stage, the encoder's proposals (`enc_outputs`) are matched
to the targets as one class and pay the same three losses (suffix `_enc`).
"""
from typing import Dict, List

import torch
import torch.nn.functional as F
from torch import Tensor

from trackformer_detr.criterion import SetCriterion, _num_boxes, class_error

from .settings import DeformableCriterionConfig


def sigmoid_focal_loss(logits: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    """Elementwise focal loss (Lin et al. 2017) of logits against {0, 1} targets of the same shape."""
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    return alpha_t * ce * (1 - p_t) ** gamma


class DeformableCriterion(SetCriterion):
    def __init__(self, num_classes: int, matcher, focal_alpha: float = 0.25, focal_gamma: float = 2.0,
                 class_weight: float = 2.0, bbox_weight: float = 5.0, giou_weight: float = 2.0,
                 aux_loss: bool = True):
        super().__init__(num_classes, matcher, ce_weight=class_weight, bbox_weight=bbox_weight,
                         giou_weight=giou_weight, aux_loss=aux_loss)
        self.focal_alpha, self.focal_gamma = focal_alpha, focal_gamma

    def query_weights(self, outputs: Dict):
        """Extension point: a weight per query [B, Q] of its class loss, or None (all 1)."""
        return None

    def loss_labels(self, outputs, targets, indices, num_boxes) -> Dict[str, Tensor]:
        logits = outputs["pred_logits"].float()  # [B, Q, C]
        batch_idx, src_idx = self._src_permutation(indices)
        matched = torch.cat([t["labels"][j] for t, (_, j) in zip(targets, indices)]).to(logits.device)
        onehot = torch.zeros_like(logits)
        onehot[batch_idx, src_idx, matched] = 1.0
        loss = sigmoid_focal_loss(logits, onehot, self.focal_alpha, self.focal_gamma)  # [B, Q, C]
        weights = self.query_weights(outputs)
        if weights is not None:
            loss = loss * weights.to(loss)[..., None]
        loss = loss.sum() / num_boxes
        return {"loss_ce": loss, "class_error": class_error(logits, batch_idx, src_idx, matched)}

    @torch.no_grad()
    def loss_cardinality(self, outputs, targets, indices, num_boxes) -> Dict[str, Tensor]:
        """Logged only: queries whose best class scores >= 0.5 against the number of targets (the official
        code counts argmax != last class, meaningless without a no-object column)."""
        logits = outputs["pred_logits"]
        lengths = torch.as_tensor([len(t["labels"]) for t in targets], device=logits.device)
        card = (logits.max(-1).values >= 0).sum(1)  # sigmoid >= 0.5
        return {"cardinality_error": F.l1_loss(card.float(), lengths.float())}

    def forward(self, outputs: Dict, targets: List[Dict]) -> Dict[str, Tensor]:
        losses = super().forward(outputs, targets)
        enc = outputs.get("enc_outputs")
        if enc is None:
            return losses
        device = enc["pred_logits"].device
        one_class = [{"labels": torch.zeros_like(t["labels"], device=device), "boxes": t["boxes"].to(device)}
                     for t in targets]
        num_boxes = _num_boxes(one_class, device)
        enc_losses = self.single(enc, one_class, self.match(enc, one_class), num_boxes, log_extras=False)
        losses["loss"] = losses["loss"] + sum(w * enc_losses[k] for k, w in self.weight_dict.items())
        losses.update({f"{k}_enc": v.detach() for k, v in enc_losses.items()})
        return losses


def build(settings: DeformableCriterionConfig, model, matcher=None, **deps) -> DeformableCriterion:
    """The `deformable_criterion` from its settings; classes and auxiliary outputs are the model's."""
    from .matcher import FocalHungarianMatcher

    return DeformableCriterion(model.num_classes, matcher if matcher is not None else FocalHungarianMatcher(),
                               settings.focal_alpha, settings.focal_gamma, settings.class_weight,
                               settings.bbox_weight, settings.giou_weight, aux_loss=model.aux_loss)
