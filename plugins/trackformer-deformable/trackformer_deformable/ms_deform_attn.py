"""Multi-scale deformable attention (Zhu et al. 2021) in pure PyTorch: CPU and CUDA, any float dtype,
forward and backward, nothing to compile.

Each query reads, per head m, level l and point p, one bilinear sample of that level's value map at
`sampling_locations` (x, y in [0, 1] of the padded map) and sums them weighted by `attention_weights`.
The sample is the official CUDA kernel's and `grid_sample(align_corners=False, padding_mode="zeros")`'s
at `2 * loc - 1`: pixel coordinate `loc * size - 0.5`, corners outside the map read zero.

The official pure-PyTorch reference calls `grid_sample` once per level, stacks the samples of all
levels into [N*M, D, Lq, L*P], weights and sums them, and autograd keeps the samples for the
backward. Here every level's map gets a zero border in one flat copy of the value [N*Sp*M, D], so the
four corners of any clamped coordinate are real rows and need no mask; the attention weight is folded
into the four bilinear weights; each (query, head) becomes one bag of L*P*4 rows, and
`F.embedding_bag(mode="sum", per_sample_weights=...)` gathers and reduces them in one fused call,
never materialising the samples. A custom autograd function keeps only the bordered value, the
locations and the weights, and recomputes the corners chunk by chunk of queries in the backward:
the corner products <value row, grad> come from `embedding_bag`'s per-sample-weight gradient op, the
value's gradient from a second `embedding_bag` over the output gradient with the corners sorted by
row (its transpose; faster than `embedding_bag`'s own backward or `index_add_` on CPU).
Coordinates and bilinear weights are computed in float32 (float64 for float64 inputs) whatever the
value's dtype; float16/bfloat16 gradients are accumulated in float32.
Measured (bench/bench_deformable_attention.py, 2 threads): forward+backward at the released TrackFormer
encoder's shapes about 0.6-0.75x the time and 0.3x the peak memory of the reference algorithm; at the
decoder's (550 queries, value-sized work dominates) about 1.1x time and 1.3x memory.
"""
import math
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

# Queries per chunk are chosen so one chunk holds about this many bilinear corners.
CHUNK_CORNERS = 1 << 22

Shapes = Union[Tensor, Sequence[Tuple[int, int]]]


def level_shapes(spatial_shapes: Shapes) -> Tuple[Tuple[int, int], ...]:
    """[L, 2] tensor or list of (H, W) -> tuple of (H, W) ints."""
    if isinstance(spatial_shapes, Tensor):
        spatial_shapes = spatial_shapes.tolist()
    return tuple((int(h), int(w)) for h, w in spatial_shapes)


# Each level's map is stored with a zero border (PAD_BEFORE rows/columns before, PAD_AFTER after), so
# every corner of a clamped coordinate in [-1, size] is a real row and no corner needs a mask.
PAD_BEFORE, PAD_AFTER = 1, 2


def _padded(value: Tensor, shapes) -> Tensor:
    """value [N, S, M, D] -> rows [N * Sp * M, D] of the zero-bordered levels, Sp = sum (H + 3) * (W + 3)."""
    N, _, M, D = value.shape
    pad = PAD_BEFORE + PAD_AFTER
    rows = value.new_zeros(N, sum((h + pad) * (w + pad) for h, w in shapes), M, D)
    start = 0
    for level, (h, w) in zip(value.split([h * w for h, w in shapes], dim=1), shapes):
        bordered = rows[:, start:start + (h + pad) * (w + pad)].view(N, h + pad, w + pad, M, D)
        bordered[:, PAD_BEFORE:PAD_BEFORE + h, PAD_BEFORE:PAD_BEFORE + w] = level.view(N, h, w, M, D)
        start += (h + pad) * (w + pad)
    return rows.view(-1, D)


def _token_map(shapes, N: int, device) -> Tensor:
    """[N * Sp]: for each row group of the bordered levels its token in the value [N * S], -1 on the border."""
    S = sum(h * w for h, w in shapes)
    tokens = torch.arange(N * S, device=device).view(N, S).split([h * w for h, w in shapes], dim=1)
    border = (PAD_BEFORE, PAD_AFTER, PAD_BEFORE, PAD_AFTER)
    return torch.cat([F.pad(t.view(N, h, w), border, value=-1).view(N, -1) for t, (h, w) in zip(tokens, shapes)],
                     1).view(-1)


def _corners(loc: Tensor, shapes, N: int, M: int, cdt: torch.dtype):
    """Bilinear corners of one chunk of samples in the `_padded` rows.

    loc [N, q, M, L, P, 2] (x, y) -> row00 [N, q, M, L, P] (int64 row of corner (x0, y0)), step [L, 1, 4]
    (row offsets of the corners (x0, y0), (x0 + 1, y0), (x0, y0 + 1), (x0 + 1, y0 + 1)), wx / wy
    [N, q, M, L, P, 2] (weights of columns x0, x0 + 1 / rows y0, y0 + 1), scale [N, q, M, L, P, 2]
    (d pixel / d loc: the size, or 0 where the coordinate lies beyond -1 or size and every corner reads 0).
    """
    device = loc.device
    pad = PAD_BEFORE + PAD_AFTER
    size = torch.tensor([[w, h] for h, w in shapes], dtype=cdt, device=device)[:, None]  # [L, 1, 2] (W, H)
    row_len = torch.tensor([w + pad for _, w in shapes], device=device)[:, None]  # [L, 1]
    level_rows = [(h + pad) * (w + pad) for h, w in shapes]
    starts = torch.tensor([0] + level_rows[:-1], device=device).cumsum(0)[:, None]  # [L, 1]
    pix = loc.to(cdt) * size - 0.5  # [N, q, M, L, P, 2]
    scale = size * ((pix > -1) & (pix < size))
    pix = torch.minimum(pix.clamp_(min=-1), size)  # beyond [-1, size] all corners are in the zero border
    corner0 = pix.floor()
    frac = pix.sub_(corner0)
    xy0 = corner0.long() + PAD_BEFORE  # [N, q, M, L, P, 2], in the bordered map
    n = torch.arange(N, device=device).view(N, 1, 1, 1, 1) * sum(level_rows)
    m = torch.arange(M, device=device).view(1, 1, M, 1, 1)
    row00 = (n + starts + xy0[..., 1] * row_len + xy0[..., 0]) * M + m  # [N, q, M, L, P]
    step = torch.stack([torch.zeros_like(row_len), torch.ones_like(row_len), row_len, row_len + 1], -1) * M
    wx = torch.stack([1 - frac[..., 0], frac[..., 0]], -1)
    wy = torch.stack([1 - frac[..., 1], frac[..., 1]], -1)
    return row00, step, wx, wy, scale


def _scatter_rows(grad_value: Tensor, token_map: Tensor, M: int, row00: Tensor, step: Tensor, weights: Tensor,
                  grad: Tensor):
    """grad_value[row] += weight * grad[bag] for every corner: the transpose of the forward's bags.

    Each corner's rows, sorted, make the bags of one `embedding_bag` over `grad` (one bag per distinct
    row); one sort of the (x0, y0) rows serves the four corners, since a corner's step keeps rows inside
    their level. grad_value [N * S * M, D]; token_map from `_token_map`; M heads; row00 [B, L*P] (bordered rows);
    step [L*P, 4]; weights [B, L*P, 4]; grad [B, D].
    """
    LP = row00.shape[1]
    keys = row00.view(-1)
    order = torch.argsort(keys)
    bag = order // LP
    keys = keys[order]
    steps = step[order % LP].t()  # [4, E]
    corner_weights = weights.view(-1, 4)[order].t().contiguous()  # [4, E]
    for c in range(4):
        rows, counts = torch.unique_consecutive(keys + steps[c], return_counts=True)
        summed = F.embedding_bag(bag, grad, counts.cumsum(0) - counts, per_sample_weights=corner_weights[c],
                                 mode="sum")  # [U, D]
        token = token_map[rows // M]
        inside = token >= 0
        dest = (token * M + rows % M)[inside]
        grad_value[dest] += summed[inside].to(grad_value.dtype)


def _corner_products(grad: Tensor, rows: Tensor, idx: Tensor, num_bags: int) -> Tensor:
    """<rows[idx[e]], grad[bag of e]> for every corner e of [num_bags] equal bags: [E]. It is
    `embedding_bag`'s gradient for its per-sample weights, called without running the bag sums again."""
    K = idx.numel() // num_bags
    offsets = torch.arange(0, idx.numel(), K, device=idx.device)
    offset2bag = torch.arange(num_bags, device=idx.device).repeat_interleave(K)
    return torch.ops.aten._embedding_bag_per_sample_weights_backward(grad, rows, idx, offsets, offset2bag, 0, -1)


def _chunks(num_queries: int, corners_per_query: int):
    size = max(1, CHUNK_CORNERS // corners_per_query)
    for start in range(0, num_queries, size):
        yield start, min(start + size, num_queries)


class _MSDeformAttn(torch.autograd.Function):
    """Saves the bordered value, locations and weights; the backward recomputes each chunk's corners."""

    @staticmethod
    def forward(ctx, value, sampling_locations, attention_weights, shapes):
        N, S, M, D = value.shape
        _, Lq, _, L, P, _ = sampling_locations.shape
        cdt = torch.float64 if value.dtype == torch.float64 else torch.float32
        rows = _padded(value, shapes)  # [N * Sp * M, D]
        out = value.new_empty(N, Lq, M * D)
        for q0, q1 in _chunks(Lq, N * M * L * P * 4):
            B = N * (q1 - q0) * M
            row00, step, wx, wy, _ = _corners(sampling_locations[:, q0:q1], shapes, N, M, cdt)
            wy = wy * attention_weights[:, q0:q1, ..., None].to(cdt)
            weights = wy[..., :, None] * wx[..., None, :]  # [N, q, M, L, P, 2 (y), 2 (x)]
            idx = row00[..., None] + step  # [N, q, M, L, P, 4]
            sampled = F.embedding_bag(idx.view(B, -1), rows, per_sample_weights=weights.view(B, -1).to(rows.dtype),
                                      mode="sum")
            out[:, q0:q1] = sampled.view(N, q1 - q0, M * D)
        ctx.save_for_backward(rows, sampling_locations, attention_weights)
        ctx.shapes, ctx.value_shape = shapes, value.shape
        return out

    @staticmethod
    def backward(ctx, grad_out):
        rows, sampling_locations, attention_weights = ctx.saved_tensors
        shapes = ctx.shapes
        N, S, M, D = ctx.value_shape
        _, Lq, _, L, P, _ = sampling_locations.shape
        need_value, need_loc, need_attn = ctx.needs_input_grad[:3]
        dtype = rows.dtype
        cdt = torch.float64 if dtype == torch.float64 else torch.float32
        rows = rows.to(cdt)
        grad_value = torch.zeros(N * S * M, D, dtype=cdt, device=rows.device) if need_value else None
        token_map = _token_map(shapes, N, rows.device) if need_value else None
        grad_loc = torch.empty_like(sampling_locations) if need_loc else None
        grad_attn = torch.empty_like(attention_weights) if need_attn else None
        for q0, q1 in _chunks(Lq, N * M * L * P * 4):
            B = N * (q1 - q0) * M
            grad = grad_out[:, q0:q1].reshape(B, D).to(cdt)
            row00, step, wx, wy, scale = _corners(sampling_locations[:, q0:q1], shapes, N, M, cdt)
            attn = attention_weights[:, q0:q1].to(cdt)  # [N, q, M, L, P]
            bilinear = wy[..., :, None] * wx[..., None, :]  # [N, q, M, L, P, 2, 2]
            weights = bilinear * attn[..., None, None]
            if need_loc or need_attn:  # d out / d weight of each corner: <value row, grad>
                d_w = _corner_products(grad, rows, (row00[..., None] + step).view(-1), B).view(bilinear.shape)
                if need_attn:
                    grad_attn[:, q0:q1] = (d_w * bilinear).sum((-1, -2))
                if need_loc:
                    d_fx = ((d_w[..., 1] - d_w[..., 0]) * wy).sum(-1)  # [N, q, M, L, P]
                    d_fy = ((d_w[..., 1, :] - d_w[..., 0, :]) * wx).sum(-1)
                    grad_loc[:, q0:q1] = torch.stack([d_fx, d_fy], -1) * attn[..., None] * scale
            if need_value:
                _scatter_rows(grad_value, token_map, M, row00.view(B, L * P), step.expand(L, P, 4).reshape(L * P, 4),
                              weights.view(B, L * P, 4), grad)
        grad_value = grad_value.view(N, S, M, D).to(dtype) if need_value else None
        return grad_value, grad_loc, grad_attn, None


def ms_deform_attn(value: Tensor, spatial_shapes: Shapes, level_start_index: Optional[Tensor],
                   sampling_locations: Tensor, attention_weights: Tensor) -> Tensor:
    """value [N, S, M, D] (S = sum of H_l * W_l, levels in order), spatial_shapes [L, 2] as (H, W),
    sampling_locations [N, Lq, M, L, P, 2] as (x, y) in [0, 1], attention_weights [N, Lq, M, L, P]
    -> [N, Lq, M * D]. `level_start_index` follows from the shapes; it is accepted for the official
    signature only."""
    shapes = level_shapes(spatial_shapes)
    N, S, M, D = value.shape
    tokens = sum(h * w for h, w in shapes)
    if tokens != S:
        raise ValueError(f"spatial shapes {list(shapes)} hold {tokens} tokens, value has {S}")
    if sampling_locations.shape[:3] != (N, sampling_locations.shape[1], M) or sampling_locations.shape[3] != len(shapes) \
            or sampling_locations.shape[-1] != 2:
        raise ValueError(f"sampling locations {tuple(sampling_locations.shape)} do not match "
                         f"value {tuple(value.shape)} with {len(shapes)} levels")
    if attention_weights.shape != sampling_locations.shape[:-1]:
        raise ValueError(f"attention weights {tuple(attention_weights.shape)} do not match "
                         f"sampling locations {tuple(sampling_locations.shape)}")
    return _MSDeformAttn.apply(value.contiguous(), sampling_locations, attention_weights, shapes)


class MSDeformAttn(nn.Module):
    """Deformable DETR's attention module, official parameter names and initialisation.

    Each query predicts, from its own feature, M*L*P sampling offsets and attention weights (softmaxed
    over the L*P samples of a head) around its reference point, and reads the projected value there.
    `offset_normalizer` divides 2-d references' offsets by (W, H) per level ("wh", Deformable DETR since
    its Dec 2020 fix) or by (H, W) ("hw", TrackFormer's released models: quirk (a) in docs)."""

    def __init__(self, d_model: int = 256, n_levels: int = 4, n_heads: int = 8, n_points: int = 4,
                 offset_normalizer: str = "wh"):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
        if offset_normalizer not in ("wh", "hw"):
            raise ValueError(f"offset_normalizer must be 'wh' or 'hw', got {offset_normalizer!r}")
        self.d_model, self.n_levels, self.n_heads, self.n_points = d_model, n_levels, n_heads, n_points
        self.offset_normalizer = offset_normalizer
        self.sampling_offsets = nn.Linear(d_model, n_heads * n_levels * n_points * 2)
        self.attention_weights = nn.Linear(d_model, n_heads * n_levels * n_points)
        self.value_proj = nn.Linear(d_model, d_model)
        self.output_proj = nn.Linear(d_model, d_model)
        self._reset_parameters()

    def _reset_parameters(self):
        """Offsets start on 8 directions (head h at angle 2*pi*h/M), point p at distance p + 1 in units of
        the larger coordinate; uniform attention; xavier projections."""
        nn.init.constant_(self.sampling_offsets.weight, 0.0)
        thetas = torch.arange(self.n_heads, dtype=torch.float32) * (2.0 * math.pi / self.n_heads)
        grid = torch.stack([thetas.cos(), thetas.sin()], -1)  # [M, 2]
        grid = (grid / grid.abs().max(-1, keepdim=True)[0]).view(self.n_heads, 1, 1, 2)
        grid = grid.repeat(1, self.n_levels, self.n_points, 1)  # [M, L, P, 2]
        grid = grid * torch.arange(1, self.n_points + 1, dtype=torch.float32).view(1, 1, -1, 1)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.view(-1))
        nn.init.constant_(self.attention_weights.weight, 0.0)
        nn.init.constant_(self.attention_weights.bias, 0.0)
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.constant_(self.value_proj.bias, 0.0)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.constant_(self.output_proj.bias, 0.0)

    def forward(self, query: Tensor, reference_points: Tensor, input_flatten: Tensor, input_spatial_shapes: Shapes,
                input_level_start_index: Optional[Tensor] = None,
                input_padding_mask: Optional[Tensor] = None) -> Tensor:
        """query [N, Lq, d]; reference_points [N, Lq, L, 2] (x, y) or [N, Lq, L, 4] (cx, cy, w, h) in [0, 1];
        input_flatten [N, S, d]; input_spatial_shapes [L, 2] (H, W); input_padding_mask [N, S], True on
        padding -> [N, Lq, d]."""
        shapes = level_shapes(input_spatial_shapes)
        N, Lq, _ = query.shape
        S = input_flatten.shape[1]
        M, L, P = self.n_heads, self.n_levels, self.n_points
        if len(shapes) != L:
            raise ValueError(f"{len(shapes)} levels given, the module was built for {L}")
        value = self.value_proj(input_flatten)  # [N, S, d]
        if input_padding_mask is not None:
            value = value.masked_fill(input_padding_mask[..., None], 0.0)
        value = value.view(N, S, M, self.d_model // M)
        offsets = self.sampling_offsets(query).view(N, Lq, M, L, P, 2)
        weights = self.attention_weights(query).view(N, Lq, M, L * P).softmax(-1).view(N, Lq, M, L, P)
        if reference_points.shape[-1] == 2:
            order = [(w, h) for h, w in shapes] if self.offset_normalizer == "wh" else shapes
            normalizer = torch.tensor(order, dtype=offsets.dtype, device=offsets.device)  # [L, 2]
            locations = reference_points[:, :, None, :, None, :] + offsets / normalizer[None, None, None, :, None, :]
        elif reference_points.shape[-1] == 4:
            locations = (reference_points[:, :, None, :, None, :2]
                         + offsets / P * reference_points[:, :, None, :, None, 2:] * 0.5)
        else:
            raise ValueError(f"reference points end in 2 or 4 coordinates, got {reference_points.shape[-1]}")
        return self.output_proj(ms_deform_attn(value, shapes, None, locations, weights))  # [N, Lq, d]
