"""Multi-scale deformable attention against the official formula, a naive bilinear loop, gradcheck,
Hugging Face's pure-PyTorch function, in every dtype, chunked or not; `MSDeformAttn`'s official
layout and initialisation, and its forward written out with the official function (2-d references
under both offset normalisers, 4-d references, padding)."""
import math

import pytest
import torch
import torch.nn.functional as F

import trackformer_deformable.ms_deform_attn as msda
from trackformer_deformable.ms_deform_attn import MSDeformAttn, ms_deform_attn

SHAPES = [(6, 9), (3, 5), (2, 2), (1, 1)]
MODULE_SHAPES = [(5, 7), (3, 4)]


def official(value, shapes, loc, attn):
    """`ms_deform_attn_core_pytorch` of Deformable DETR (models/ops/functions/ms_deform_attn_func.py),
    re-typed: grid_sample per level at 2 * loc - 1, stack, weight, sum."""
    N, S, M, D = value.shape
    _, Lq, _, L, P, _ = loc.shape
    levels = value.split([h * w for h, w in shapes], dim=1)
    grids = 2 * loc - 1
    samples = []
    for lid, (h, w) in enumerate(shapes):
        v = levels[lid].flatten(2).transpose(1, 2).reshape(N * M, D, h, w)
        g = grids[:, :, :, lid].transpose(1, 2).flatten(0, 1)
        samples.append(F.grid_sample(v, g, mode="bilinear", padding_mode="zeros", align_corners=False))
    a = attn.transpose(1, 2).reshape(N * M, 1, Lq, L * P)
    out = (torch.stack(samples, dim=-2).flatten(-2) * a).sum(-1).view(N, M * D, Lq)
    return out.transpose(1, 2).contiguous()


def naive(value, shapes, loc, attn):
    """Per-point bilinear interpolation with explicit zero padding, in Python loops."""
    N, S, M, D = value.shape
    _, Lq, _, L, P, _ = loc.shape
    out = torch.zeros(N, Lq, M, D, dtype=value.dtype)
    starts = [sum(h * w for h, w in shapes[:lid]) for lid in range(L)]
    for n in range(N):
        for q in range(Lq):
            for m in range(M):
                for lid, (h, w) in enumerate(shapes):
                    for p in range(P):
                        x = loc[n, q, m, lid, p, 0].item() * w - 0.5
                        y = loc[n, q, m, lid, p, 1].item() * h - 0.5
                        x0, y0 = math.floor(x), math.floor(y)
                        for xi, yi in ((x0, y0), (x0 + 1, y0), (x0, y0 + 1), (x0 + 1, y0 + 1)):
                            if 0 <= xi < w and 0 <= yi < h:
                                weight = (1 - abs(x - xi)) * (1 - abs(y - yi)) * attn[n, q, m, lid, p]
                                out[n, q, m] += weight * value[n, starts[lid] + yi * w + xi, m]
    return out.view(N, Lq, M * D)


def random_inputs(dtype=torch.float64, N=2, Lq=7, M=3, D=5, P=3, shapes=SHAPES, seed=0):
    """Locations in [-0.3, 1.3] (some off the map); the last level-0 rows of the last image are zeroed like padding."""
    g = torch.Generator().manual_seed(seed)
    S = sum(h * w for h, w in shapes)
    value = torch.randn(N, S, M, D, generator=g, dtype=dtype)
    value[-1, shapes[0][1] * (shapes[0][0] - 2):shapes[0][0] * shapes[0][1]] = 0
    loc = torch.rand(N, Lq, M, len(shapes), P, 2, generator=g, dtype=dtype) * 1.6 - 0.3
    attn = torch.rand(N, Lq, M, len(shapes), P, generator=g, dtype=dtype).softmax(-1)
    return value, loc, attn


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_equals_official_formula_with_gradients(dtype, tol):
    value, loc, attn = (t.requires_grad_() for t in random_inputs(dtype, Lq=40))
    ours, ref = ms_deform_attn(value, SHAPES, None, loc, attn), official(value, SHAPES, loc, attn)
    assert (ours - ref).abs().max() <= tol
    grad = torch.randn_like(ours)
    for a, b in zip(torch.autograd.grad(ours, (value, loc, attn), grad),
                    torch.autograd.grad(ref, (value, loc, attn), grad)):
        # location gradients scale with the map size (d pixel / d loc)
        assert (a - b).abs().max() <= tol * 20 * max(1.0, b.abs().max().item())


def test_far_and_on_the_edge_locations_equal_the_official_formula():
    """Corners clamped into a level read zero outside it: locations far off the map (every corner out),
    within a pixel of its edges (some corners out) and on pixel centres and edges exactly."""
    value, loc, attn = (t.requires_grad_() for t in random_inputs(torch.float64, Lq=40))
    g = torch.Generator().manual_seed(1)
    size = torch.tensor([[w, h] for h, w in SHAPES], dtype=torch.float64)[:, None]  # [L, 1, 2] (W, H)
    pixel = torch.randint(-3, 12, loc.shape, generator=g).double() * 0.5  # on centres and edges, some far out
    with torch.no_grad():
        loc.copy_(torch.where(torch.rand(loc.shape, generator=g) < 0.5, (pixel + 0.5) / size, loc * 8 - 3.5))
    ours, ref = ms_deform_attn(value, SHAPES, None, loc, attn), official(value, SHAPES, loc, attn)
    assert (ours - ref).abs().max() <= 1e-12
    grad = torch.randn_like(ours)
    for a, b in zip(torch.autograd.grad(ours, (value, attn), grad), torch.autograd.grad(ref, (value, attn), grad)):
        assert (a - b).abs().max() <= 1e-12


def test_equals_naive_bilinear_loop_in_float64():
    value, loc, attn = random_inputs(torch.float64, N=1, Lq=4, M=2, D=3, P=2)
    assert torch.allclose(ms_deform_attn(value, SHAPES, None, loc, attn), naive(value, SHAPES, loc, attn),
                          rtol=0, atol=1e-13)


def test_gradcheck_values_locations_weights():
    value, loc, attn = random_inputs(torch.float64, N=1, Lq=3, M=2, D=2, P=2, shapes=[(3, 4), (2, 2)])
    # keep locations off pixel-centre grid lines, where bilinear sampling has a kink
    loc = loc.clamp(-0.2, 1.2)
    inputs = tuple(t.requires_grad_() for t in (value, loc, attn))
    assert torch.autograd.gradcheck(lambda v, l, a: ms_deform_attn(v, [(3, 4), (2, 2)], None, l, a), inputs)


def test_chunked_equals_one_chunk(monkeypatch):
    value, loc, attn = (t.requires_grad_() for t in random_inputs(torch.float64, Lq=50))
    whole = ms_deform_attn(value, SHAPES, None, loc, attn)
    grads = torch.autograd.grad(whole.square().sum(), (value, loc, attn))
    monkeypatch.setattr(msda, "CHUNK_CORNERS", 7 * 2 * 3 * 4 * 3 * 4)  # 7 queries a chunk: 8 chunks, uneven
    chunked = ms_deform_attn(value, SHAPES, None, loc, attn)
    assert torch.equal(whole, chunked)
    for a, b in zip(grads, torch.autograd.grad(chunked.square().sum(), (value, loc, attn))):
        assert torch.allclose(a, b, rtol=0, atol=1e-12)


def test_only_requested_gradients_and_tensor_shapes():
    value, loc, attn = random_inputs(torch.float32)
    loc.requires_grad_()
    out = ms_deform_attn(value, torch.tensor(SHAPES), torch.tensor([0, 54, 69, 73]), loc, attn)
    out.sum().backward()
    assert value.grad is None and attn.grad is None and loc.grad.shape == loc.shape


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precisions_run_forward_and_backward(dtype):
    value, loc, attn = random_inputs(torch.float32, Lq=30)
    ref = official(value, SHAPES, loc, attn)
    low = [t.to(dtype).requires_grad_() for t in (value, loc, attn)]
    out = ms_deform_attn(low[0], SHAPES, None, *low[1:])
    assert out.dtype == dtype
    assert (out.float() - ref).abs().max() <= 0.05
    out.float().sum().backward()
    assert all(t.grad.dtype == dtype and torch.isfinite(t.grad.float()).all() for t in low)
    f32 = [t.detach().requires_grad_() for t in (value, loc, attn)]
    official(*f32[:1], SHAPES, *f32[1:]).sum().backward()
    assert (low[0].grad.float() - f32[0].grad).abs().max() <= 0.05


def test_equals_hugging_face_pure_pytorch_function():
    modeling = pytest.importorskip("transformers.models.deformable_detr.modeling_deformable_detr")
    value, loc, attn = random_inputs(torch.float64, Lq=20)
    shapes = torch.tensor(SHAPES)
    start = torch.cat([shapes.new_zeros(1), shapes.prod(1).cumsum(0)[:-1]])
    hf = modeling.MultiScaleDeformableAttention()(value, shapes, SHAPES, start, loc, attn, 64)
    assert torch.allclose(ms_deform_attn(value, SHAPES, start, loc, attn), hf, rtol=0, atol=1e-12)


def test_shape_errors_name_the_mismatch():
    value, loc, attn = random_inputs(torch.float32)
    with pytest.raises(ValueError, match=r"^spatial shapes \[\(6, 9\), \(3, 5\)\] hold 69 tokens, value has 74$"):
        ms_deform_attn(value, SHAPES[:2], None, loc, attn)
    with pytest.raises(ValueError, match=r"^attention weights \(2, 7, 3, 4, 2\) do not match sampling locations "
                                         r"\(2, 7, 3, 4, 3, 2\)$"):
        ms_deform_attn(value, SHAPES, None, loc, attn[..., :2])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_equals_cpu():
    value, loc, attn = (t.requires_grad_() for t in random_inputs(torch.float64, Lq=30))
    cpu = ms_deform_attn(value, SHAPES, None, loc, attn)
    grads = torch.autograd.grad(cpu.sum(), (value, loc, attn))
    dev = [t.detach().cuda().requires_grad_() for t in (value, loc, attn)]
    gpu = ms_deform_attn(dev[0], SHAPES, None, *dev[1:])
    assert torch.allclose(gpu.cpu(), cpu, atol=1e-12)
    for a, b in zip(grads, torch.autograd.grad(gpu.sum(), dev)):
        assert torch.allclose(a, b.cpu(), atol=1e-10)


def test_parameter_names_shapes_and_official_init():
    attn = MSDeformAttn(d_model=288, n_levels=8, n_heads=8, n_points=4)
    shapes = {k: tuple(v.shape) for k, v in attn.state_dict().items()}
    assert shapes == {"sampling_offsets.weight": (512, 288), "sampling_offsets.bias": (512,),
                      "attention_weights.weight": (256, 288), "attention_weights.bias": (256,),
                      "value_proj.weight": (288, 288), "value_proj.bias": (288,),
                      "output_proj.weight": (288, 288), "output_proj.bias": (288,)}
    bias = attn.sampling_offsets.bias.view(8, 8, 4, 2)  # [M, L, P, (x, y)]
    # head 0 looks right (1, 0), head 1 diagonally (1, 1), head 2 down (0, 1), ... point p at distance p + 1
    assert torch.allclose(bias[0, 3, :, 0], torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert torch.allclose(bias[1, 0, 1], torch.tensor([2.0, 2.0]))
    assert torch.allclose(bias[2, 5, 0], torch.tensor([0.0, 1.0]), atol=1e-6)
    assert torch.allclose(bias[5, 0, 0], torch.tensor([-1.0, -1.0]))
    assert not attn.sampling_offsets.weight.any() and not attn.attention_weights.weight.any()
    assert not attn.attention_weights.bias.any() and not attn.value_proj.bias.any()
    assert not attn.output_proj.bias.any() and attn.value_proj.weight.std() > 0


def randomised(module, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.3)
    return module


def by_hand(module, query, ref, memory, mask, normalizer):
    """The official MSDeformAttn.forward, step by step, with the official core function."""
    N, Lq, d = query.shape
    M, L, P = module.n_heads, module.n_levels, module.n_points
    value = module.value_proj(memory).masked_fill(mask[..., None], 0.0).view(N, -1, M, d // M)
    off = module.sampling_offsets(query).view(N, Lq, M, L, P, 2)
    w = module.attention_weights(query).view(N, Lq, M, L * P).softmax(-1).view(N, Lq, M, L, P)
    if ref.shape[-1] == 2:
        loc = ref[:, :, None, :, None, :] + off / normalizer[None, None, None, :, None, :]
    else:
        loc = ref[:, :, None, :, None, :2] + off / P * ref[:, :, None, :, None, 2:] * 0.5
    return module.output_proj(official(value, MODULE_SHAPES, loc, w))


@pytest.mark.parametrize("refs,normalizer", [(2, "wh"), (2, "hw"), (4, "wh")])
def test_forward_equals_official_steps(refs, normalizer):
    torch.manual_seed(0)
    module = randomised(MSDeformAttn(d_model=12, n_levels=2, n_heads=3, n_points=2,
                                     offset_normalizer=normalizer)).double()
    S = sum(h * w for h, w in MODULE_SHAPES)
    query, memory = torch.randn(2, 6, 12, dtype=torch.float64), torch.randn(2, S, 12, dtype=torch.float64)
    ref = torch.rand(2, 6, 2, refs, dtype=torch.float64)
    mask = torch.zeros(2, S, dtype=torch.bool)
    mask[1, 28:35] = True  # the last row of level 0 is padding in image 1
    sizes = torch.tensor(MODULE_SHAPES, dtype=torch.float64)  # (H, W)
    norm = sizes.flip(-1) if normalizer == "wh" else sizes
    out = module(query, ref, memory, torch.tensor(MODULE_SHAPES), None, mask)
    assert torch.allclose(out, by_hand(module, query, ref, memory, mask, norm), rtol=0, atol=1e-12)
    if refs == 2:  # the two normalisers differ on non-square maps
        other = by_hand(module, query, ref, memory, mask, norm.flip(-1))
        assert (out - other).abs().max() > 1e-3


def test_constructor_and_reference_errors():
    with pytest.raises(ValueError, match=r"^d_model 10 is not divisible by n_heads 3$"):
        MSDeformAttn(d_model=10, n_heads=3)
    with pytest.raises(ValueError, match=r"^offset_normalizer must be 'wh' or 'hw', got 'xy'$"):
        MSDeformAttn(offset_normalizer="xy")
    module = MSDeformAttn(d_model=12, n_levels=2, n_heads=3, n_points=2)
    memory = torch.randn(1, 47, 12)
    with pytest.raises(ValueError, match=r"^reference points end in 2 or 4 coordinates, got 3$"):
        module(torch.randn(1, 4, 12), torch.rand(1, 4, 2, 3), memory, MODULE_SHAPES)
    with pytest.raises(ValueError, match=r"^1 levels given, the module was built for 2$"):
        module(torch.randn(1, 4, 12), torch.rand(1, 4, 1, 2), torch.randn(1, 35, 12), MODULE_SHAPES[:1])
