"""TrackFormer's multi-frame Deformable DETR transformer (Meinhardt et al. 2022, the released models'
`multi_frame_attention` + `multi_frame_encoding` + `multi_frame_attention_separate_encoder`).

The one L-level encoder runs on each frame separately (previous first), each frame's levels with its own
`level_embed` rows (previous 0..L-1, current L..2L-1) and its 3-D sine positions; the decoder's deformable
cross-attention reads all F*L levels at once. Track queries go before the object queries with a zero
query position and the previous boxes' centres as reference points.

Quirk (b) of the released models (`memory_order="current_previous"`): the decoder memory is concatenated
[current, previous] while the level shapes, padding masks and valid ratios stay [previous, current]. The
frames' shapes coincide, so cross-attention levels 0..L-1 silently read the current frame and L..2L-1 the
previous one; the corrected order is [previous, current].
"""
import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from .deformable_transformer import DeformableDecoder, DeformableDecoderLayer, DeformableTransformer

MEMORY_ORDERS = ("previous_current", "current_previous")

Frame = Tuple[Sequence[Tensor], Sequence[Tensor], Sequence[Tensor]]  # per level: srcs, masks, positions


def sine_position_3d(mask: Tensor, num_pos_feats: int, frame: int, num_frames: int = 2,
                     temperature: float = 10000.0, dtype: torch.dtype = torch.float32) -> Tensor:
    """[B, H, W] (True on padding) -> [B, 3 * num_pos_feats, H, W]: frame `frame` of TrackFormer's
    `PositionEmbeddingSine3D` (normalised, scale 2pi) over `num_frames` frames of this mask: channels
    (z, y, x), `cumsum / (last + 1e-6) * 2pi` without DETR's -0.5, z = (frame + 1) / num_frames * 2pi
    on valid pixels, 0 on padding; sin/cos interleaved."""
    not_mask = (~mask).to(dtype)
    scale = 2 * math.pi
    y_embed = not_mask.cumsum(1)
    x_embed = not_mask.cumsum(2)
    y_embed = y_embed / (y_embed[:, -1:, :] + 1e-6) * scale
    x_embed = x_embed / (x_embed[:, :, -1:] + 1e-6) * scale
    z_embed = not_mask * (frame + 1) / (num_frames + 1e-6) * scale  # the cumsum over identical frame masks
    dim_t = torch.arange(num_pos_feats, dtype=dtype, device=mask.device)
    dim_t = temperature ** (2 * (dim_t // 2) / num_pos_feats)
    parts = []
    for embed in (z_embed, y_embed, x_embed):
        pos = embed[..., None] / dim_t  # [B, H, W, F]
        parts.append(torch.stack((pos[..., 0::2].sin(), pos[..., 1::2].cos()), dim=4).flatten(3))
    return torch.cat(parts, dim=3).permute(0, 3, 1, 2)


class MultiFrameTransformer(DeformableTransformer):
    """Deformable DETR's transformer (no two-stage) whose encoder has `num_feature_levels` levels and whose
    decoder and `level_embed` have `num_frames` times as many."""

    def __init__(self, d_model=256, nhead=8, num_encoder_layers=6, num_decoder_layers=6, dim_feedforward=1024,
                 dropout=0.1, num_feature_levels=4, n_points=4, offset_normalizer="wh", num_frames=2,
                 memory_order="previous_current"):
        super().__init__(d_model, nhead, num_encoder_layers, num_decoder_layers, dim_feedforward, dropout,
                         num_feature_levels, n_points, n_points, False, 300, offset_normalizer)
        if memory_order not in MEMORY_ORDERS:
            raise ValueError(f"memory_order must be one of {', '.join(MEMORY_ORDERS)}, got {memory_order!r}")
        self.num_frames, self.memory_order = num_frames, memory_order
        if num_frames > 1:  # same names and registration order: the state dict keeps the official layout
            levels = num_frames * num_feature_levels
            self.level_embed = nn.Parameter(torch.empty(levels, d_model))
            self.decoder = DeformableDecoder(DeformableDecoderLayer(
                d_model, dim_feedforward, dropout, levels, nhead, n_points, offset_normalizer), num_decoder_layers)
            self._reset_parameters()

    def encode_frame(self, frame: Frame, index: int):
        """One frame's L levels through the encoder with `level_embed` rows index*L.. ->
        (memory [B, S, d], shapes, padding mask [B, S], valid ratios [B, L, 2])."""
        srcs, masks, pos_embeds = frame
        L = len(srcs)
        shapes: List[Tuple[int, int]] = [tuple(s.shape[-2:]) for s in srcs]
        src = torch.cat([s.flatten(2).transpose(1, 2) for s in srcs], 1)  # [B, S, d]
        mask = torch.cat([m.flatten(1) for m in masks], 1)  # [B, S]
        pos = torch.cat([p.flatten(2).transpose(1, 2) + self.level_embed[index * L + lvl].view(1, 1, -1)
                         for lvl, p in enumerate(pos_embeds)], 1)  # [B, S, d]
        work = torch.promote_types(src.dtype, torch.float32)
        ratios = torch.stack([self.valid_ratio(m, work) for m in masks], 1)  # [B, L, 2]
        return self.encoder(src, shapes, ratios, pos, mask), shapes, mask, ratios

    def forward(self, frames: Sequence[Frame], query_embed: Tensor, track_tgt: Optional[Tensor] = None,
                track_reference: Optional[Tensor] = None, query_padding_mask: Optional[Tensor] = None):
        """frames: `num_frames` frames, previous first, each (srcs, masks, positions) per level [B, d, H_l, W_l];
        query_embed [Q, 2d]; track_tgt [B, T, d] and track_reference [B, T, 2] (x, y) or None;
        query_padding_mask [B, T + Q] (True = empty track slot) or None.
        -> hs [layers, B, T + Q, d], initial references [B, T + Q, 2], per-layer references."""
        if len(frames) != self.num_frames:
            raise ValueError(f"{len(frames)} frames given, the transformer was built for {self.num_frames}")
        encoded = [self.encode_frame(frame, f) for f, frame in enumerate(frames)]
        memories = [m for m, _, _, _ in encoded]
        if self.memory_order == "current_previous":
            memories = memories[::-1]  # quirk (b): shapes, masks and ratios below stay [previous, current]
        memory = torch.cat(memories, 1)  # [B, F*S, d]
        shapes = [s for _, frame_shapes, _, _ in encoded for s in frame_shapes]
        mask = torch.cat([m for _, _, m, _ in encoded], 1)  # [B, F*S]
        ratios = torch.cat([r for _, _, _, r in encoded], 1)  # [B, F*L, 2]
        B, _, d = memory.shape
        query_pos, tgt = torch.split(query_embed, d, dim=1)
        query_pos, tgt = query_pos[None].expand(B, -1, -1), tgt[None].expand(B, -1, -1)  # [B, Q, d]
        reference = self.reference_points(query_pos).sigmoid()  # [B, Q, 2]
        if track_tgt is not None:
            tgt = torch.cat([track_tgt, tgt], 1)
            query_pos = torch.cat([torch.zeros_like(track_tgt), query_pos], 1)
            reference = torch.cat([track_reference.to(reference), reference], 1)
        hs, references = self.decoder(tgt, reference, memory, shapes, ratios, query_pos, mask, query_padding_mask)
        return hs, reference, references
