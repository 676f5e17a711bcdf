"""DETR's set criterion: Hungarian-match predictions to targets, then

loss = ce_weight * CE(classes, no-object down-weighted by eos_coef)
     + bbox_weight * L1(matched boxes) + giou_weight * (1 - GIoU(matched boxes))

with box losses summed over matched pairs and divided by the number of target boxes across all
processes (at least 1); the same on every auxiliary decoder output (suffix `_i`). The class error
and the cardinality error are logged, not optimised.

Extension points for subclasses: `match` (the assignment), `class_weights` (per-query CE weight,
e.g. TrackFormer keeps weight 1 for unmatched track queries).
"""
from typing import Dict, List

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from trackformer.engine.distributed import all_reduce_mean
from trackformer.ops.boxes import box_cxcywh_to_xyxy, elementwise_generalized_box_iou

from .settings import SetCriterionConfig


def _num_boxes(targets: List[Dict], device) -> float:
    """Target boxes per process, averaged over processes (at least 1)."""
    n = torch.as_tensor([float(sum(len(t["labels"]) for t in targets))], device=device)
    return max(all_reduce_mean(n).item(), 1.0)


@torch.no_grad()
def class_error(logits: Tensor, batch_idx: Tensor, src_idx: Tensor, matched: Tensor) -> Tensor:
    """Logged only: 100 - top-1 accuracy (%) of the matched queries' classes (0 without targets)."""
    if not len(matched):
        return logits.new_zeros(())
    return 100 - 100 * (logits[batch_idx, src_idx].argmax(-1) == matched).float().mean()


class SetCriterion(nn.Module):
    def __init__(self, num_classes: int, matcher, eos_coef: float = 0.1, ce_weight: float = 1.0,
                 bbox_weight: float = 5.0, giou_weight: float = 2.0, aux_loss: bool = True):
        super().__init__()
        self.num_classes = num_classes
        self.matcher = matcher
        self.eos_coef = eos_coef
        self.aux_loss = aux_loss
        self.weight_dict = {"loss_ce": ce_weight, "loss_bbox": bbox_weight, "loss_giou": giou_weight}
        empty_weight = torch.ones(num_classes + 1)
        empty_weight[-1] = eos_coef
        self.register_buffer("empty_weight", empty_weight)

    # --- extension points ----------------------------------------------------------------------
    def match(self, outputs: Dict, targets: List[Dict]):
        return self.matcher(outputs, targets)

    def class_weights(self, outputs: Dict, targets: List[Dict], indices, target_classes: Tensor):
        """Per-query CE weight [B, Q]: 1 for matched queries, eos_coef for no-object ones."""
        return self.empty_weight[target_classes]

    # --- losses ----------------------------------------------------------------------------------
    def loss_labels(self, outputs, targets, indices, num_boxes) -> Dict[str, Tensor]:
        logits = outputs["pred_logits"].float()  # [B, Q, C+1]
        B, Q = logits.shape[:2]
        batch_idx, src_idx = self._src_permutation(indices)
        target_classes = torch.full((B, Q), self.num_classes, dtype=torch.int64, device=logits.device)
        matched = torch.cat([t["labels"][j] for t, (_, j) in zip(targets, indices)]).to(logits.device)
        target_classes[batch_idx, src_idx] = matched
        weights = self.class_weights(outputs, targets, indices, target_classes)  # [B, Q]
        ce = F.cross_entropy(logits.transpose(1, 2), target_classes, reduction="none")  # [B, Q]
        # weighted mean, as F.cross_entropy(weight=...) normalises by the summed weights
        loss = (ce * weights).sum() / weights.sum().clamp(min=1e-12)
        return {"loss_ce": loss, "class_error": class_error(logits, batch_idx, src_idx, matched)}

    @torch.no_grad()
    def loss_cardinality(self, outputs, targets, indices, num_boxes) -> Dict[str, Tensor]:
        logits = outputs["pred_logits"]
        lengths = torch.as_tensor([len(t["labels"]) for t in targets], device=logits.device)
        card = (logits.argmax(-1) != logits.shape[-1] - 1).sum(1)  # predicted objects per image
        return {"cardinality_error": F.l1_loss(card.float(), lengths.float())}

    def loss_boxes(self, outputs, targets, indices, num_boxes) -> Dict[str, Tensor]:
        batch_idx, src_idx = self._src_permutation(indices)
        src = outputs["pred_boxes"][batch_idx, src_idx].float()  # [M, 4]
        tgt = torch.cat([t["boxes"][j] for t, (_, j) in zip(targets, indices)]).to(src)
        l1 = F.l1_loss(src, tgt, reduction="none").sum() / num_boxes
        giou = elementwise_generalized_box_iou(box_cxcywh_to_xyxy(src), box_cxcywh_to_xyxy(tgt))
        return {"loss_bbox": l1, "loss_giou": (1 - giou).sum() / num_boxes}

    @staticmethod
    def _src_permutation(indices):
        batch_idx = torch.cat([torch.full_like(src, i) for i, (src, _) in enumerate(indices)])
        src_idx = torch.cat([src for src, _ in indices])
        return batch_idx, src_idx

    def single(self, outputs, targets, indices, num_boxes, log_extras: bool) -> Dict[str, Tensor]:
        losses = self.loss_labels(outputs, targets, indices, num_boxes)
        losses.update(self.loss_boxes(outputs, targets, indices, num_boxes))
        if log_extras:
            losses.update(self.loss_cardinality(outputs, targets, indices, num_boxes))
        else:
            losses.pop("class_error")
        return losses

    def forward(self, outputs: Dict, targets: List[Dict]) -> Dict[str, Tensor]:
        device = outputs["pred_logits"].device
        targets = [{k: v.to(device) if torch.is_tensor(v) else v for k, v in t.items()}
                   for t in targets]
        num_boxes = _num_boxes(targets, device)
        indices = self.match(outputs, targets)
        losses = self.single(outputs, targets, indices, num_boxes, log_extras=True)
        if self.aux_loss:
            for i, aux in enumerate(outputs.get("aux_outputs", [])):
                aux_indices = self.match(aux, targets)
                aux_losses = self.single(aux, targets, aux_indices, num_boxes, log_extras=False)
                losses.update({f"{k}_{i}": v for k, v in aux_losses.items()})
        total = sum(w * losses[k] for k, w in self.weight_dict.items())
        total = total + sum(w * losses[f"{k}_{i}"] for k, w in self.weight_dict.items()
                            for i in range(len(outputs.get("aux_outputs", []))) if self.aux_loss)
        # only the total carries gradients; the parts are for logging
        losses = {k: v.detach() for k, v in losses.items()}
        losses["loss"] = total
        return losses


def build(settings: SetCriterionConfig, model, matcher=None, **deps) -> SetCriterion:
    """The `detr_set_criterion` from its settings; the class count and whether auxiliary outputs
    exist are the model's (`model.num_classes`, `model.aux_loss`)."""
    from .matcher import HungarianMatcher

    return SetCriterion(model.num_classes, matcher if matcher is not None else HungarianMatcher(),
                        eos_coef=settings.eos_coef, ce_weight=settings.ce_weight,
                        bbox_weight=settings.bbox_weight, giou_weight=settings.giou_weight,
                        aux_loss=model.aux_loss)
