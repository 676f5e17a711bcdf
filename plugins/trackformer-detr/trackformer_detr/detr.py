"""DETR (Carion et al. 2020): a CNN backbone, a transformer and a fixed set of learned queries that
each predict one (class, box) pair or "no object".

Parameter names are the official implementation's (`backbone.0.body.*`, `transformer.*`,
`class_embed`, `bbox_embed.layers.N`, `query_embed`, `input_proj`), so official checkpoints load
strictly. Subclasses (TrackFormer) override `make_queries` to put extra queries in front.
"""
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from trackformer.data.transforms import pad_images
from trackformer.errors import ConfigError
from trackformer.models.levels import last_level, level_masks

from .settings import DETRConfig

Inputs = Union[Sequence[Tensor], Tensor, Tuple[Tensor, Tensor], Dict[str, Tensor]]


class Queries(NamedTuple):
    """The decoder's input for one call: content `tgt` [Q, B, D], position `pos` [Q, B, D],
    `padding` [B, Q] (True = ignore) or None, and `layout`, entries that describe the queries to
    whoever reads the outputs (e.g. how many track-query slots come first)."""
    tgt: Tensor
    pos: Tensor
    padding: Optional[Tensor] = None
    layout: Optional[Dict] = None


def as_padded_batch(inputs: Inputs) -> Tuple[Tensor, Tensor]:
    """Accept a list of [3, H, W] images, a batch [B, 3, H, W] (no padding), a pair (images, mask)
    or a dict with `images` and `mask` -> (images [B, 3, H, W], mask [B, H, W])."""
    if isinstance(inputs, dict):
        return inputs["images"], inputs["mask"]
    if isinstance(inputs, Tensor):
        if inputs.dim() == 3:
            inputs = inputs[None]
        B, _, H, W = inputs.shape
        return inputs, torch.zeros((B, H, W), dtype=torch.bool, device=inputs.device)
    if (isinstance(inputs, tuple) and len(inputs) == 2 and isinstance(inputs[0], Tensor)
            and inputs[0].dim() == 4):
        return inputs[0], inputs[1]
    return pad_images(list(inputs))


def original_sizes(inputs: Inputs, targets: Optional[List[Dict]] = None,
                   target_sizes: Optional[Tensor] = None) -> Tensor:
    """(h, w) [B, 2] to scale predicted boxes to: `target_sizes`, else each target's `orig_size`,
    else the unpadded input size."""
    if target_sizes is not None:
        return target_sizes
    if targets is not None:
        return torch.stack([t["orig_size"] for t in targets])
    _, mask = as_padded_batch(inputs)
    return torch.stack([(~mask).any(2).sum(1), (~mask).any(1).sum(1)], dim=1)


class Joiner(nn.Sequential):
    """backbone (index 0) + position encoding (index 1), DETR's `backbone.0.body.*` layout.
    DETR takes the backbone's last (coarsest) level, `level`, with `num_channels` channels."""

    def __init__(self, backbone: nn.Module, position_embedding: nn.Module):
        super().__init__(backbone, position_embedding)
        self.level = last_level(backbone)
        self.num_channels = backbone.levels[self.level].channels

    def forward(self, images: Tensor, mask: Tensor):
        # images [B, 3, H, W], mask [B, H, W] -> features [B, C, h, w], mask [B, h, w], pos [B, D, h, w]
        features = {self.level: self[0](images)[self.level]}
        mask = level_masks(mask, features)[self.level]
        pos = self[1](mask).to(features[self.level].dtype)
        return features[self.level], mask, pos


class MLP(nn.Module):
    """Feed-forward head: `num_layers` linears with ReLU in between."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int):
        super().__init__()
        dims = [input_dim] + [hidden_dim] * (num_layers - 1)
        self.layers = nn.ModuleList(nn.Linear(n, k) for n, k in zip(dims, dims[1:] + [output_dim]))

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = F.relu(layer(x)) if i < len(self.layers) - 1 else layer(x)
        return x


class DETR(nn.Module):
    """images -> {"pred_logits" [B, Q, C+1] (no-object last), "pred_boxes" [B, Q, 4] (cx, cy, w, h
    relative to the unpadded image), "aux_outputs" (the same for decoder layers 1..L-1),
    "hs_embed" [B, Q, D] (last decoder layer's query embeddings, for track queries)}."""

    def __init__(self, backbone: Joiner, transformer: nn.Module, num_classes: int,
                 num_queries: int, aux_loss: bool = True):
        super().__init__()
        hidden_dim = transformer.d_model
        self.num_queries = num_queries
        self.num_classes = num_classes
        self.aux_loss = aux_loss
        # registration order follows the official model so state dicts list keys identically
        self.transformer = transformer
        self.class_embed = nn.Linear(hidden_dim, num_classes + 1)
        self.bbox_embed = MLP(hidden_dim, hidden_dim, 4, 3)
        self.query_embed = nn.Embedding(num_queries, hidden_dim)
        self.input_proj = nn.Conv2d(backbone.num_channels, hidden_dim, kernel_size=1)
        self.backbone = backbone

    # --- the three stages, separately overridable -------------------------------------------
    def encode(self, inputs: Inputs):
        """-> memory [HW, B, D], mask [B, HW], pos [HW, B, D], feature size (h, w), image mask."""
        images, mask = as_padded_batch(inputs)
        features, fmask, pos = self.backbone(images, mask)
        src = self.input_proj(features)  # [B, D, h, w]
        memory, mask_flat, pos_flat = self.transformer.encode(src, fmask, pos)
        return memory, mask_flat, pos_flat, tuple(src.shape[-2:]), mask

    def make_queries(self, batch_size: int, targets=None) -> Queries:
        """DETR: zero content and the learned `query_embed` as position. Override to prepend
        queries (TrackFormer's track queries) and to describe them to the heads' consumers."""
        query_pos = self.query_embed.weight[:, None].expand(-1, batch_size, -1)  # [Q, B, D]
        return Queries(torch.zeros_like(query_pos), query_pos)

    def heads(self, hs: Tensor, layout: Optional[Dict] = None) -> Dict:
        """hs [L, B, Q, D] -> outputs dict; `layout` (the queries' description) is copied onto the
        last and every auxiliary output, where the matcher and the criterion read it."""
        logits = self.class_embed(hs)  # [L, B, Q, C+1]
        boxes = self.bbox_embed(hs).sigmoid()  # [L, B, Q, 4]
        out = {"pred_logits": logits[-1], "pred_boxes": boxes[-1], "hs_embed": hs[-1]}
        if self.aux_loss:
            out["aux_outputs"] = [{"pred_logits": a, "pred_boxes": b}
                                  for a, b in zip(logits[:-1], boxes[:-1])]
        for o in [out] + out.get("aux_outputs", []):
            o.update(layout or {})
        return out

    def forward(self, inputs: Inputs, targets: Optional[List[Dict]] = None) -> Dict:
        memory, mask, pos, _, _ = self.encode(inputs)
        queries = self.make_queries(memory.shape[1], targets)
        hs = self.transformer.decode(queries.tgt.to(memory.dtype), memory, mask, pos,
                                     queries.pos.to(memory.dtype), tgt_key_padding_mask=queries.padding)
        return self.heads(hs, queries.layout)

    @torch.no_grad()
    def predict(self, inputs: Inputs, targets: Optional[List[Dict]] = None,
                target_sizes: Optional[Tensor] = None) -> List[Dict[str, Tensor]]:
        """Scored, labelled xyxy boxes in original pixels, every query kept (COCO evaluation).
        Sizes (h, w) come from `target_sizes` [B, 2], else each target's `orig_size`, else the
        unpadded input size."""
        from .postprocess import PostProcess

        return PostProcess()(self(inputs), original_sizes(inputs, targets, target_sizes))


def build_detr(backbone: nn.Module, encoder: nn.Module, decoder: nn.Module, num_classes: int,
               num_queries: int = 100, position_embedding: str = "sine", aux_loss: bool = True):
    from . import position
    from .transformer import Transformer

    joiner = Joiner(backbone, position.build(position_embedding, decoder.d_model))
    return DETR(joiner, Transformer(encoder, decoder), num_classes, num_queries, aux_loss)


def num_classes_from(settings, data_info) -> int:
    """`settings.num_classes`, else the training data's (read only then)."""
    if settings.num_classes is not None:
        return settings.num_classes
    n = (data_info or {}).get("num_classes")
    if n is None:
        raise ConfigError("num_classes", "not set and the data do not provide num_classes")
    return int(n)


def build_parts(settings: DETRConfig):
    """(backbone, encoder, decoder) of a DETR-like architecture, through the registries."""
    from trackformer import build as build_component

    backbone = build_component("backbones", settings.backbone)
    encoder = build_component("encoders", settings.encoder, d_model=settings.hidden_dim)
    decoder = build_component("decoders", settings.decoder, d_model=settings.hidden_dim)
    return backbone, encoder, decoder


def build(settings: DETRConfig, data_info=None, **deps) -> DETR:
    """The `detr` architecture from its settings."""
    return build_detr(*build_parts(settings), num_classes_from(settings, data_info), settings.num_queries,
                      settings.position_embedding, settings.aux_loss)
