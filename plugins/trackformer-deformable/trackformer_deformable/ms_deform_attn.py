"""Multi-scale deformable attention (Zhu et al. 2021) in pure PyTorch: CPU and CUDA, any float dtype,
forward and backward, nothing to compile.

Each query reads, per head m, level l and point p, one bilinear sample of that level's value map at
`sampling_locations` (x, y in [0, 1] of the padded map) and sums them weighted by `attention_weights`.
The sample is the official CUDA kernel's and `grid_sample(align_corners=False, padding_mode="zeros")`'s
at `2 * loc - 1`: pixel coordinate `loc * size - 0.5`, corners outside the map read zero.

The official pure-PyTorch reference calls `grid_sample` once per level, stacks the samples of all
levels into [N*M, D, Lq, L*P], weights and sums them, and autograd keeps the samples for the
backward. Here the value [N, S, M, D] is read in place as rows [N*S*M, D]: each corner's row is
clamped into its level and a corner outside the map gets a zero bilinear weight (it reads zero, as
`grid_sample`'s zero padding); the attention weight is folded into the four bilinear weights; each
(query, head) becomes one bag of L*P*4 rows, and `F.embedding_bag(mode="sum", per_sample_weights=...)`
gathers and reduces them in one fused call, never materialising the samples. A custom autograd
function keeps only the value, the locations and the weights, and recomputes the corners chunk by
chunk of queries in the backward: the corner products <value row, grad> come from `embedding_bag`'s
per-sample-weight gradient op, the value's gradient from a second `embedding_bag` over the output
gradient with the corners sorted by position (its transpose; faster than `embedding_bag`'s own
backward or `index_add_` per corner on CPU), added to the value rows with `index_add_`.
Coordinates and bilinear weights are computed in float32 (float64 for float64 inputs) whatever the
value's dtype; float16/bfloat16 gradients are accumulated in float32.
Measured (bench/bench_deformable_attention.py, 2 threads): see docs/deformable.md.
"""
import math
from itertools import accumulate
from typing import NamedTuple, Optional, Sequence, Tuple, Union

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


class Corners(NamedTuple):
    """Bilinear corners of one chunk of samples, flat: bag b = (image, query, head), sample j = (level,
    point); corner c = (x0, y0), (x0 + 1, y0), (x0, y0 + 1), (x0 + 1, y0 + 1)."""
    rows: Tensor  # [B, 4, L*P] int64 rows of the value [N*S*M, D], clamped into the level
    bilinear: Tensor  # [B, 4, L*P] bilinear weights; 0 for a corner outside the map (it reads zero)
    # for the backward only:
    w0: Optional[Tensor]  # [2 (x, y), B, L*P] weights of column x0 / row y0 (0 outside the map)
    w1: Optional[Tensor]  # [2 (x, y), B, L*P] weights of column x0 + 1 / row y0 + 1
    inside: Optional[Tensor]  # [B, 4, L*P] 1 where the corner lies in the map, else 0
    scale: Optional[Tensor]  # [2, B, L*P] d pixel / d loc (x, y): the size, 0 beyond -1 or size (all corners read 0)
    key: Optional[Tensor]  # [B, L*P] int64 position of corner (x0, y0) on the levels' grids with a border
    key_step: Optional[Tensor]  # [4, L*P] key offsets of the four corners on that grid


def _corners(loc: Tensor, shapes, N: int, M: int, cdt: torch.dtype, for_backward: bool = False) -> Corners:
    """The corners of loc [N, q, M, L, P, 2] (x, y in [0, 1]) at pixel `loc * size - 0.5`; the forward
    needs only `rows` and `bilinear` (the other fields are None unless `for_backward`).

    Everything is computed on [B, L*P] arrays against per-sample constants [L*P], so each elementwise
    op runs over contiguous rows (a trailing dimension of 2 would make them scalar loops)."""
    device = loc.device
    _, q, _, L, P, _ = loc.shape
    B, LP = N * q * M, L * P

    def per_sample(values) -> Tensor:  # one int per level -> [L*P]
        return torch.tensor(list(values), dtype=torch.long, device=device).repeat_interleave(P)

    areas = [h * w for h, w in shapes]
    width = per_sample(w for _, w in shapes)
    size_i = torch.stack([width, per_sample(h for h, _ in shapes)])[:, None]  # [2, 1, LP] (W, H)
    size = size_i.to(cdt)
    pix = loc.reshape(B, LP, 2).to(cdt).permute(2, 0, 1) * size - 0.5  # [2, B, LP] (x, y)
    scale = size * ((pix > -1) & (pix < size)) if for_backward else None
    pix = torch.minimum(pix.clamp_(min=-1), size)  # beyond [-1, size] every corner is outside the map
    corner0 = pix.floor()
    frac = pix.sub_(corner0)
    c0 = corner0.long()  # [2, B, LP] in [-1, size]
    in0 = ((c0 >= 0) & (c0 < size_i)).to(cdt)
    in1 = (c0 < size_i - 1).to(cdt)  # c0 + 1 < size
    w0, w1 = (1 - frac) * in0, frac * in1  # [2, B, LP]
    bag = torch.arange(B, device=device)
    image, head = (bag // (q * M))[:, None], (bag % M)[:, None]  # [B, 1]
    key = key_step = inside = None
    if for_backward:
        # the sort key of the value gradient: positions on each level's grid with a border of 1 before
        # and 2 after (corner x0 + 1 of x0 = size), so distinct corners have distinct keys
        bw = width + 3
        grids = [(h + 3) * (w + 3) for h, w in shapes]
        position = (c0[1] + 1) * bw + (c0[0] + 1) + per_sample(accumulate([0] + grids[:-1]))  # [B, LP]
        key = position * M + (image * sum(grids) * M + head)
        key_step = torch.stack([torch.zeros_like(bw), torch.ones_like(bw), bw, bw + 1]) * M  # [4, LP]
        inside = _per_corner(in0, in1)  # [B, 4, LP]
    c1 = torch.minimum(c0 + 1, size_i - 1)
    c0 = torch.minimum(c0.clamp_(min=0), size_i - 1)
    lines0, lines1 = c0[1] * width, c1[1] * width  # [B, LP]
    rows = torch.stack([lines0 + c0[0], lines0 + c1[0], lines1 + c0[0], lines1 + c1[0]], 1)  # [B, 4, LP] in-level
    rows += per_sample(accumulate([0] + areas[:-1])) + image[:, None] * sum(areas)
    rows = rows.mul_(M).add_(head[:, None])  # rows of the value [N*S*M, D]
    bilinear = _per_corner(w0, w1)  # [B, 4, LP]
    if not for_backward:
        return Corners(rows, bilinear, None, None, None, None, None, None)
    return Corners(rows, bilinear, w0, w1, inside, scale, key, key_step)


def _per_corner(a0: Tensor, a1: Tensor) -> Tensor:
    """Column and row factors [2 (x, y), B, L*P] of sides 0 and 1 -> their products [B, 4, L*P] at the
    corners (x0, y0), (x0 + 1, y0), (x0, y0 + 1), (x0 + 1, y0 + 1)."""
    return torch.stack([a0[1] * a0[0], a0[1] * a1[0], a1[1] * a0[0], a1[1] * a1[0]], 1)


def _scatter_rows(grad_value: Tensor, c: Corners, weights: Tensor, grad: Tensor):
    """grad_value[row] += weight * grad[bag] for every corner: the transpose of the forward's bags.

    The corners are sorted once by `c.key` (corner (x0, y0)'s position on a grid with a border: the
    other corners' keys are it plus a per-level step, so the same order sorts all four); for each
    corner the runs of equal keys make the bags of one `embedding_bag` over `grad`, and each bag's sum
    is added to the value row of its corner (a corner outside the map has weight 0: it adds zero to
    the clamped row). grad_value [N * S * M, D]; weights [B, 4, L*P]; grad [B, D].
    """
    LP = c.key.shape[1]
    keys = c.key.view(-1)
    order = torch.argsort(keys)
    bag = order // LP
    sample = order % LP
    keys = keys[order]
    for k in range(4):
        _, counts = torch.unique_consecutive(keys + c.key_step[k][sample], return_counts=True)
        first = counts.cumsum(0) - counts
        summed = F.embedding_bag(bag, grad, first, per_sample_weights=weights[:, k].reshape(-1)[order],
                                 mode="sum")  # [U, D]
        grad_value.index_add_(0, c.rows[:, k].reshape(-1)[order[first]], summed.to(grad_value.dtype))


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
    """Saves the value, locations and weights; the backward recomputes each chunk's corners."""

    @staticmethod
    def forward(ctx, value, sampling_locations, attention_weights, shapes):
        N, S, M, D = value.shape
        _, Lq, _, L, P, _ = sampling_locations.shape
        cdt = torch.float64 if value.dtype == torch.float64 else torch.float32
        rows = value.view(-1, D)  # [N * S * M, D]
        out = value.new_empty(N, Lq, M * D)
        for q0, q1 in _chunks(Lq, N * M * L * P * 4):
            B = N * (q1 - q0) * M
            c = _corners(sampling_locations[:, q0:q1], shapes, N, M, cdt)
            weights = c.bilinear * attention_weights[:, q0:q1].reshape(B, 1, L * P).to(cdt)  # [B, 4, L*P]
            sampled = F.embedding_bag(c.rows.view(B, -1), rows, per_sample_weights=weights.view(B, -1).to(rows.dtype),
                                      mode="sum")  # [B, D]
            out[:, q0:q1] = sampled.view(N, q1 - q0, M * D)
        ctx.save_for_backward(value, sampling_locations, attention_weights)
        ctx.shapes = shapes
        return out

    @staticmethod
    def backward(ctx, grad_out):
        value, sampling_locations, attention_weights = ctx.saved_tensors
        shapes = ctx.shapes
        N, S, M, D = value.shape
        _, Lq, _, L, P, _ = sampling_locations.shape
        need_value, need_loc, need_attn = ctx.needs_input_grad[:3]
        dtype = value.dtype
        cdt = torch.float64 if dtype == torch.float64 else torch.float32
        rows = value.view(-1, D).to(cdt)
        grad_value = torch.zeros(N * S * M, D, dtype=cdt, device=rows.device) if need_value else None
        grad_loc = torch.empty_like(sampling_locations) if need_loc else None
        grad_attn = torch.empty_like(attention_weights) if need_attn else None
        for q0, q1 in _chunks(Lq, N * M * L * P * 4):
            B = N * (q1 - q0) * M
            grad = grad_out[:, q0:q1].reshape(B, D).to(cdt)
            c = _corners(sampling_locations[:, q0:q1], shapes, N, M, cdt, for_backward=True)
            attn = attention_weights[:, q0:q1].reshape(B, 1, L * P).to(cdt)
            weights = c.bilinear * attn  # [B, 4, L*P]
            if need_loc or need_attn:  # d out / d weight of each corner: <value row, grad>, 0 outside the map
                d_w = _corner_products(grad, rows, c.rows.view(-1), B).view(B, 4, L * P) * c.inside
                if need_attn:
                    grad_attn[:, q0:q1] = (d_w * c.bilinear).sum(1).view(grad_attn[:, q0:q1].shape)
                if need_loc:
                    d_x = c.w0[1] * (d_w[:, 1] - d_w[:, 0]) + c.w1[1] * (d_w[:, 3] - d_w[:, 2])  # [B, L*P]
                    d_y = c.w0[0] * (d_w[:, 2] - d_w[:, 0]) + c.w1[0] * (d_w[:, 3] - d_w[:, 1])
                    d_loc = torch.stack([d_x, d_y], -1) * (attn[:, 0, :, None] * c.scale.permute(1, 2, 0))
                    grad_loc[:, q0:q1] = d_loc.view(grad_loc[:, q0:q1].shape)
            if need_value:
                _scatter_rows(grad_value, c, weights, grad)
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
