"""Deformable DETR's detector (Zhu et al. 2021) over a list of backbone levels, official parameter
names and order (`transformer`, `class_embed`, `bbox_embed`, `query_embed`, `input_proj`, then the
backbone's own `backbone.0.body.*`), so official checkpoints load strictly.

Inputs as DETR's (a list of images, a padded batch, or (images, mask)); the backbone returns named levels
(`return_levels: [res3, res4, res5]` officially), fine to coarse, their masks from `level_masks`.

Levels: each backbone level through a 1x1 conv + GroupNorm(32) (`input_proj.l`), extra levels by a 3x3
stride-2 conv + GroupNorm on the last backbone level (then on the previous extra level), their masks by
nearest interpolation of the image mask. Positions: 2-D sine, d/2 features per axis,
`(cumsum - 0.5) / (last + 1e-6) * 2pi`, y then x. Heads: per decoder layer; without box refinement the
one head is shared (and so saved once per layer, as the official files hold it); with it each layer has
its own, also saved under `transformer.decoder.bbox_embed`; two-stage adds a seventh for the proposals.
Sigmoid outputs (focal loss): `num_classes` logits, no no-object column.
"""
import copy
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from trackformer.errors import ConfigError

from trackformer.models.levels import level_masks
from trackformer_detr.detr import MLP, Inputs, as_padded_batch, original_sizes

from .deformable_transformer import DeformableTransformer, inverse_sigmoid
from .settings import DeformableDETRConfig


def sine_position(mask: Tensor, num_pos_feats: int, temperature: float = 10000.0,
                  dtype: torch.dtype = torch.float32) -> Tensor:
    """[B, H, W] (True on padding) -> [B, 2 * num_pos_feats, H, W], Deformable DETR's normalised sine,
    computed in float32 (as the official code) or float64."""
    not_mask = ~mask
    y_embed = not_mask.cumsum(1, dtype=dtype)
    x_embed = not_mask.cumsum(2, dtype=dtype)
    y_embed = (y_embed - 0.5) / (y_embed[:, -1:, :] + 1e-6) * (2 * math.pi)
    x_embed = (x_embed - 0.5) / (x_embed[:, :, -1:] + 1e-6) * (2 * math.pi)
    dim_t = torch.arange(num_pos_feats, dtype=dtype, device=mask.device)
    dim_t = temperature ** (2 * (dim_t // 2) / num_pos_feats)
    pos_x, pos_y = x_embed[..., None] / dim_t, y_embed[..., None] / dim_t  # [B, H, W, F]
    pos_x = torch.stack((pos_x[..., 0::2].sin(), pos_x[..., 1::2].cos()), dim=4).flatten(3)
    pos_y = torch.stack((pos_y[..., 0::2].sin(), pos_y[..., 1::2].cos()), dim=4).flatten(3)
    return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)


class LevelJoiner(nn.Sequential):
    """The backbone at index 0 (the official `backbone.0.body.*` layout): images [B, 3, H, W] and mask
    [B, H, W] -> its levels' features [B, C_l, H_l, W_l] and masks [B, H_l, W_l], fine to coarse."""

    def __init__(self, backbone: nn.Module):
        super().__init__(backbone)
        self.channels = [level.channels for level in backbone.levels.values()]

    def forward(self, images: Tensor, mask: Tensor) -> Tuple[List[Tensor], List[Tensor]]:
        features = self[0](images)
        masks = level_masks(mask, features)
        return list(features.values()), [masks[name] for name in features]


class DeformableDETR(nn.Module):
    """Without `backbone` the model runs on given levels only (`forward_levels`); with it, on images."""

    def __init__(self, backbone_channels: Sequence[int], transformer: DeformableTransformer, num_classes: int,
                 num_queries: int = 300, num_feature_levels: int = 4, aux_loss: bool = True,
                 with_box_refine: bool = False, two_stage: bool = False, backbone: Optional[nn.Module] = None):
        super().__init__()
        if two_stage and not with_box_refine:
            raise ValueError("two_stage needs with_box_refine (the proposal head is the decoder's last box head)")
        if num_feature_levels < len(backbone_channels):
            raise ValueError(f"num_feature_levels {num_feature_levels} < {len(backbone_channels)} backbone levels")
        d = transformer.d_model
        self.num_classes, self.num_queries, self.num_feature_levels = num_classes, num_queries, num_feature_levels
        self.aux_loss, self.with_box_refine, self.two_stage = aux_loss, with_box_refine, two_stage
        self.transformer = transformer
        # registered here so the state dict keeps the official order; replaced by per-layer lists below
        self.class_embed = class_embed = nn.Linear(d, num_classes)
        self.bbox_embed = bbox_embed = MLP(d, d, 4, 3)
        if not two_stage:
            self.query_embed = nn.Embedding(num_queries, d * 2)
        proj = [nn.Sequential(nn.Conv2d(c, d, kernel_size=1), nn.GroupNorm(32, d)) for c in backbone_channels]
        in_channels = backbone_channels[-1]
        for _ in range(num_feature_levels - len(backbone_channels)):
            proj.append(nn.Sequential(nn.Conv2d(in_channels, d, kernel_size=3, stride=2, padding=1),
                                      nn.GroupNorm(32, d)))
            in_channels = d
        self.input_proj = nn.ModuleList(proj)

        class_embed.bias.data.fill_(-math.log((1 - 0.01) / 0.01))
        nn.init.constant_(bbox_embed.layers[-1].weight, 0.0)
        nn.init.constant_(bbox_embed.layers[-1].bias, 0.0)
        for p in self.input_proj:
            nn.init.xavier_uniform_(p[0].weight, gain=1)
            nn.init.constant_(p[0].bias, 0)
        num_pred = transformer.decoder.num_layers + (1 if two_stage else 0)
        if with_box_refine:
            self.class_embed = nn.ModuleList(copy.deepcopy(class_embed) for _ in range(num_pred))
            self.bbox_embed = nn.ModuleList(copy.deepcopy(bbox_embed) for _ in range(num_pred))
            nn.init.constant_(self.bbox_embed[0].layers[-1].bias.data[2:], -2.0)
            transformer.decoder.bbox_embed = self.bbox_embed
        else:
            nn.init.constant_(bbox_embed.layers[-1].bias.data[2:], -2.0)
            self.class_embed = nn.ModuleList([class_embed] * num_pred)
            self.bbox_embed = nn.ModuleList([bbox_embed] * num_pred)
            transformer.decoder.bbox_embed = None
        if two_stage:
            transformer.decoder.class_embed = self.class_embed
            for box in self.bbox_embed:
                nn.init.constant_(box.layers[-1].bias.data[2:], 0.0)
        self.backbone = LevelJoiner(backbone) if backbone is not None else None

    def levels(self, features: Sequence[Tensor], masks: Sequence[Tensor], image_mask: Tensor):
        """Backbone levels [B, C_l, H_l, W_l] with masks [B, H_l, W_l] -> the transformer's srcs, masks, positions."""
        srcs = [proj(f) for proj, f in zip(self.input_proj, features)]
        masks = list(masks)
        for lvl in range(len(srcs), self.num_feature_levels):
            srcs.append(self.input_proj[lvl](features[-1] if lvl == len(features) else srcs[-1]))
            masks.append(F.interpolate(image_mask[None].float(), size=srcs[-1].shape[-2:]).to(torch.bool)[0])
        d = self.transformer.d_model
        work = torch.promote_types(srcs[0].dtype, torch.float32)
        pos = [sine_position(m, d // 2, dtype=work).to(s.dtype) for s, m in zip(srcs, masks)]
        return srcs, masks, pos

    def forward(self, inputs: Inputs, targets: Optional[List[Dict]] = None) -> Dict:
        """Images (as DETR takes them) -> the outputs of `forward_levels` on the backbone's levels."""
        if self.backbone is None:
            raise ValueError("built without a backbone: call forward_levels with the levels' features")
        images, mask = as_padded_batch(inputs)
        features, masks = self.backbone(images, mask)
        return self.forward_levels(features, masks, mask)

    @torch.no_grad()
    def predict(self, inputs: Inputs, targets: Optional[List[Dict]] = None,
                target_sizes: Optional[Tensor] = None, top_k: int = 100) -> List[Dict[str, Tensor]]:
        """The `top_k` best (query, class) pairs per image as xyxy boxes in original pixels (COCO
        evaluation). Sizes (h, w): `target_sizes` [B, 2], else each target's `orig_size`, else the unpadded
        input size."""
        from .postprocess import top_k_detections

        return top_k_detections(self(inputs), original_sizes(inputs, targets, target_sizes), top_k)

    def forward_levels(self, features: Sequence[Tensor], masks: Sequence[Tensor], image_mask: Tensor) -> Dict:
        """features / masks: the backbone's levels (strides ascending) and their padding masks;
        image_mask [B, H, W] True on padding -> {"pred_logits" [B, Q, C], "pred_boxes" [B, Q, 4] (cx, cy, w, h),
        "aux_outputs" (earlier layers), "enc_outputs" (two-stage proposals)}."""
        srcs, masks, pos = self.levels(features, masks, image_mask)
        query_embed = None if self.two_stage else self.query_embed.weight
        hs, init_ref, refs, enc_class, enc_coord = self.transformer(srcs, masks, pos, query_embed)
        out = self.heads(hs, init_ref, refs)
        if self.two_stage:
            out["enc_outputs"] = {"pred_logits": enc_class, "pred_boxes": enc_coord.sigmoid()}
        return out

    def heads(self, hs: Tensor, init_ref: Tensor, refs: Tensor) -> Dict:
        """Decoder outputs hs [layers, B, Q, d], initial references [B, Q, 2|4] and per-layer references ->
        {"pred_logits" [B, Q, C], "pred_boxes" [B, Q, 4], "aux_outputs"}: layer l's boxes relative to the
        reference it read (the initial one, or the one layer l - 1 refined)."""
        logits: List[Tensor] = []
        boxes: List[Tensor] = []
        for lvl in range(hs.shape[0]):
            reference = inverse_sigmoid(init_ref if lvl == 0 else refs[lvl - 1])
            delta = self.bbox_embed[lvl](hs[lvl])  # [B, Q, 4]
            if reference.shape[-1] == 4:
                delta = delta + reference
            else:
                delta = torch.cat([delta[..., :2] + reference, delta[..., 2:]], -1)
            logits.append(self.class_embed[lvl](hs[lvl]))
            boxes.append(delta.sigmoid())
        out = {"pred_logits": logits[-1], "pred_boxes": boxes[-1]}
        if self.aux_loss:
            out["aux_outputs"] = [{"pred_logits": a, "pred_boxes": b} for a, b in zip(logits[:-1], boxes[:-1])]
        return out


def build_deformable_detr(num_classes: int, backbone_channels: Sequence[int] = (512, 1024, 2048),
                          num_feature_levels: int = 4, d_model: int = 256, num_queries: int = 300,
                          with_box_refine: bool = False, two_stage: bool = False, aux_loss: bool = True,
                          dim_feedforward: int = 1024, dropout: float = 0.1, nheads: int = 8, enc_layers: int = 6,
                          dec_layers: int = 6, n_points: int = 4, offset_normalizer: str = "wh",
                          backbone: Optional[nn.Module] = None) -> DeformableDETR:
    """The official `build` (main.py defaults); without `backbone` the levels' channels are
    `backbone_channels` (single-scale: `(2048,), num_feature_levels=1`), with it the backbone's."""
    if backbone is not None:
        backbone_channels = [level.channels for level in backbone.levels.values()]
    transformer = DeformableTransformer(d_model, nheads, enc_layers, dec_layers, dim_feedforward, dropout,
                                        num_feature_levels, n_points, n_points, two_stage, num_queries,
                                        offset_normalizer)
    return DeformableDETR(list(backbone_channels), transformer, num_classes, num_queries, num_feature_levels,
                          aux_loss, with_box_refine, two_stage, backbone)


def build_backbone(settings) -> nn.Module:
    """The settings' backbone, checked to give at most `num_feature_levels` levels."""
    from trackformer import build as build_component

    backbone = build_component("backbones", settings.backbone)
    if len(backbone.levels) > settings.num_feature_levels:
        raise ConfigError("num_feature_levels", f"{settings.num_feature_levels} is fewer than the backbone's "
                                                f"{len(backbone.levels)} levels ({', '.join(backbone.levels)})")
    return backbone


def build(settings: DeformableDETRConfig, data_info=None, **deps) -> DeformableDETR:
    """The `deformable_detr` architecture from its settings."""
    from trackformer_detr.detr import num_classes_from

    backbone = build_backbone(settings)
    return build_deformable_detr(
        num_classes_from(settings, data_info), num_feature_levels=settings.num_feature_levels,
        d_model=settings.hidden_dim, num_queries=settings.num_queries, with_box_refine=settings.with_box_refine,
        two_stage=settings.two_stage, aux_loss=settings.aux_loss, dim_feedforward=settings.dim_feedforward,
        dropout=settings.dropout, nheads=settings.nheads, enc_layers=settings.enc_layers,
        dec_layers=settings.dec_layers, n_points=settings.n_points, backbone=backbone)
