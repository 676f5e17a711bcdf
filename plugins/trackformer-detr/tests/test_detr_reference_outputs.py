"""Official-layout weights give the outputs of an independent DETR implementation.

Hugging Face's `DetrForObjectDetection` (a separate code base, checked by its authors against the
official COCO checkpoints) is loaded with the same random weights, renamed from the official
layout the way HF's checkpoint converter does, and both models see the same padded batch. Frozen
BatchNorm statistics and LayerNorm affine maps are random too, so every normalisation counts.

HF is run with `auxiliary_loss=False`: with it on, transformers 5.x feeds each decoder layer the
*normalised* output of the previous one (its `hidden_states = self.layernorm(hidden_states)`),
which official DETR does not; the per-layer outputs are read with forward hooks instead."""
import re

import pytest
import torch

import trackformer
from trackformer.data.transforms import pad_images

pytest.importorskip("transformers")

_BACKBONE = [
    (r"backbone\.0\.body\.conv1\.", "model.backbone.model.embedder.embedder.convolution."),
    (r"backbone\.0\.body\.bn1\.", "model.backbone.model.embedder.embedder.normalization."),
    (r"backbone\.0\.body\.layer(\d)\.(\d+)\.downsample\.0\.",
     lambda m: f"model.backbone.model.encoder.stages.{int(m[1]) - 1}.layers.{m[2]}.shortcut.convolution."),
    (r"backbone\.0\.body\.layer(\d)\.(\d+)\.downsample\.1\.",
     lambda m: f"model.backbone.model.encoder.stages.{int(m[1]) - 1}.layers.{m[2]}.shortcut.normalization."),
    (r"backbone\.0\.body\.layer(\d)\.(\d+)\.conv(\d)\.",
     lambda m: f"model.backbone.model.encoder.stages.{int(m[1]) - 1}.layers.{m[2]}.layer.{int(m[3]) - 1}.convolution."),
    (r"backbone\.0\.body\.layer(\d)\.(\d+)\.bn(\d)\.",
     lambda m: f"model.backbone.model.encoder.stages.{int(m[1]) - 1}.layers.{m[2]}.layer.{int(m[3]) - 1}.normalization."),
]
_LAYER_PARTS = {"encoder": {"self_attn": "self_attn", "norm1": "self_attn_layer_norm",
                            "norm2": "final_layer_norm"},
                "decoder": {"self_attn": "self_attn", "multihead_attn": "encoder_attn",
                            "norm1": "self_attn_layer_norm", "norm2": "encoder_attn_layer_norm",
                            "norm3": "final_layer_norm"}}
_HEADS = {"input_proj.": "model.input_projection.", "query_embed.": "model.query_position_embeddings.",
          "class_embed.": "class_labels_classifier.", "bbox_embed.": "bbox_predictor.",
          "transformer.decoder.norm.": "model.decoder.layernorm."}


def official_to_hf(state):
    """Official DETR state dict -> transformers 5.x `DetrForObjectDetection` (non-timm ResNet)."""
    out = {}
    for key, value in state.items():
        layer = re.match(r"transformer\.(encoder|decoder)\.layers\.(\d+)\.(\w+)\.(.+)", key)
        if layer:
            stack, n, part, rest = layer.groups()
            prefix = f"model.{stack}.layers.{n}."
            if part in ("linear1", "linear2"):
                out[prefix + f"mlp.fc{part[-1]}.{rest}"] = value
            elif rest.startswith("in_proj_"):  # rows q, k, v stacked -> three projections
                for name, chunk in zip("qkv", value.chunk(3)):
                    out[prefix + f"{_LAYER_PARTS[stack][part]}.{name}_proj.{rest[8:]}"] = chunk
            elif rest.startswith("out_proj."):
                out[prefix + f"{_LAYER_PARTS[stack][part]}.o_proj.{rest[9:]}"] = value
            else:
                out[prefix + f"{_LAYER_PARTS[stack][part]}.{rest}"] = value
            continue
        for pattern, repl in _BACKBONE:
            if re.match(pattern, key):
                key = re.sub(pattern, repl, key)
                break
        else:
            for old, new in _HEADS.items():
                if key.startswith(old):
                    key = new + key[len(old):]
                    break
        out[key] = value
    return out


def random_official_weights(model):
    """The model's own initialisation, plus random frozen-BN statistics and random affine maps of
    every BatchNorm and LayerNorm (ones and zeros would hide a norm applied twice)."""
    g = torch.Generator().manual_seed(3)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for key in state:
        if re.search(r"\.(bn\d|downsample\.1|norm\d?)\.", key):
            n = state[key].shape
            if key.endswith("running_var"):
                state[key] = torch.rand(n, generator=g) + 0.5
            elif key.endswith("running_mean"):
                state[key] = torch.randn(n, generator=g) * 0.1
            elif key.endswith("weight"):
                state[key] = torch.rand(n, generator=g) * 0.5 + 0.5
            else:
                state[key] = torch.randn(n, generator=g) * 0.1
    return state


def test_official_layout_reproduces_an_independent_detr(tmp_path):
    from transformers import DetrConfig, DetrForObjectDetection

    torch.manual_seed(0)
    ours = trackformer.build_model(trackformer.load_config("detr_r50_coco"),
                                   data_info={})
    state = random_official_weights(ours)
    torch.save({"model": state}, tmp_path / "official.pth")
    cfg = trackformer.load_config("detr_r50_coco",
                                  [f"model.weights={tmp_path / 'official.pth'}"])
    ours = trackformer.build_model(cfg, data_info={}).eval()

    hf = DetrForObjectDetection(DetrConfig(use_timm_backbone=False, use_pretrained_backbone=False,
                                           num_labels=91, auxiliary_loss=False)).eval()
    converted = official_to_hf(state)
    assert set(converted) == set(hf.state_dict())  # every official entry has its HF twin
    hf.load_state_dict(converted, strict=True)

    # two images of different sizes: padding and the mask are part of what must agree
    images = [torch.randn(3, 224, 288), torch.randn(3, 192, 256)]
    batch, mask = pad_images(images)
    layer_outputs = []
    for layer in hf.model.decoder.layers:
        layer.register_forward_hook(lambda module, args, out: layer_outputs.append(
            out[0] if isinstance(out, tuple) else out))
    with torch.no_grad():
        expected = hf(pixel_values=batch, pixel_mask=(~mask).long())
        got = ours(images)
        hs = hf.model.decoder.layernorm(torch.stack(layer_outputs[:-1]))  # [L-1, B, Q, D]
        aux_logits, aux_boxes = hf.class_labels_classifier(hs), hf.bbox_predictor(hs).sigmoid()
    assert got["pred_logits"].shape == expected.logits.shape == (2, 100, 92)
    assert torch.allclose(got["pred_logits"], expected.logits, atol=1e-4, rtol=1e-4)
    assert torch.allclose(got["pred_boxes"], expected.pred_boxes, atol=1e-5, rtol=1e-4)
    assert len(got["aux_outputs"]) == 5
    for i, aux in enumerate(got["aux_outputs"]):
        assert torch.allclose(aux["pred_logits"], aux_logits[i], atol=1e-4, rtol=1e-4), i
        assert torch.allclose(aux["pred_boxes"], aux_boxes[i], atol=1e-5, rtol=1e-4), i
