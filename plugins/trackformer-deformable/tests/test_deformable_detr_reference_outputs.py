"""Deformable DETR gives the outputs of Hugging Face's `DeformableDetrForObjectDetection` (an independent
code base, checked by its authors against the official checkpoints) for the same weights, renamed from
the official layout to HF's. Every parameter is re-randomised (the official init zeroes sampling-offset
weights, attention weights and the last box layers, which would leave whole paths untested), and one
image of the batch is padded so valid ratios and masks count. Compared in float64. Both models see the same backbone
features: HF's own small ResNet's, read from its backbone."""
import re

import pytest
import torch

from trackformer_deformable.deformable_detr import build_deformable_detr

pytest.importorskip("transformers")
D, LAYERS, QUERIES, CLASSES = 64, 2, 20, 7

_RENAMES = [
    (r"^transformer\.level_embed$", "model.level_embed"),
    (r"^input_proj\.", "model.input_proj."),
    (r"^query_embed\.", "model.query_position_embeddings."),
    (r"^transformer\.(reference_points|enc_output|enc_output_norm|pos_trans|pos_trans_norm)\.", r"model.\1."),
    (r"^transformer\.decoder\.(bbox_embed|class_embed)\.", r"model.decoder.\1."),
    (r"^transformer\.encoder\.layers\.(\d+)\.norm1\.", r"model.encoder.layers.\1.self_attn_layer_norm."),
    (r"^transformer\.encoder\.layers\.(\d+)\.norm2\.", r"model.encoder.layers.\1.final_layer_norm."),
    (r"^transformer\.(en|de)coder\.layers\.(\d+)\.linear(\d)\.", r"model.\1coder.layers.\2.mlp.fc\3."),
    (r"^transformer\.encoder\.layers\.(\d+)\.self_attn\.", r"model.encoder.layers.\1.self_attn."),
    (r"^transformer\.decoder\.layers\.(\d+)\.cross_attn\.", r"model.decoder.layers.\1.encoder_attn."),
    (r"^transformer\.decoder\.layers\.(\d+)\.norm1\.", r"model.decoder.layers.\1.encoder_attn_layer_norm."),
    (r"^transformer\.decoder\.layers\.(\d+)\.norm2\.", r"model.decoder.layers.\1.self_attn_layer_norm."),
    (r"^transformer\.decoder\.layers\.(\d+)\.norm3\.", r"model.decoder.layers.\1.final_layer_norm."),
    (r"^transformer\.decoder\.layers\.(\d+)\.self_attn\.out_proj\.", r"model.decoder.layers.\1.self_attn.o_proj."),
]


def from_hf(ours_key, hf_state):
    """Our (official) key -> its tensor in HF's state dict (in_proj: the q, k, v projections stacked)."""
    m = re.match(r"^transformer\.decoder\.layers\.(\d+)\.self_attn\.in_proj_(weight|bias)$", ours_key)
    if m:
        prefix = f"model.decoder.layers.{m[1]}.self_attn."
        return torch.cat([hf_state[f"{prefix}{p}_proj.{m[2]}"] for p in "qkv"])
    key = ours_key
    for pattern, repl in _RENAMES:
        key = re.sub(pattern, repl, key)
    return hf_state[key]


def hf_model(with_box_refine, two_stage):
    from transformers import DeformableDetrConfig, DeformableDetrForObjectDetection, ResNetConfig

    backbone = ResNetConfig(embedding_size=16, hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1],
                            layer_type="basic", out_features=["stage2", "stage3", "stage4"])
    cfg = DeformableDetrConfig(backbone_config=backbone, backbone=None, use_pretrained_backbone=False,
                               use_timm_backbone=False, d_model=D, encoder_layers=LAYERS, decoder_layers=LAYERS,
                               encoder_attention_heads=8, decoder_attention_heads=8, encoder_ffn_dim=96,
                               decoder_ffn_dim=96, num_queries=QUERIES, two_stage_num_proposals=QUERIES,
                               num_labels=CLASSES, with_box_refine=with_box_refine, two_stage=two_stage,
                               dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, auxiliary_loss=True)
    model = DeformableDetrForObjectDetection(cfg).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.5 if p.dim() > 1 else 0.2)
                    + (1.0 if name.endswith("norm.weight") or "layer_norm.weight" in name else 0.0))
        for name, b in model.named_buffers():
            if b.is_floating_point():  # frozen BatchNorm statistics
                b.copy_(torch.rand(b.shape, generator=g) + 0.5 if "var" in name else torch.randn(b.shape, generator=g))
    return model


@pytest.mark.parametrize("with_box_refine,two_stage", [(False, False), (True, False), (True, True)])
def test_outputs_equal_hugging_face(with_box_refine, two_stage):
    torch.manual_seed(0)
    hf = hf_model(with_box_refine, two_stage)
    ours = build_deformable_detr(CLASSES, backbone_channels=(32, 64, 128), d_model=D, num_queries=QUERIES,
                                 with_box_refine=with_box_refine, two_stage=two_stage, dim_feedforward=96,
                                 dropout=0.0, enc_layers=LAYERS, dec_layers=LAYERS).eval()
    hf_state = hf.state_dict()
    ours.load_state_dict({k: from_hf(k, hf_state) for k in ours.state_dict()}, strict=True)
    hf, ours = hf.double(), ours.double()  # float64: random weights amplify float32 rounding to ~1e-4
    # HF computes the proposals' sine embedding in float32 whatever the model's dtype (the official code
    # in the proposals' dtype): the same formula in float64 here, so the comparison stays exact
    hf.model.get_proposal_pos_embed = ours.transformer.proposal_pos_embed

    images = torch.randn(2, 3, 96, 128, dtype=torch.float64)
    pixel_mask = torch.ones(2, 96, 128, dtype=torch.long)
    pixel_mask[1, 72:] = 0
    pixel_mask[1, :, 100:] = 0
    with torch.no_grad():
        expected = hf(pixel_values=images, pixel_mask=pixel_mask)
        levels = hf.model.backbone(images, pixel_mask)
        got = ours.forward_levels([f for f, _ in levels], [~m.bool() for _, m in levels], ~pixel_mask.bool())
    assert torch.allclose(got["pred_logits"], expected.logits, atol=1e-9)
    assert torch.allclose(got["pred_boxes"], expected.pred_boxes, atol=1e-9)
    assert len(got["aux_outputs"]) == LAYERS - 1
    for lvl, aux in enumerate(got["aux_outputs"]):  # HF returns auxiliary outputs only with labels
        hf_logits = hf.class_embed[lvl](expected.intermediate_hidden_states[:, lvl])
        assert torch.allclose(aux["pred_logits"], hf_logits, atol=1e-9)
    if two_stage:
        assert torch.allclose(got["enc_outputs"]["pred_logits"], expected.enc_outputs_class, atol=1e-9)
