"""DETR's set loss + mask losses on the matched queries of the last decoder layer:

    mask_weight · focal(σ(m), t) + dice_weight · dice(σ(m), t)

with the predicted mask logits bilinearly upsampled from stride 4 to the batch's padded size and the
targets zero-padded to it (as DETR; the padding counts as background). Focal (α 0.25, γ 2):
BCE·(1 − p_t)^γ·α_t, mean over pixels, summed over masks; dice: 1 − (2Σpt + 1)/(Σp + Σt + 1), summed
over masks; both divided by the number of target boxes. Matching is unchanged (classes and boxes).
"""
from typing import Dict, List

import torch
import torch.nn.functional as F
from torch import Tensor

from trackformer_detr.criterion import SetCriterion, _num_boxes

from .settings import PanopticCriterionConfig


def sigmoid_focal_loss(logits: Tensor, targets: Tensor, num_boxes: float, alpha: float = 0.25,
                       gamma: float = 2.0) -> Tensor:
    """logits, targets [M, P] -> sum over masks of the mean over pixels, / num_boxes."""
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss.mean(1).sum() / num_boxes


def dice_loss(logits: Tensor, targets: Tensor, num_boxes: float) -> Tensor:
    """logits, targets [M, P] -> Σ over masks of 1 − (2Σpt + 1)/(Σp + Σt + 1), / num_boxes."""
    prob = logits.sigmoid()
    numerator = 2 * (prob * targets).sum(1)
    denominator = prob.sum(1) + targets.sum(1)
    return (1 - (numerator + 1) / (denominator + 1)).sum() / num_boxes


def padded_target_masks(targets: List[Dict], size) -> Tensor:
    """Each target's masks [N_i, h_i, w_i] zero-padded to `size` (H, W) -> [ΣN_i, H, W] float."""
    H, W = size
    out = []
    for t in targets:
        m = t["masks"]
        padded = m.new_zeros((m.shape[0], H, W), dtype=torch.float32)
        padded[:, :m.shape[1], :m.shape[2]] = m.float()
        out.append(padded)
    return torch.cat(out)


class PanopticCriterion(SetCriterion):
    def __init__(self, *args, mask_weight: float = 1.0, dice_weight: float = 1.0, focal_alpha: float = 0.25,
                 focal_gamma: float = 2.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.mask_weights = {"loss_mask": mask_weight, "loss_dice": dice_weight}  # not in DETR's weight_dict: last layer only
        self.focal_alpha, self.focal_gamma = focal_alpha, focal_gamma

    def loss_masks(self, outputs, targets, indices, num_boxes) -> Dict[str, Tensor]:
        batch_idx, src_idx = self._src_permutation(indices)
        pred = outputs["pred_masks"][batch_idx, src_idx].float()  # [M, h4, w4]
        H = max(t["masks"].shape[-2] for t in targets)
        W = max(t["masks"].shape[-1] for t in targets)
        all_targets = padded_target_masks(targets, (H, W))  # [ΣN, H, W]
        offsets = torch.cumsum(torch.tensor([0] + [len(t["labels"]) for t in targets[:-1]]), 0)
        tgt_idx = torch.cat([j + int(o) for (_, j), o in zip(indices, offsets)]).to(pred.device)
        tgt = all_targets[tgt_idx].flatten(1)  # [M, H·W]
        if pred.shape[0] == 0:
            zero = pred.sum() * 0
            return {"loss_mask": zero, "loss_dice": zero}
        pred = F.interpolate(pred[:, None], size=(H, W), mode="bilinear", align_corners=False).flatten(1)
        return {"loss_mask": sigmoid_focal_loss(pred, tgt, num_boxes, self.focal_alpha, self.focal_gamma),
                "loss_dice": dice_loss(pred, tgt, num_boxes)}

    def forward(self, outputs: Dict, targets: List[Dict]) -> Dict[str, Tensor]:
        device = outputs["pred_logits"].device
        targets = [{k: v.to(device) if torch.is_tensor(v) else v for k, v in t.items()} for t in targets]
        losses = super().forward(outputs, targets)
        indices = self.match(outputs, targets)  # the same assignment as the last layer's above
        masks = self.loss_masks(outputs, targets, indices, _num_boxes(targets, device))
        losses["loss"] = losses["loss"] + sum(self.mask_weights[k] * v for k, v in masks.items())
        losses.update({k: v.detach() for k, v in masks.items()})
        return losses


def build(settings: PanopticCriterionConfig, model, matcher=None, **deps) -> PanopticCriterion:
    from trackformer_detr.matcher import HungarianMatcher

    return PanopticCriterion(model.num_classes, matcher if matcher is not None else HungarianMatcher(),
                             eos_coef=settings.eos_coef, ce_weight=settings.ce_weight,
                             bbox_weight=settings.bbox_weight, giou_weight=settings.giou_weight,
                             aux_loss=model.aux_loss, mask_weight=settings.mask_weight,
                             dice_weight=settings.dice_weight, focal_alpha=settings.focal_alpha,
                             focal_gamma=settings.focal_gamma)
