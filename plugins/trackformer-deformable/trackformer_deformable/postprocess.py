"""Deformable DETR's post-processing (the official `PostProcess`): sigmoid scores, the `top_k` best
(query, class) pairs over all Q x C of an image, so one query may give several detections with different
labels; boxes as xyxy in original pixels. No threshold: COCO evaluation ranks them."""
from typing import Dict, List

import torch
from torch import Tensor

from trackformer.ops.boxes import box_cxcywh_to_xyxy


@torch.no_grad()
def top_k_detections(outputs: Dict, target_sizes: Tensor, top_k: int = 100) -> List[Dict[str, Tensor]]:
    """outputs {"pred_logits" [B, Q, C], "pred_boxes" [B, Q, 4] (cx, cy, w, h relative)}, target_sizes
    [B, 2] as (h, w) -> per image {"scores" [K], "labels" [K], "boxes" [K, 4]}, K = min(top_k, Q * C),
    best first."""
    logits, boxes = outputs["pred_logits"].float(), outputs["pred_boxes"].float()
    B, Q, C = logits.shape
    scores, index = logits.sigmoid().view(B, Q * C).topk(min(top_k, Q * C), dim=1)  # [B, K]
    query, labels = index // C, index % C
    xyxy = torch.gather(box_cxcywh_to_xyxy(boxes), 1, query[..., None].expand(-1, -1, 4))  # [B, K, 4]
    h, w = target_sizes.to(xyxy).unbind(1)
    xyxy = xyxy * torch.stack([w, h, w, h], dim=1)[:, None, :]
    return [{"scores": s, "labels": l, "boxes": b} for s, l, b in zip(scores, labels, xyxy)]
