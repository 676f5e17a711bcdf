"""Hungarian matching of predictions to targets (DETR section 3.1).

cost = cost_class * -p(target class) + cost_bbox * L1(cxcywh) + cost_giou * -GIoU(xyxy)

The cost of the whole batch is one batched computation, `[sum T, Q]`: every target against the
Q predictions of its own image only (DETR computes [B*Q, sum T] and throws the off-diagonal
blocks away; padding to the largest target count would waste as much). Coordinates are kept as
contiguous planes, so each step is one vectorised pass. `scipy.optimize.linear_sum_assignment`
then solves each image. Subclasses change the cost with `flat_cost` or the per-image
assignment with `match_image` (TrackFormer fixes the rows of its track queries), or only the
class term with `class_cost` (Deformable DETR's focal cost);
`cost_matrix` gives the same costs padded as [B, Q, T_max].
"""
from typing import Dict, List, Tuple

import numpy as np
import torch
import torch.nn as nn
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from trackformer.ops.boxes import generalized_box_iou_planes

from .settings import HungarianConfig

Match = Tuple[Tensor, Tensor]  # (prediction indices [M], target indices [M]), int64


def _xyxy_planes(cx, cy, w, h):
    # cxcywh planes -> ordered xyxy planes (negative sizes count as zero)
    w, h = w.clamp(min=0), h.clamp(min=0)
    return cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h


class HungarianMatcher(nn.Module):
    def __init__(self, cost_class: float = 1.0, cost_bbox: float = 5.0, cost_giou: float = 2.0):
        super().__init__()
        if cost_class == 0 and cost_bbox == 0 and cost_giou == 0:
            raise ValueError("all matching costs are 0")
        self.cost_class = cost_class
        self.cost_bbox = cost_bbox
        self.cost_giou = cost_giou

    @torch.no_grad()
    def flat_cost(self, outputs: Dict, targets: List[Dict]) -> Tensor:
        """-> cost [sum T, Q]: row j is target j (images in order) against the Q predictions of
        its own image. `forward` matches on this; override it to change the cost."""
        logits = outputs["pred_logits"]
        B, Q = logits.shape[:2]
        device = logits.device
        sizes = torch.as_tensor([len(t["labels"]) for t in targets], device=device)
        img = torch.repeat_interleave(torch.arange(B, device=device), sizes)  # [sum T]
        labels = torch.cat([t["labels"] for t in targets]).to(device)
        tgt = torch.cat([t["boxes"] for t in targets]).to(device=device, dtype=torch.float32)
        cost_class = self.class_cost(logits, img, labels)  # [sum T, Q]
        pred = outputs["pred_boxes"].float().permute(2, 0, 1)[:, img]  # 4 planes [sum T, Q]
        tplanes = tgt.T.contiguous()[:, :, None]  # 4 planes [sum T, 1]
        cost_bbox = (pred - tplanes).abs().sum(0)  # L1 over cx, cy, w, h
        giou = generalized_box_iou_planes(_xyxy_planes(*pred), _xyxy_planes(*tplanes))
        return self.cost_bbox * cost_bbox + self.cost_class * cost_class - self.cost_giou * giou

    def class_cost(self, logits: Tensor, img: Tensor, labels: Tensor) -> Tensor:
        """logits [B, Q, C+1], each target's image `img` [sum T] and label [sum T] -> [sum T, Q]:
        -p(target class) under the softmax (the constant 1 of 1 - p does not change the assignment).
        Override for another class cost (Deformable DETR's focal cost)."""
        return -logits.float().softmax(-1)[img, :, labels]

    @torch.no_grad()
    def cost_matrix(self, outputs: Dict, targets: List[Dict]) -> Tensor:
        """-> cost [B, Q, T_max] (the flat cost per image, padded with +inf past its targets)."""
        flat = self.flat_cost(outputs, targets)  # [sum T, Q]
        sizes = [len(t["labels"]) for t in targets]
        B, Q = outputs["pred_logits"].shape[:2]
        out = flat.new_full((B, Q, max(sizes, default=0)), float("inf"))
        for i, part in enumerate(flat.split(sizes)):
            out[i, :, :sizes[i]] = part.T
        return out

    def match_image(self, cost: np.ndarray, index: int, outputs: Dict, target: Dict) -> Match:
        """Assignment for one image from its cost [Q, T]."""
        rows, cols = linear_sum_assignment(cost)
        return torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64)

    @torch.no_grad()
    def forward(self, outputs: Dict, targets: List[Dict]) -> List[Match]:
        sizes = [len(t["labels"]) for t in targets]
        if sum(sizes) == 0:
            empty = torch.zeros(0, dtype=torch.int64)
            return [(empty, empty) for _ in targets]
        cost = self.flat_cost(outputs, targets).cpu().numpy()  # one device transfer
        offsets = np.cumsum([0] + sizes)
        return [self.match_image(cost[offsets[i]:offsets[i + 1]].T, i, outputs, t)
                for i, t in enumerate(targets)]


def build(settings: HungarianConfig, **deps) -> HungarianMatcher:
    """The `hungarian` matcher from its settings."""
    return HungarianMatcher(settings.cost_class, settings.cost_bbox, settings.cost_giou)
