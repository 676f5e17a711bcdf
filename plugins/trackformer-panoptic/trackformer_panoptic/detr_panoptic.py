"""DETR panoptic (official `DETRsegm`): a DETR under `detr`, an attention map of each query over the
encoder memory (`bbox_attention`) and a convolutional mask head (`mask_head`) -> `pred_masks`.

Parameter names are the official ones (`detr.*`, `bbox_attention.*`, `mask_head.*`), so the released
`detr-r50-panoptic` checkpoint loads strictly via `model.weights=`. Freezing the detector for the
mask stage is the engine's `train.freeze: [detr]` (frozen parts run in eval mode).
"""
from typing import Dict, List, Optional

import torch
import torch.nn as nn
from torch import Tensor

from trackformer.errors import ConfigError
from trackformer.models.levels import level_masks
from trackformer_detr.detr import DETR, Inputs, as_padded_batch, build_detr, build_parts, num_classes_from, original_sizes

from .attention_map import MHAttentionMap
from .mask_head import MaskHeadSmallConv
from .settings import DETRPanopticConfig


class DETRPanoptic(nn.Module):
    """images -> DETR's outputs + "pred_masks" [B, Q, H/s, W/s] (logits at the finest level's
    stride s, 4 for ResNet with res2..res5)."""

    def __init__(self, detr: DETR, mask_heads: int = 8, mask_dims=(128, 64, 32, 16),
                 threshold: float = 0.85, is_thing=None, attention_scale: str = "softmax"):
        super().__init__()
        self.detr = detr
        levels = detr.backbone[0].levels
        if len(levels) < 2:
            raise ConfigError("backbone.return_levels", f"the mask head needs finer levels than DETR's, the "
                                                        f"backbone returns only {list(levels)}")
        self.fpn_levels = list(levels)[:-1][-3:][::-1]  # up to three, coarse to fine: res4, res3, res2
        hidden = detr.transformer.d_model
        self.bbox_attention = MHAttentionMap(hidden, hidden, mask_heads, dropout=0.0)
        self.mask_head = MaskHeadSmallConv(hidden + mask_heads, [levels[n].channels for n in self.fpn_levels],
                                           list(mask_dims))
        self.threshold = threshold
        self.attention_scale = attention_scale
        self.is_thing = is_thing or (lambda label: True)  # label -> bool, for post-processing

    @property
    def num_classes(self) -> int:
        return self.detr.num_classes

    @property
    def aux_loss(self) -> bool:
        return self.detr.aux_loss

    def forward(self, inputs: Inputs, targets: Optional[List[Dict]] = None) -> Dict:
        detr = self.detr
        images, mask = as_padded_batch(inputs)
        features = detr.backbone[0](images)  # {level: [B, C, h_l, w_l]}
        masks = level_masks(mask, features)
        level = detr.backbone.level
        fmask = masks[level]  # [B, h, w]
        pos = detr.backbone[1](fmask).to(features[level].dtype)  # [B, D, h, w]
        src = detr.input_proj(features[level])  # [B, D, h, w]
        memory, mask_flat, pos_flat = detr.transformer.encode(src, fmask, pos)  # [HW, B, D]
        queries = detr.make_queries(memory.shape[1], targets)
        hs = detr.transformer.decode(queries.tgt.to(memory.dtype), memory, mask_flat, pos_flat,
                                     queries.pos.to(memory.dtype), tgt_key_padding_mask=queries.padding)
        out = detr.heads(hs, queries.layout)
        B, D, h, w = src.shape
        memory_map = memory.permute(1, 2, 0).reshape(B, D, h, w)
        bbox_mask = self.bbox_attention(hs[-1], memory_map, mask=fmask)  # [B, Q, N, h, w]
        if self.attention_scale == "mean":
            bbox_mask = bbox_mask * bbox_mask[0, 0].numel()  # average 1 over heads and positions
        seg = self.mask_head(src, bbox_mask, [features[n] for n in self.fpn_levels])  # [B·Q, 1, H/4, W/4]
        out["pred_masks"] = seg.view(B, hs.shape[2], *seg.shape[-2:])
        return out

    @torch.no_grad()
    def predict(self, inputs: Inputs, targets: Optional[List[Dict]] = None,
                target_sizes: Optional[Tensor] = None) -> List[Dict[str, Tensor]]:
        """Boxes (every query, as DETR) + instance masks [Q, 1, h, w] (bool) in original pixels."""
        from trackformer_detr.postprocess import PostProcess

        from .postprocess import instance_masks

        outputs = self(inputs)
        sizes = original_sizes(inputs, targets, target_sizes)
        results = PostProcess()(outputs, sizes)
        return instance_masks(results, outputs["pred_masks"], as_padded_batch(inputs)[1], sizes)

    @torch.no_grad()
    def predict_panoptic(self, inputs: Inputs, targets: Optional[List[Dict]] = None,
                         target_sizes: Optional[Tensor] = None) -> List[Dict]:
        """Per image {"ids" [h, w] int64 segment ids (0 = VOID), "segments_info" [{id, label,
        isthing, score, area}]} in original pixels (see postprocess.panoptic)."""
        from .postprocess import panoptic

        outputs = self(inputs)
        sizes = original_sizes(inputs, targets, target_sizes)
        return panoptic(outputs, as_padded_batch(inputs)[1], sizes, self.is_thing, self.threshold)


def thing_rule(settings: DETRPanopticConfig, data_info) -> "IsThing":
    if settings.is_thing_max_label is not None:
        return IsThing(max_label=settings.is_thing_max_label)
    labels = (data_info or {}).get("thing_labels")
    return IsThing(labels=set(labels)) if labels is not None else IsThing(max_label=90)


class IsThing:
    """label -> whether it is a thing class: a label set from the data, else labels <= max_label."""

    def __init__(self, labels=None, max_label: int = 90):
        self.labels, self.max_label = labels, max_label

    def __call__(self, label: int) -> bool:
        return int(label) in self.labels if self.labels is not None else int(label) <= self.max_label


def build(settings: DETRPanopticConfig, data_info=None, **deps) -> DETRPanoptic:
    """The `detr_panoptic` architecture; `detr_weights` (a detection checkpoint) loads into `detr`."""
    detr = build_detr(*build_parts(settings), num_classes_from(settings, data_info), settings.num_queries,
                      settings.position_embedding, settings.aux_loss)
    if settings.detr_weights:
        from pathlib import Path

        from trackformer.checkpoint import load_model_weights

        if not Path(settings.detr_weights).is_file():
            raise ConfigError("detr_weights", f"file not found: {settings.detr_weights}")
        load_model_weights(detr, settings.detr_weights, strict=True)
    return DETRPanoptic(detr, settings.mask_heads, settings.mask_dims, settings.threshold,
                        thing_rule(settings, data_info), settings.attention_scale)
