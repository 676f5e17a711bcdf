"""Masks of a DETR panoptic model -> panoptic segmentations and instance masks in original pixels.

Panoptic, per image (DETR's `PostProcessPanoptic`, with one fix):
1. keep the queries whose best class is not no-object and scores above `threshold` (0.85; the
   scores serve only this filter);
2. bring the kept mask logits to the processed image: **crop this image's padding** (the map's
   cells covering the image), bilinear by the stride, crop to the pixels — DETR resizes the padded
   map onto the unpadded size, which stretches the masks of every image smaller than its batch
   (the PQ gap at batch > 1);
3. each pixel goes to the argmax of the kept masks (class scores take no part); later queries of
   a stuff class already present are merged into its first;
4. the id map is resized (nearest) to the original size and areas counted; while some segment has
   <= 4 pixels, drop those queries and redo 3–4 without the stuff merge;
5. segment ids are 1..n in query order (DETR uses 0..n-1, so its first segment collides with VOID);
   nothing kept: every pixel VOID, no segment.

Instance masks (`PostProcessSegm`): cropped and upsampled as in 2., sigmoid > 0.5, nearest resize
to the original size.
"""
import math
from typing import Callable, Dict, List

import torch
import torch.nn.functional as F
from torch import Tensor

MIN_AREA = 4  # segments of at most this many pixels are dropped


def unpadded_sizes(mask: Tensor) -> Tensor:
    """Padding mask [B, H, W] (True on padding) -> (h, w) [B, 2] of each image's content."""
    return torch.stack([(~mask).any(2).sum(1), (~mask).any(1).sum(1)], dim=1)


def cropped_masks(masks: Tensor, padded_size, size) -> Tensor:
    """masks [K, h4, w4] logits of one image in a batch padded to `padded_size` (H, W) -> [K, h, w]
    on its unpadded size `size`: the map is cut to the cells covering the image, upsampled by the
    stride and cut to the pixels, so the result is what the image alone would give."""
    h, w = int(size[0]), int(size[1])
    if masks.shape[0] == 0:
        return masks.new_zeros((0, h, w))
    stride = max(1, int(round(int(padded_size[0]) / masks.shape[-2])))
    cells = masks[:, :math.ceil(h / stride), :math.ceil(w / stride)]  # [K, ⌈h/s⌉, ⌈w/s⌉]
    up = F.interpolate(cells[:, None].float(), scale_factor=stride, mode="bilinear", align_corners=False)
    return up[:, 0, :h, :w]


def _ids_and_areas(masks: Tensor, labels: List[int], is_thing: Callable, orig_size, dedup: bool):
    """masks [K, h, w] -> (ids [H0, W0] int64 in 0..K-1 (argmax query), areas [K])."""
    K = masks.shape[0]
    ids = masks.argmax(0)  # [h, w]
    if dedup:
        first: Dict[int, int] = {}
        for k, label in enumerate(labels):
            if not is_thing(label):
                if label in first:
                    ids[ids == k] = first[label]
                else:
                    first[label] = k
    ids = F.interpolate(ids[None, None].float(), size=tuple(int(s) for s in orig_size),
                        mode="nearest-exact")[0, 0].long()  # [H0, W0]
    return ids, torch.bincount(ids.flatten(), minlength=K)[:K]


def panoptic_single(logits: Tensor, masks: Tensor, padded_size, size, orig_size, is_thing: Callable,
                    threshold: float = 0.85) -> Dict:
    """One image: logits [Q, C+1], masks [Q, h4, w4] -> {"ids" [H0, W0] int64 (0 = VOID),
    "segments_info" [{"id", "label", "isthing", "score", "area"}]}."""
    scores, labels = logits.float().softmax(-1).max(-1)  # [Q]
    keep = (labels != logits.shape[-1] - 1) & (scores > threshold)
    scores, labels = scores[keep], labels[keep]
    kept = cropped_masks(masks[keep], padded_size, size)  # [K, h, w]
    H0, W0 = int(orig_size[0]), int(orig_size[1])
    if kept.shape[0] == 0:
        return {"ids": torch.zeros((H0, W0), dtype=torch.int64, device=logits.device), "segments_info": []}
    ids, areas = _ids_and_areas(kept, labels.tolist(), is_thing, orig_size, dedup=True)
    while kept.shape[0] and bool((areas <= MIN_AREA).any()):
        big = areas > MIN_AREA
        kept, scores, labels = kept[big], scores[big], labels[big]
        if kept.shape[0] == 0:
            return {"ids": torch.zeros((H0, W0), dtype=torch.int64, device=logits.device), "segments_info": []}
        ids, areas = _ids_and_areas(kept, labels.tolist(), is_thing, orig_size, dedup=False)
    segments = [{"id": k + 1, "label": int(label), "isthing": bool(is_thing(int(label))), "score": float(score),
                 "area": int(area)}
                for k, (label, score, area) in enumerate(zip(labels.tolist(), scores.tolist(), areas.tolist()))]
    return {"ids": ids + 1, "segments_info": segments}


def panoptic(outputs: Dict, mask: Tensor, orig_sizes: Tensor, is_thing: Callable,
             threshold: float = 0.85) -> List[Dict]:
    """A batch: outputs with "pred_logits" [B, Q, C+1] and "pred_masks" [B, Q, h4, w4]; `mask` the
    input padding [B, H, W]; `orig_sizes` [B, 2] as (h, w)."""
    sizes = unpadded_sizes(mask)
    return [panoptic_single(lg, m, mask.shape[-2:], s, o, is_thing, threshold)
            for lg, m, s, o in zip(outputs["pred_logits"], outputs["pred_masks"], sizes, orig_sizes)]


def instance_masks(results: List[Dict], pred_masks: Tensor, mask: Tensor, orig_sizes: Tensor,
                   threshold: float = 0.5) -> List[Dict]:
    """Add "masks" [Q, 1, H0, W0] (bool) to each image's box results."""
    for r, m, size, orig in zip(results, pred_masks, unpadded_sizes(mask), orig_sizes):
        binary = cropped_masks(m, mask.shape[-2:], size).sigmoid() > threshold  # [Q, h, w]
        r["masks"] = F.interpolate(binary[:, None].float(), size=tuple(int(s) for s in orig), mode="nearest") > 0.5
    return results
