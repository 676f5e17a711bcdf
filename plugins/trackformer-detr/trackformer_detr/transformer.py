"""DETR's post-norm transformer: an attention encoder over image features and a query decoder.

Parameter names are DETR's (`layers.N.self_attn`, `multihead_attn`, `linear1/2`, `norm1..3`,
`decoder.norm`), so official checkpoints load into `Transformer(encoder, decoder)` unchanged.
Positional encodings are added to queries and keys in every attention layer, never to values.
Shapes: HW flattened feature positions, Q queries, B batch, D width, L decoder layers.
"""
import copy
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from trackformer.errors import ConfigError

from .attention import MultiheadAttention
from .settings import TransformerStackConfig


def _clones(module: nn.Module, n: int) -> nn.ModuleList:
    return nn.ModuleList([copy.deepcopy(module) for _ in range(n)])


def _xavier_init(module: nn.Module):
    # DETR re-initialises every matrix of its transformer with Xavier-uniform
    for p in module.parameters():
        if p.dim() > 1:
            nn.init.xavier_uniform_(p)


def _with_pos(x: Tensor, pos: Optional[Tensor]) -> Tensor:
    return x if pos is None else x + pos


class TransformerEncoderLayer(nn.Module):
    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, src, src_key_padding_mask=None, pos=None):  # [HW, B, D]
        q = k = _with_pos(src, pos)
        src = self.norm1(src + self.dropout1(
            self.self_attn(q, k, src, key_padding_mask=src_key_padding_mask)))
        src2 = self.linear2(self.dropout(F.relu(self.linear1(src))))
        return self.norm2(src + self.dropout2(src2))


class TransformerDecoderLayer(nn.Module):
    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout)
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def forward(self, tgt, memory, tgt_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, pos=None, query_pos=None):
        # tgt [Q, B, D], memory [HW, B, D]
        q = k = _with_pos(tgt, query_pos)
        tgt = self.norm1(tgt + self.dropout1(self.self_attn(
            q, k, tgt, key_padding_mask=tgt_key_padding_mask, attn_mask=tgt_mask)))
        tgt = self.norm2(tgt + self.dropout2(self.multihead_attn(
            _with_pos(tgt, query_pos), _with_pos(memory, pos), memory,
            key_padding_mask=memory_key_padding_mask)))
        tgt2 = self.linear2(self.dropout(F.relu(self.linear1(tgt))))
        return self.norm3(tgt + self.dropout3(tgt2))


class TransformerEncoder(nn.Module):
    """src [HW, B, D], mask [B, HW] (True = padding), pos [HW, B, D] -> memory [HW, B, D].
    No final norm: DETR's post-norm encoder ends with a normalised layer already."""

    def __init__(self, layer: TransformerEncoderLayer, num_layers: int):
        super().__init__()
        self.layers = _clones(layer, num_layers)
        self.num_layers = num_layers
        self.d_model = layer.linear1.in_features
        _xavier_init(self)

    def forward(self, src, mask=None, pos=None):
        out = src
        for layer in self.layers:
            out = layer(out, src_key_padding_mask=mask, pos=pos)
        return out


class TransformerDecoder(nn.Module):
    """Queries tgt [Q, B, D] over memory [HW, B, D] -> every layer's output, normalised by the
    shared final `norm`, as [L, B, Q, D] (the heads and auxiliary losses see all L).

    `query_pos` [Q, B, D] is added to the queries in both attentions; callers that prepend
    other queries (e.g. TrackFormer's track queries) give them a zero position.
    `tgt_key_padding_mask` [B, Q] hides padded queries when images carry different numbers."""

    def __init__(self, layer: TransformerDecoderLayer, num_layers: int, return_intermediate=True):
        super().__init__()
        self.layers = _clones(layer, num_layers)
        self.num_layers = num_layers
        self.norm = nn.LayerNorm(layer.linear1.in_features)
        self.d_model = layer.linear1.in_features
        self.return_intermediate = return_intermediate
        _xavier_init(self)

    def forward(self, tgt, memory, memory_key_padding_mask=None, pos=None, query_pos=None,
                tgt_mask=None, tgt_key_padding_mask=None):
        out = tgt
        intermediate = []
        for layer in self.layers:
            out = layer(out, memory, tgt_mask=tgt_mask, tgt_key_padding_mask=tgt_key_padding_mask,
                        memory_key_padding_mask=memory_key_padding_mask, pos=pos,
                        query_pos=query_pos)
            if self.return_intermediate:
                intermediate.append(self.norm(out))
        hs = torch.stack(intermediate) if self.return_intermediate else self.norm(out)[None]
        return hs.transpose(1, 2)  # [L, B, Q, D]


class Transformer(nn.Module):
    """Holds the encoder and decoder under DETR's names (`transformer.encoder/decoder`)."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.d_model = decoder.d_model
        self.nhead = decoder.layers[0].self_attn.nhead if hasattr(decoder, "layers") else None

    def encode(self, src, mask, pos):
        """src [B, D, h, w], mask [B, h, w], pos [B, D, h, w] -> memory [HW, B, D], mask [B, HW],
        pos [HW, B, D]."""
        src = src.flatten(2).permute(2, 0, 1)
        pos = pos.flatten(2).permute(2, 0, 1).to(src.dtype)
        mask = mask.flatten(1)
        return self.encoder(src, mask=mask, pos=pos), mask, pos

    def decode(self, tgt, memory, mask, pos, query_pos, tgt_mask=None, tgt_key_padding_mask=None):
        """tgt/query_pos [Q, B, D] -> hs [L, B, Q, D]."""
        return self.decoder(tgt, memory, memory_key_padding_mask=mask, pos=pos,
                            query_pos=query_pos, tgt_mask=tgt_mask,
                            tgt_key_padding_mask=tgt_key_padding_mask)

    def forward(self, src, mask, query_embed, pos):
        """DETR's signature: src/pos [B, D, h, w], mask [B, h, w], query_embed [Q, D] -> (hs
        [L, B, Q, D], memory [B, D, h, w])."""
        B, D, h, w = src.shape
        memory, mask_flat, pos_flat = self.encode(src, mask, pos)
        query_pos = query_embed[:, None].expand(-1, B, -1)  # [Q, B, D]
        tgt = torch.zeros_like(query_pos)
        hs = self.decode(tgt, memory, mask_flat, pos_flat, query_pos)
        return hs, memory.permute(1, 2, 0).view(B, D, h, w)


def _check_width(settings: TransformerStackConfig, d_model: int):
    if d_model % settings.nhead:
        raise ConfigError("nhead", f"{settings.nhead} does not divide the model width {d_model}")


def build_encoder(settings: TransformerStackConfig, d_model: int = 256, **deps) -> TransformerEncoder:
    """The `detr_encoder` from its settings and the model width."""
    _check_width(settings, d_model)
    layer = TransformerEncoderLayer(d_model, settings.nhead, settings.dim_feedforward, settings.dropout)
    return TransformerEncoder(layer, settings.num_layers)


def build_decoder(settings: TransformerStackConfig, d_model: int = 256, **deps) -> TransformerDecoder:
    """The `detr_decoder` from its settings and the model width."""
    _check_width(settings, d_model)
    layer = TransformerDecoderLayer(d_model, settings.nhead, settings.dim_feedforward, settings.dropout)
    return TransformerDecoder(layer, settings.num_layers)
