"""Deformable DETR's transformer (Zhu et al. 2021), official module and parameter names.

Encoder: every token of every level attends, through `MSDeformAttn`, to M*L*P samples around its own
pixel centre on all levels; post-norm, FFN. Decoder: query self-attention (`nn.MultiheadAttention`),
deformable cross-attention around each query's reference point, FFN; with iterative box refinement
(`bbox_embed` set by the detector) every layer moves the reference boxes, detached. Two-stage: the
encoder's tokens propose boxes, the top-k become the decoder's references and queries.
Sequences are batch-first: [B, S, d]."""
import copy
import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .ms_deform_attn import MSDeformAttn


def inverse_sigmoid(x: Tensor, eps: float = 1e-5) -> Tensor:
    x = x.clamp(min=0, max=1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


class DeformableEncoderLayer(nn.Module):
    def __init__(self, d_model=256, d_ffn=1024, dropout=0.1, n_levels=4, n_heads=8, n_points=4,
                 offset_normalizer="wh"):
        super().__init__()
        self.self_attn = MSDeformAttn(d_model, n_levels, n_heads, n_points, offset_normalizer)
        self.dropout1 = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, d_ffn)
        self.dropout2 = nn.Dropout(dropout)
        self.linear2 = nn.Linear(d_ffn, d_model)
        self.dropout3 = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(d_model)

    def forward(self, src, pos, reference_points, shapes, padding_mask=None):  # src [B, S, d]
        src = self.norm1(src + self.dropout1(self.self_attn(src + pos, reference_points, src, shapes, None,
                                                            padding_mask)))
        return self.norm2(src + self.dropout3(self.linear2(self.dropout2(F.relu(self.linear1(src))))))


class DeformableEncoder(nn.Module):
    def __init__(self, layer: DeformableEncoderLayer, num_layers: int):
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))

    @staticmethod
    def reference_points(shapes, valid_ratios: Tensor) -> Tensor:
        """Pixel centres of every level in units of the valid (unpadded) map, then scaled by every level's
        valid ratio: [B, S, L, 2] (x, y). valid_ratios [B, L, 2] (w, h)."""
        refs = []
        for lvl, (h, w) in enumerate(shapes):
            ref_y, ref_x = torch.meshgrid(
                torch.linspace(0.5, h - 0.5, h, dtype=valid_ratios.dtype, device=valid_ratios.device),
                torch.linspace(0.5, w - 0.5, w, dtype=valid_ratios.dtype, device=valid_ratios.device), indexing="ij")
            ref_y = ref_y.reshape(-1)[None] / (valid_ratios[:, None, lvl, 1] * h)
            ref_x = ref_x.reshape(-1)[None] / (valid_ratios[:, None, lvl, 0] * w)
            refs.append(torch.stack((ref_x, ref_y), -1))  # [B, h*w, 2]
        return torch.cat(refs, 1)[:, :, None] * valid_ratios[:, None]

    def forward(self, src, shapes, valid_ratios, pos, padding_mask=None):
        reference_points = self.reference_points(shapes, valid_ratios).to(src.dtype)
        for layer in self.layers:
            src = layer(src, pos, reference_points, shapes, padding_mask)
        return src


class DeformableDecoderLayer(nn.Module):
    def __init__(self, d_model=256, d_ffn=1024, dropout=0.1, n_levels=4, n_heads=8, n_points=4,
                 offset_normalizer="wh"):
        super().__init__()
        self.cross_attn = MSDeformAttn(d_model, n_levels, n_heads, n_points, offset_normalizer)
        self.dropout1 = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.self_attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.dropout2 = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, d_ffn)
        self.dropout3 = nn.Dropout(dropout)
        self.linear2 = nn.Linear(d_ffn, d_model)
        self.dropout4 = nn.Dropout(dropout)
        self.norm3 = nn.LayerNorm(d_model)

    def forward(self, tgt, query_pos, reference_points, memory, shapes, memory_padding_mask=None,
                query_padding_mask=None):  # tgt [B, Q, d]; query_padding_mask [B, Q] True = empty slot
        q = tgt + query_pos
        tgt = self.norm2(tgt + self.dropout2(self.self_attn(q, q, tgt, key_padding_mask=query_padding_mask,
                                                            need_weights=False)[0]))
        tgt = self.norm1(tgt + self.dropout1(self.cross_attn(tgt + query_pos, reference_points, memory, shapes, None,
                                                             memory_padding_mask)))
        return self.norm3(tgt + self.dropout4(self.linear2(self.dropout3(F.relu(self.linear1(tgt))))))


class DeformableDecoder(nn.Module):
    """Returns every layer's output [num_layers, B, Q, d] and reference points [num_layers, B, Q, 2|4].
    `bbox_embed` (a ModuleList, one head per layer) turns on iterative box refinement; `class_embed` is
    set for two-stage only, for the official layout (its last head scores the proposals)."""

    def __init__(self, layer: DeformableDecoderLayer, num_layers: int):
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))
        self.num_layers = num_layers
        self.bbox_embed: Optional[nn.ModuleList] = None
        self.class_embed: Optional[nn.ModuleList] = None

    def forward(self, tgt, reference_points, memory, shapes, valid_ratios, query_pos, memory_padding_mask=None,
                query_padding_mask=None):
        outputs, references = [], []
        for lid, layer in enumerate(self.layers):
            scale = valid_ratios if reference_points.shape[-1] == 2 else torch.cat([valid_ratios, valid_ratios], -1)
            ref_input = reference_points[:, :, None] * scale[:, None]  # [B, Q, L, 2|4]
            tgt = layer(tgt, query_pos, ref_input, memory, shapes, memory_padding_mask, query_padding_mask)
            if self.bbox_embed is not None:
                delta = self.bbox_embed[lid](tgt)  # [B, Q, 4]
                if reference_points.shape[-1] == 4:
                    new = delta + inverse_sigmoid(reference_points)
                else:
                    new = torch.cat([delta[..., :2] + inverse_sigmoid(reference_points), delta[..., 2:]], -1)
                reference_points = new.sigmoid().detach()
            outputs.append(tgt)
            references.append(reference_points)
        return torch.stack(outputs), torch.stack(references)


class DeformableTransformer(nn.Module):
    def __init__(self, d_model=256, nhead=8, num_encoder_layers=6, num_decoder_layers=6, dim_feedforward=1024,
                 dropout=0.1, num_feature_levels=4, dec_n_points=4, enc_n_points=4, two_stage=False,
                 two_stage_num_proposals=300, offset_normalizer="wh"):
        super().__init__()
        self.d_model, self.nhead = d_model, nhead
        self.two_stage, self.two_stage_num_proposals = two_stage, two_stage_num_proposals
        self.encoder = DeformableEncoder(DeformableEncoderLayer(
            d_model, dim_feedforward, dropout, num_feature_levels, nhead, enc_n_points, offset_normalizer),
            num_encoder_layers)
        self.decoder = DeformableDecoder(DeformableDecoderLayer(
            d_model, dim_feedforward, dropout, num_feature_levels, nhead, dec_n_points, offset_normalizer),
            num_decoder_layers)
        self.level_embed = nn.Parameter(torch.empty(num_feature_levels, d_model))
        if two_stage:
            self.enc_output = nn.Linear(d_model, d_model)
            self.enc_output_norm = nn.LayerNorm(d_model)
            self.pos_trans = nn.Linear(d_model * 2, d_model * 2)
            self.pos_trans_norm = nn.LayerNorm(d_model * 2)
        else:
            self.reference_points = nn.Linear(d_model, 2)
        self._reset_parameters()

    def _reset_parameters(self):
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        for m in self.modules():
            if isinstance(m, MSDeformAttn):
                m._reset_parameters()
        if not self.two_stage:
            nn.init.xavier_uniform_(self.reference_points.weight, gain=1.0)
            nn.init.constant_(self.reference_points.bias, 0.0)
        nn.init.normal_(self.level_embed)

    def proposal_pos_embed(self, proposals: Tensor) -> Tensor:
        """[B, K, 4] logits of boxes -> [B, K, 2d]: d/2 sine/cos features per coordinate (official: 128 at d 256)."""
        feats = self.d_model // 2
        dim_t = torch.arange(feats, dtype=proposals.dtype, device=proposals.device)
        dim_t = 10000 ** (2 * (dim_t // 2) / feats)
        pos = proposals.sigmoid()[:, :, :, None] * (2 * math.pi) / dim_t  # [B, K, 4, 128]
        return torch.stack((pos[:, :, :, 0::2].sin(), pos[:, :, :, 1::2].cos()), dim=4).flatten(2)

    def encoder_proposals(self, memory: Tensor, padding_mask: Tensor, shapes) -> Tuple[Tensor, Tensor]:
        """One box per token (its pixel centre, side 0.05 * 2^level): memory [B, S, d] -> (projected memory,
        box logits [B, S, 4], inf where padded or the box leaves (0.01, 0.99))."""
        B = memory.shape[0]
        proposals, start = [], 0
        for lvl, (h, w) in enumerate(shapes):
            mask = padding_mask[:, start:start + h * w].view(B, h, w)
            valid_h, valid_w = (~mask[:, :, 0]).sum(1), (~mask[:, 0, :]).sum(1)
            grid_y, grid_x = torch.meshgrid(torch.linspace(0, h - 1, h, dtype=memory.dtype, device=memory.device),
                                            torch.linspace(0, w - 1, w, dtype=memory.dtype, device=memory.device),
                                            indexing="ij")
            grid = torch.stack([grid_x, grid_y], -1)  # [h, w, 2]
            scale = torch.stack([valid_w, valid_h], 1).view(B, 1, 1, 2)
            grid = (grid[None].expand(B, -1, -1, -1) + 0.5) / scale
            wh = torch.ones_like(grid) * 0.05 * (2.0 ** lvl)
            proposals.append(torch.cat((grid, wh), -1).view(B, -1, 4))
            start += h * w
        proposals = torch.cat(proposals, 1)
        valid = ((proposals > 0.01) & (proposals < 0.99)).all(-1, keepdim=True)
        proposals = torch.log(proposals / (1 - proposals))
        proposals = proposals.masked_fill(padding_mask[..., None], float("inf")).masked_fill(~valid, float("inf"))
        out = memory.masked_fill(padding_mask[..., None], 0.0).masked_fill(~valid, 0.0)
        return self.enc_output_norm(self.enc_output(out)), proposals

    @staticmethod
    def valid_ratio(mask: Tensor, dtype=torch.float32) -> Tensor:  # [B, H, W] True on padding -> [B, 2] (w, h)
        _, H, W = mask.shape
        return torch.stack([(~mask[:, 0, :]).sum(1).to(dtype) / W, (~mask[:, :, 0]).sum(1).to(dtype) / H], -1)

    def forward(self, srcs: Sequence[Tensor], masks: Sequence[Tensor], pos_embeds: Sequence[Tensor],
                query_embed: Optional[Tensor] = None):
        """srcs / pos_embeds: per level [B, d, H_l, W_l]; masks [B, H_l, W_l] (True on padding);
        query_embed [Q, 2d] (query position | target), None for two-stage.
        Returns hs [layers, B, Q, d], initial references [B, Q, 2|4], per-layer references, and for
        two-stage the proposals' logits [B, S, C] and box logits [B, S, 4] (else None, None)."""
        shapes: List[Tuple[int, int]] = [tuple(s.shape[-2:]) for s in srcs]
        src = torch.cat([s.flatten(2).transpose(1, 2) for s in srcs], 1)  # [B, S, d]
        mask = torch.cat([m.flatten(1) for m in masks], 1)  # [B, S]
        pos = torch.cat([p.flatten(2).transpose(1, 2) + self.level_embed[lvl].view(1, 1, -1)
                         for lvl, p in enumerate(pos_embeds)], 1)  # [B, S, d]
        # float32 as the official code, float64 for float64 models
        valid_ratios = torch.stack([self.valid_ratio(m, torch.promote_types(src.dtype, torch.float32)) for m in masks],
                                   1)  # [B, L, 2]
        memory = self.encoder(src, shapes, valid_ratios, pos, mask)
        B, _, d = memory.shape
        enc_class = enc_coord = None
        if self.two_stage:
            out_memory, proposals = self.encoder_proposals(memory, mask, shapes)
            enc_class = self.decoder.class_embed[self.decoder.num_layers](out_memory)
            enc_coord = self.decoder.bbox_embed[self.decoder.num_layers](out_memory) + proposals
            topk = torch.topk(enc_class[..., 0], self.two_stage_num_proposals, dim=1)[1]
            topk_coords = torch.gather(enc_coord, 1, topk[..., None].expand(-1, -1, 4)).detach()
            reference_points = topk_coords.sigmoid()
            query_pos, tgt = torch.split(self.pos_trans_norm(self.pos_trans(self.proposal_pos_embed(topk_coords))),
                                         d, dim=2)
        else:
            query_pos, tgt = torch.split(query_embed, d, dim=1)
            query_pos, tgt = query_pos[None].expand(B, -1, -1), tgt[None].expand(B, -1, -1)
            reference_points = self.reference_points(query_pos).sigmoid()
        hs, references = self.decoder(tgt, reference_points, memory, shapes, valid_ratios, query_pos, mask)
        return hs, reference_points, references, enc_class, enc_coord
