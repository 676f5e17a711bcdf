"""Model outputs -> scored, labelled xyxy boxes in original image pixels.

As DETR for COCO evaluation: every query is kept (no threshold); its score and label come from
the softmax over the real classes, the no-object column left out.
"""
from typing import Dict, List

import torch
import torch.nn as nn
from torch import Tensor

from trackformer.ops.boxes import box_cxcywh_to_xyxy


class PostProcess(nn.Module):
    @torch.no_grad()
    def forward(self, outputs: Dict, target_sizes: Tensor) -> List[Dict[str, Tensor]]:
        """target_sizes [B, 2] as (h, w) of the original images -> per image {"scores" [Q],
        "labels" [Q] (contiguous class index), "boxes" [Q, 4] xyxy pixels}."""
        logits, boxes = outputs["pred_logits"].float(), outputs["pred_boxes"].float()
        prob = logits.softmax(-1)[..., :-1]  # [B, Q, C]
        scores, labels = prob.max(-1)
        h, w = target_sizes.to(boxes).unbind(1)
        scale = torch.stack([w, h, w, h], dim=1)[:, None, :]  # [B, 1, 4]
        xyxy = box_cxcywh_to_xyxy(boxes) * scale
        return [{"scores": s, "labels": l, "boxes": b} for s, l, b in zip(scores, labels, xyxy)]


def threshold(results: List[Dict[str, Tensor]], min_score: float) -> List[Dict[str, Tensor]]:
    """Keep the detections scoring at least `min_score` (pictures, tracking)."""
    return [{k: v[r["scores"] >= min_score] for k, v in r.items()} for r in results]
