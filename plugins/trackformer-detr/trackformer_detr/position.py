"""Positional encodings of a feature map, computed from its padding mask (DETR section 3.2).

Both map a padding mask [B, h, w] (True on padding) to encodings [B, D, h, w] that the
transformer adds to queries and keys in every attention layer.
"""
import math

import torch
import torch.nn as nn


class PositionEmbeddingSine(nn.Module):
    """The Transformer's sine encoding generalised to 2-D: `num_pos_feats` features per axis, y half
    first, sin (even) and cos (odd) interleaved. Positions are cumulative counts of unpadded pixels,
    so padding does not shift the encoding of the real image; `normalize` rescales them to [0, scale]
    so images of different sizes span the same range."""

    def __init__(self, num_pos_feats: int = 128, temperature: float = 10000.0,
                 normalize: bool = True, scale: float = 2 * math.pi):
        super().__init__()
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature
        self.normalize = normalize
        self.scale = scale

    def forward(self, mask):  # [B, h, w] bool -> [B, 2F, h, w]
        not_mask = ~mask
        y_embed = not_mask.cumsum(1, dtype=torch.float32)  # [B, h, w]
        x_embed = not_mask.cumsum(2, dtype=torch.float32)
        if self.normalize:
            eps = 1e-6
            y_embed = y_embed / (y_embed[:, -1:, :] + eps) * self.scale
            x_embed = x_embed / (x_embed[:, :, -1:] + eps) * self.scale
        dim_t = torch.arange(self.num_pos_feats, dtype=torch.float32, device=mask.device)
        dim_t = self.temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / self.num_pos_feats)
        pos_x = x_embed[:, :, :, None] / dim_t  # [B, h, w, F]
        pos_y = y_embed[:, :, :, None] / dim_t
        pos_x = torch.stack((pos_x[..., 0::2].sin(), pos_x[..., 1::2].cos()), dim=4).flatten(3)
        pos_y = torch.stack((pos_y[..., 0::2].sin(), pos_y[..., 1::2].cos()), dim=4).flatten(3)
        return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)  # [B, 2F, h, w]


class PositionEmbeddingLearned(nn.Module):
    """Learned absolute encoding: one embedding per row and per column (up to `max_size`), x half
    first as in DETR. Ignores the mask."""

    def __init__(self, num_pos_feats: int = 128, max_size: int = 50):
        super().__init__()
        self.row_embed = nn.Embedding(max_size, num_pos_feats)
        self.col_embed = nn.Embedding(max_size, num_pos_feats)
        nn.init.uniform_(self.row_embed.weight)
        nn.init.uniform_(self.col_embed.weight)

    def forward(self, mask):  # [B, h, w] -> [B, 2F, h, w]
        h, w = mask.shape[-2:]
        if h > self.row_embed.num_embeddings or w > self.col_embed.num_embeddings:
            raise ValueError(f"feature map {h}x{w} exceeds the learned encoding's "
                             f"{self.row_embed.num_embeddings} positions; raise max_size")
        x_emb = self.col_embed(torch.arange(w, device=mask.device))  # [w, F]
        y_emb = self.row_embed(torch.arange(h, device=mask.device))  # [h, F]
        pos = torch.cat([x_emb[None].expand(h, w, -1), y_emb[:, None].expand(h, w, -1)], dim=-1)
        return pos.permute(2, 0, 1)[None].expand(mask.shape[0], -1, -1, -1)


def build(kind: str, hidden_dim: int, max_size: int = 50) -> nn.Module:
    """`kind` sine or learned; each axis gets half of `hidden_dim`."""
    if kind == "sine":
        return PositionEmbeddingSine(hidden_dim // 2, normalize=True)
    if kind == "learned":
        return PositionEmbeddingLearned(hidden_dim // 2, max_size)
    raise ValueError(f"unknown position embedding {kind!r} (sine | learned)")
