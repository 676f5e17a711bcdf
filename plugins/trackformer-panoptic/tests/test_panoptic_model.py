"""DETR panoptic: the official key layout and strict loading, the attention map (shapes, one softmax
over heads and positions, padding), the mask head's shapes and parameter count."""
import pytest
import torch

import trackformer
from trackformer_panoptic.attention_map import MHAttentionMap
from trackformer_panoptic.mask_head import MaskHeadSmallConv


def read_reference(path):
    rows = [line.rstrip("\n").split("\t") for line in open(path) if not line.startswith("#")]
    return [(k, tuple(int(s) for s in shape.strip("()").split(",") if s.strip())) for k, shape in rows]


def test_official_layout_and_strict_load(shared_dir, tmp_path):
    reference = read_reference(shared_dir / "reference" / "detr_r50_panoptic_state_dict.txt")
    assert len(reference) == 490
    model = trackformer.build_model(trackformer.load_config("detr_r50_panoptic_coco"), data_info={})
    assert [(k, tuple(v.shape)) for k, v in model.state_dict().items()] == reference
    head = sum(p.numel() for n, p in model.named_parameters() if n.startswith("mask_head."))
    attention = sum(p.numel() for n, p in model.named_parameters() if n.startswith("bbox_attention."))
    assert (attention, head) == (131_584, 1_202_073)
    torch.manual_seed(3)
    official = {k: torch.randn(shape) for k, shape in reference}  # every parameter re-randomised
    torch.save({"model": official}, tmp_path / "panoptic.pth")
    cfg = trackformer.load_config("detr_r50_panoptic_coco", [f"model.weights={tmp_path / 'panoptic.pth'}"])
    loaded = trackformer.build_model(cfg, data_info={})
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, official[k]), k
    del official["mask_head.adapter3.bias"]
    torch.save({"model": official}, tmp_path / "short.pth")
    cfg = trackformer.load_config("detr_r50_panoptic_coco", [f"model.weights={tmp_path / 'short.pth'}"])
    with pytest.raises(Exception, match="adapter3"):
        trackformer.build_model(cfg, data_info={})


def test_attention_map_is_one_softmax_over_heads_and_positions():
    torch.manual_seed(0)
    att = MHAttentionMap(16, 16, num_heads=4)
    q, k = torch.randn(2, 5, 16), torch.randn(2, 16, 3, 4)
    mask = torch.zeros(2, 3, 4, dtype=torch.bool)
    mask[1, :, 3:] = True  # the second image is padded on the right
    w = att(q, k, mask)
    assert w.shape == (2, 5, 4, 3, 4)
    assert torch.allclose(w.sum((2, 3, 4)), torch.ones(2, 5))
    assert not torch.allclose(w.sum((3, 4)), torch.full((2, 5, 4), 0.25))  # not normalised per head
    assert (w[1, :, :, :, 3] == 0).all()
    # brute force: scores by hand, one softmax over the 4·3·4 entries
    qh = att.q_linear(q).view(2, 5, 4, 4)
    kh = (torch.einsum("dc,bchw->bdhw", att.k_linear.weight, k) + att.k_linear.bias[:, None, None]).view(2, 4, 4, 3, 4)
    scores = torch.einsum("bqnc,bnchw->bqnhw", qh, kh) / 2.0  # sqrt(16 / 4)
    scores[1, :, :, :, 3] = float("-inf")
    assert torch.allclose(w, scores.flatten(2).softmax(-1).view_as(w), atol=1e-6)


def test_mask_head_shapes():
    torch.manual_seed(0)
    head = MaskHeadSmallConv(24, [40, 32, 16], dims=[16, 16, 8, 8])
    B, Q = 2, 3
    src = torch.randn(B, 16, 2, 3)
    bbox_mask = torch.rand(B, Q, 8, 2, 3)
    fpns = [torch.randn(B, 40, 4, 6), torch.randn(B, 32, 8, 12), torch.randn(B, 16, 16, 24)]
    out = head(src, bbox_mask, fpns)
    assert out.shape == (B * Q, 1, 16, 24)
    # query-major within each image: query 1 of image 0 depends only on image 0
    other = head(src, bbox_mask.clone().index_fill_(0, torch.tensor([1]), 0.0), fpns)
    assert torch.equal(out[:Q], other[:Q]) and not torch.equal(out[Q:], other[Q:])
