"""MAE: equal to Hugging Face `ViTMAEForPreTraining` for the same weights and noise (loss, predictions,
mask); the masked share per image; the fixed sin-cos tables; the reconstruction picture."""
import numpy as np
import pytest
import torch

from trackformer.errors import ConfigError
from trackformer_vit.layouts import load_vit_weights
from trackformer_vit.mae import MaskedAutoencoder, patchify, random_masking, sincos_2d, unpatchify
from trackformer_vit.mae_eval import MAEEvaluator
from trackformer_vit.settings import MAEConfig
from trackformer_vit.vit import VisionTransformer

transformers = pytest.importorskip("transformers")


def _hf_to_ours(state):
    """HF v5 ViTMAEForPreTraining keys -> the official MAE layout (q/k/v concatenated in that order)."""
    out = {"cls_token": state["vit.embeddings.cls_token"], "pos_embed": state["vit.embeddings.position_embeddings"],
           "patch_embed.proj.weight": state["vit.embeddings.patch_embeddings.projection.weight"],
           "patch_embed.proj.bias": state["vit.embeddings.patch_embeddings.projection.bias"],
           "norm.weight": state["vit.layernorm.weight"], "norm.bias": state["vit.layernorm.bias"]}
    for key in ("mask_token", "decoder_pos_embed", "decoder_embed.weight", "decoder_embed.bias",
                "decoder_norm.weight", "decoder_norm.bias", "decoder_pred.weight", "decoder_pred.bias"):
        out[key] = state[f"decoder.{key}"]
    for src, dst in (("vit.layers", "blocks"), ("decoder.decoder_layers", "decoder_blocks")):
        i = 0
        while f"{src}.{i}.mlp.fc1.weight" in state:
            s, d = f"{src}.{i}.", f"{dst}.{i}."
            for t in ("weight", "bias"):
                out[d + f"attn.qkv.{t}"] = torch.cat([state[s + f"attention.{n}_proj.{t}"] for n in "qkv"])
                out[d + f"attn.proj.{t}"] = state[s + f"attention.o_proj.{t}"]
                out[d + f"norm1.{t}"] = state[s + f"layernorm_before.{t}"]
                out[d + f"norm2.{t}"] = state[s + f"layernorm_after.{t}"]
                out[d + f"mlp.fc1.{t}"] = state[s + f"mlp.fc1.{t}"]
                out[d + f"mlp.fc2.{t}"] = state[s + f"mlp.fc2.{t}"]
            i += 1
    return out


@pytest.mark.parametrize("norm_pix_loss", [True, False])
def test_equals_hugging_face_vit_mae(norm_pix_loss):
    torch.manual_seed(0)
    config = transformers.ViTMAEConfig(hidden_size=48, num_hidden_layers=2, num_attention_heads=3,
                                       intermediate_size=192, image_size=32, patch_size=4, decoder_hidden_size=32,
                                       decoder_num_hidden_layers=2, decoder_num_attention_heads=4,
                                       decoder_intermediate_size=128, layer_norm_eps=1e-6, mask_ratio=0.75,
                                       norm_pix_loss=norm_pix_loss)
    hf = transformers.ViTMAEForPreTraining(config).eval()
    ours = MaskedAutoencoder(32, 4, 48, 2, 3, 4.0, 32, 2, 4, 0.75, norm_pix_loss).eval()
    # HF v5 leaves both fixed tables at zero when building from a config: build them with its own code
    hf.vit.embeddings.patch_embeddings.projection._is_hf_initialized = False
    hf.vit.embeddings.initialize_weights()
    hf.decoder.initialize_weights(64)
    # the fixed tables are built independently and agree; the rest is copied
    assert torch.allclose(ours.pos_embed, hf.vit.embeddings.position_embeddings, atol=1e-6)
    assert torch.allclose(ours.decoder_pos_embed, hf.decoder.decoder_pos_embed, atol=1e-6)
    ours.load_state_dict(_hf_to_ours(hf.state_dict()), strict=True)
    images, noise = torch.randn(3, 3, 32, 32), torch.rand(3, 64)
    with torch.no_grad():
        ref = hf(pixel_values=images, noise=noise)
        out = ours(images, noise=noise)
    assert torch.equal(out["mask"], ref.mask) and int(out["mask"].sum()) == 3 * 48
    assert (out["pred"] - ref.logits).abs().max() <= 1e-5
    assert abs(float(out["loss"]) - float(ref.loss)) <= 1e-5 * max(1.0, float(ref.loss))


@pytest.mark.parametrize("L,ratio", [(64, 0.75), (49, 0.75), (196, 0.9), (10, 0.33)])
def test_masking_keeps_exactly_the_configured_share(L, ratio):
    x = torch.randn(5, L, 8)
    kept, mask, ids_restore = random_masking(x, ratio)
    keep = int(L * (1 - ratio))
    assert kept.shape == (5, keep, 8)
    assert torch.equal(mask.sum(dim=1), torch.full((5,), float(L - keep)))
    for n in range(5):  # the kept tokens are exactly the unmasked positions, in noise order
        assert sorted(kept[n, :, 0].tolist()) == sorted(x[n, mask[n] == 0, 0].tolist())
    assert torch.equal(torch.sort(ids_restore, dim=1).values, torch.arange(L).expand(5, L))


def test_sincos_table_layout():
    table = sincos_2d(8, 3)[0]  # [1 + 9, 8]
    assert torch.equal(table[0], torch.zeros(8))
    row, col = 1, 2  # token 1 + row * 3 + col: first half encodes the column, second the row
    omega = 1.0 / 10000 ** (np.arange(2) / 2.0)
    expect = np.concatenate([np.sin(col * omega), np.cos(col * omega), np.sin(row * omega), np.cos(row * omega)])
    assert np.allclose(table[1 + row * 3 + col].numpy(), expect)


def test_patchify_round_trip_and_mae_state_loads_into_backbone():
    images = torch.randn(2, 3, 16, 24)
    assert torch.equal(unpatchify(patchify(images, 4), 4, 4, 6), images)
    assert torch.equal(patchify(images, 4)[0, 1].view(4, 4, 3), images[0, :, :4, 4:8].permute(1, 2, 0))
    mae = MaskedAutoencoder(32, 4, 48, 2, 3, 4.0, 32, 1, 4)
    vit = VisionTransformer(32, 4, 48, 2, 3)
    load_vit_weights(vit, mae.state_dict())  # decoder and mask token set aside, the rest strictly
    assert all(torch.equal(v, mae.state_dict()[k]) for k, v in vit.state_dict().items())


def test_evaluator_writes_the_reconstruction_picture(tmp_path):
    from PIL import Image

    torch.manual_seed(0)
    mae = MaskedAutoencoder(32, 8, 48, 1, 3, 4.0, 32, 1, 4).eval()
    data = [(torch.randn(3, 32, 32), 0) for _ in range(5)]
    evaluator = MAEEvaluator(batch_size=2, num_images=4)
    first = evaluator.evaluate(mae, data, "cpu", tmp_path)
    again = evaluator.evaluate(mae, data, "cpu", tmp_path)
    assert first == again and first["masked_share"] == 0.75  # fixed noise: the same patches each time
    assert (tmp_path / "mae_reconstruction" / "000.png").is_file()
    picture = Image.open(tmp_path / "mae_reconstruction" / "001.png")
    assert picture.size == (4 * 32 + 3 * 2, 3 * 32 + 2 * 2)


def test_settings_errors():
    with pytest.raises(ConfigError, match="mask_ratio: must remove and keep at least one patch each, got 1.0"):
        MAEConfig(mask_ratio=1.0)
    with pytest.raises(ConfigError, match="decoder_num_heads: 5 heads do not divide decoder_embed_dim 512"):
        MAEConfig(decoder_num_heads=5)


def test_detection_batches_pre_train_it_and_bad_inputs_are_one_line_errors():
    """A `coco` / `shapes` collate batch {"images", "mask"} gives the plain batch's loss; padding and
    other sizes are refused with the reason."""
    from trackformer.data.transforms import collate
    from trackformer.errors import TrackformerError

    torch.manual_seed(0)
    mae = MaskedAutoencoder(32, 8, 48, 1, 3, 4.0, 32, 1, 4)
    images = torch.randn(3, 3, 32, 32)
    noise = torch.rand(3, 16)
    inputs, _ = collate([(im, {"labels": torch.zeros(0)}) for im in images])
    assert torch.equal(mae(inputs, noise=noise)["loss"], mae(images, noise=noise)["loss"])
    padded, _ = collate([(images[0], {}), (images[1, :, :24], {})])
    with pytest.raises(TrackformerError, match=r"^MAE takes batches of same-size images; this detection batch "
                                               r"is padded \(use one training scale and no crop\)$"):
        mae(padded)
    with pytest.raises(TrackformerError, match=r"^MAE takes 32-pixel square images, got \(48, 48\)$"):
        mae(torch.randn(1, 3, 48, 48))
