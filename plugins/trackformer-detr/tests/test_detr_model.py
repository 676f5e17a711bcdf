"""DETR model: the official state-dict layout, strict loading, and the transformer checked against
a plain reference written with torch's nn.MultiheadAttention (as the official code is)."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import trackformer
from trackformer.data.transforms import pad_images
from trackformer_detr.attention import MultiheadAttention
from trackformer_detr.detr import build_detr
from trackformer_detr.position import PositionEmbeddingSine
from trackformer_detr.settings import TransformerStackConfig as Stack
from trackformer_detr.transformer import build_decoder, build_encoder


def read_reference(path):
    rows = [line.rstrip("\n").split("\t") for line in open(path) if not line.startswith("#")]
    return [(k, tuple(int(s) for s in shape.strip("()").split(",") if s.strip())) for k, shape in rows]


@pytest.mark.parametrize("arch", ["r50", "r101"])
def test_official_keys_and_strict_load(arch, shared_dir, tmp_path):
    reference = read_reference(shared_dir / "reference" / f"detr_{arch}_state_dict.txt")
    cfg = trackformer.load_config(f"detr_{arch}_coco")
    model = trackformer.build_model(cfg, data_info={})
    state = model.state_dict()
    assert [(k, tuple(v.shape)) for k, v in state.items()] == reference
    # a checkpoint in the official layout ({"model": state_dict}) loads strictly via model.weights
    torch.manual_seed(1)
    official = {k: torch.randn(shape) for k, shape in reference}
    torch.save({"model": official}, tmp_path / "official.pth")
    cfg = trackformer.load_config(f"detr_{arch}_coco",
                                  [f"model.weights={tmp_path / 'official.pth'}"])
    loaded = trackformer.build_model(cfg, data_info={})
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, official[k]), k
    # and a bare state dict too
    torch.save(official, tmp_path / "bare.pth")
    cfg = trackformer.load_config(f"detr_{arch}_coco",
                                  [f"model.weights={tmp_path / 'bare.pth'}"])
    trackformer.build_model(cfg, data_info={})


# --- a plain reference of DETR's layers on torch's nn.MultiheadAttention --------------------------
class RefEncoderLayer(nn.Module):
    def __init__(self, d, h, ff):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d, h)
        self.linear1, self.linear2 = nn.Linear(d, ff), nn.Linear(ff, d)
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)

    def forward(self, src, mask, pos):
        q = k = src + pos
        src = self.norm1(src + self.self_attn(q, k, src, key_padding_mask=mask)[0])
        return self.norm2(src + self.linear2(F.relu(self.linear1(src))))


class RefDecoderLayer(nn.Module):
    def __init__(self, d, h, ff):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d, h)
        self.multihead_attn = nn.MultiheadAttention(d, h)
        self.linear1, self.linear2 = nn.Linear(d, ff), nn.Linear(ff, d)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)

    def forward(self, tgt, memory, mask, pos, query_pos):
        q = k = tgt + query_pos
        tgt = self.norm1(tgt + self.self_attn(q, k, tgt)[0])
        tgt = self.norm2(tgt + self.multihead_attn(tgt + query_pos, memory + pos, memory,
                                                   key_padding_mask=mask)[0])
        return self.norm3(tgt + self.linear2(F.relu(self.linear1(tgt))))


def test_attention_matches_torch_multihead_attention():
    torch.manual_seed(0)
    ours = MultiheadAttention(32, 4).eval()
    ref = nn.MultiheadAttention(32, 4).eval()
    ref.load_state_dict(ours.state_dict())
    q, kv = torch.randn(5, 2, 32), torch.randn(7, 2, 32)
    mask = torch.zeros(2, 7, dtype=torch.bool)
    mask[1, 4:] = True
    attn_mask = torch.rand(5, 7) > 0.8
    attn_mask[:, 0] = False
    expected, weights = ref(q, kv, kv, key_padding_mask=mask, attn_mask=attn_mask)
    assert torch.allclose(ours(q, kv, kv, key_padding_mask=mask, attn_mask=attn_mask), expected, atol=1e-5)
    ours.need_weights = True
    assert torch.allclose(ours(q, kv, kv, key_padding_mask=mask, attn_mask=attn_mask), expected, atol=1e-5)
    assert torch.allclose(ours.last_weights, weights, atol=1e-6)
    expected_self = ref(q, q, q)[0]
    ours.need_weights = False
    assert torch.allclose(ours(q, q, q), expected_self, atol=1e-5)


def test_attention_dropout_in_training_drops_the_weights():
    """Training, dropout acts on the attention weights (SDPA and the explicit need_weights path)."""
    torch.manual_seed(0)
    attn = MultiheadAttention(16, 2, dropout=0.2).train()
    q, kv = torch.randn(5, 3, 16), torch.randn(9, 3, 16)
    out = attn(q, kv, kv)
    assert out.shape == (5, 3, 16)
    assert not torch.allclose(out, attn.eval()(q, kv, kv), atol=1e-3)  # dropout did act
    attn.need_weights = True  # the explicit path drops the weights too
    assert not torch.allclose(attn.train()(q, kv, kv), attn.eval()(q, kv, kv), atol=1e-3)
    attn.dropout = 0.0  # and without dropout, training computes what evaluation does
    assert torch.allclose(attn.train()(q, kv, kv), attn.eval()(q, kv, kv), atol=1e-6)


def test_transformer_matches_reference_layers():
    torch.manual_seed(0)
    d, h, ff, L = 32, 4, 64, 3
    encoder = build_encoder(Stack(2, h, ff, 0.1), d).eval()
    decoder = build_decoder(Stack(L, h, ff, 0.1), d).eval()
    ref_enc = nn.ModuleList(RefEncoderLayer(d, h, ff) for _ in range(2))
    ref_dec = nn.ModuleList(RefDecoderLayer(d, h, ff) for _ in range(L))
    ref_enc.load_state_dict(encoder.layers.state_dict())  # identical key names
    ref_dec.load_state_dict(decoder.layers.state_dict())
    src, pos = torch.randn(12, 2, d), torch.randn(12, 2, d)
    mask = torch.zeros(2, 12, dtype=torch.bool)
    mask[0, 9:] = True
    query_pos = torch.randn(5, 2, d)
    memory = encoder(src, mask=mask, pos=pos)
    expected = src
    for layer in ref_enc:
        expected = layer(expected, mask, pos)
    assert torch.allclose(memory, expected, atol=1e-5)
    hs = decoder(torch.zeros_like(query_pos), memory, memory_key_padding_mask=mask, pos=pos,
                 query_pos=query_pos)
    assert hs.shape == (L, 2, 5, d)
    out = torch.zeros_like(query_pos)
    for i, layer in enumerate(ref_dec):
        out = layer(out, expected, mask, pos, query_pos)
        assert torch.allclose(hs[i], decoder.norm(out).transpose(0, 1), atol=1e-5)


def test_sine_position_encoding_formula():
    mask = torch.zeros(1, 3, 4, dtype=torch.bool)
    mask[0, :, 3] = True  # last column is padding
    pos = PositionEmbeddingSine(8)(mask)  # [1, 16, 3, 4]
    assert pos.shape == (1, 16, 3, 4)
    y, x, i = 1, 2, 5  # a real pixel; feature 5 of the x half is the cos of pair 2
    x_embed = (x + 1) / (3 + 1e-6) * 2 * math.pi
    y_embed = (y + 1) / (3 + 1e-6) * 2 * math.pi
    freq = 10000 ** (2 * (i // 2) / 8)
    assert pos[0, 8 + i, y, x].item() == pytest.approx(math.cos(x_embed / freq), abs=1e-5)
    assert pos[0, 4, y, x].item() == pytest.approx(math.sin(y_embed / 10000 ** (4 / 8)), abs=1e-5)


def tiny_detr(num_classes=3, queries=7):
    from trackformer.models.backbones import build_resnet

    torch.manual_seed(0)
    return build_detr(build_resnet("resnet18"), build_encoder(Stack(1, 4, 128), 64),
                      build_decoder(Stack(2, 4, 128), 64), num_classes, queries).eval()


def test_list_input_equals_padded_batch_and_shapes():
    model = tiny_detr()
    images = [torch.randn(3, 96, 128), torch.randn(3, 80, 64)]
    out = model(images)
    assert out["pred_logits"].shape == (2, 7, 4) and out["pred_boxes"].shape == (2, 7, 4)
    assert len(out["aux_outputs"]) == 1 and out["hs_embed"].shape == (2, 7, 64)
    batch, mask = pad_images(images)
    assert mask[1, 80:].all() and not mask[1, :80, :64].any()
    again = model({"images": batch, "mask": mask})
    assert torch.allclose(out["pred_boxes"], again["pred_boxes"])
    assert ((out["pred_boxes"] >= 0) & (out["pred_boxes"] <= 1)).all()
    # predict: boxes in original pixels, every query kept
    results = model.predict(images)
    assert results[1]["boxes"].shape == (7, 4) and results[1]["boxes"][:, 2].max() <= 64 + 1e-4
