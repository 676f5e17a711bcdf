"""ViT backbone: timm and torchvision layouts load strictly into the same module and give the
reference implementations' tokens; position-table resizing as timm's; padded batches equal single
images; the simple feature pyramid's levels; one-line errors."""
import pytest
import torch
import torchvision

from trackformer.errors import ConfigError, DataError
from trackformer_vit.backbone import build_vit_backbone
from trackformer_vit.layouts import load_vit_weights, timm_to_torchvision, to_module_layout
from trackformer_vit.settings import ViTConfig, ViTTinyConfig
from trackformer_vit.vit import VisionTransformer, resize_pos_embed

timm = pytest.importorskip("timm")


def _randomise(module: torch.nn.Module, seed: int = 0):
    """Every float parameter random (norms and biases too, torchvision's head is zero)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return module


def _torchvision_tokens(tv: torchvision.models.VisionTransformer, images):
    x = tv._process_input(images)
    x = torch.cat([tv.class_token.expand(x.shape[0], -1, -1), x], dim=1)
    return tv.encoder(x)  # [B, 1 + h*w, D] after encoder.ln


def _small_torchvision(image_size=32, patch=8):
    return torchvision.models.VisionTransformer(image_size, patch, num_layers=2, num_heads=3, hidden_dim=48,
                                                mlp_dim=192).eval()


def test_torchvision_vit_b_16_tokens_equal():
    tv = _randomise(torchvision.models.vit_b_16(weights=None).eval())
    vit = VisionTransformer(224, 16, 768, 12, 12).eval()
    load_vit_weights(vit, tv.state_dict())
    assert len(tv.state_dict()) == 152 and sum(p.numel() for p in tv.parameters()) == 86_567_656
    images = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        ours, valid = vit(images)
        ref = _torchvision_tokens(tv, images)
    assert valid is None and ours.shape == ref.shape == (2, 197, 768)
    assert (ours - ref).abs().max() <= 1e-5


def test_timm_and_torchvision_layouts_load_into_one_module():
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, depth=2,
                              num_classes=5).eval()
    _randomise(model, seed=1)
    timm_state = model.state_dict()
    vit = VisionTransformer(32, 8, 192, 2, 3).eval()
    load_vit_weights(vit, timm_state)
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        ref_timm = model.forward_features(images)
        ours, _ = vit(images)
    assert (ours - ref_timm).abs().max() <= 1e-5
    # the same weights renamed to torchvision's layout: torchvision loads them strictly and so do we
    tv = torchvision.models.VisionTransformer(32, 8, num_layers=2, num_heads=3, hidden_dim=192, mlp_dim=768,
                                              num_classes=5).eval()
    tv_state = timm_to_torchvision({k: v for k, v in timm_state.items() if not k.startswith("head.")})
    tv.load_state_dict({**tv_state, "heads.head.weight": tv.heads.head.weight, "heads.head.bias": tv.heads.head.bias},
                       strict=True)
    vit2 = VisionTransformer(32, 8, 192, 2, 3).eval()
    load_vit_weights(vit2, tv.state_dict())
    with torch.no_grad():
        assert (vit2(images)[0] - _torchvision_tokens(tv, images)).abs().max() <= 1e-5
        assert (vit2(images)[0] - ref_timm).abs().max() <= 1e-5
    assert all(torch.equal(a, b) for a, b in zip(vit.state_dict().values(), vit2.state_dict().values()))


def test_loading_strips_prefixes_and_sets_aside_heads_and_decoder():
    tv = _randomise(_small_torchvision())
    state = {f"module.{k}": v for k, v in tv.state_dict().items()}
    vit = VisionTransformer(32, 8, 48, 2, 3)
    load_vit_weights(vit, state)
    ours = to_module_layout({"backbone.vit." + k: v for k, v in vit.state_dict().items()} |
                            {"backbone.vit.mask_token": torch.zeros(1, 1, 8), "backbone.vit.decoder_embed.weight":
                             torch.zeros(8, 48)}, vit)
    assert set(ours) == set(vit.state_dict())


def test_loading_errors_are_one_line(tmp_path):
    tv = _small_torchvision()
    vit = VisionTransformer(32, 8, 48, 3, 3)
    with pytest.raises(DataError, match=r"not torchvision ViT weights for this model: 12 missing "
                                        r"\(e\.g\. blocks\.2\.attn\.proj\.bias\)"):
        load_vit_weights(vit, tv.state_dict())
    with pytest.raises(DataError, match="not a ViT state dict: no patch_embed.proj.weight"):
        load_vit_weights(vit, {"conv1.weight": torch.zeros(1)})
    with pytest.raises(DataError, match="backbone weights file not found"):
        load_vit_weights(vit, tmp_path / "missing.pth")
    wide = VisionTransformer(32, 8, 96, 2, 3)
    with pytest.raises(DataError, match=r"shape of cls_token is \(1, 1, 48\), expected \(1, 1, 96\)$"):
        load_vit_weights(wide, tv.state_dict())


def test_pos_embed_resizing_matches_timm():
    from timm.layers import resample_abs_pos_embed

    table = torch.randn(1, 1 + 14 * 14, 32)
    for new in [(7, 7), (20, 40), (10, 20), (14, 14)]:
        ref = resample_abs_pos_embed(table, list(new), old_size=[14, 14], num_prefix_tokens=1)
        assert torch.allclose(resize_pos_embed(table, (14, 14), new), ref, atol=1e-6)


def test_other_input_sizes_equal_timm_dynamic_img_size():
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, depth=2, num_classes=0,
                              dynamic_img_size=True).eval()
    _randomise(model, seed=2)
    vit = VisionTransformer(224, 16, 192, 2, 3).eval()
    load_vit_weights(vit, model.state_dict())
    images = torch.randn(1, 3, 160, 320)
    with torch.no_grad():
        ref = model.forward_features(images)
        ours, _ = vit(images)
    assert ours.shape == ref.shape == (1, 201, 192)
    assert (ours - ref).abs().max() <= 1e-5


def test_loading_resizes_another_grid():
    small = VisionTransformer(32, 8, 48, 1, 3)  # 4 x 4 table
    big = VisionTransformer(64, 8, 48, 1, 3)  # 8 x 8
    load_vit_weights(big, small.state_dict())
    assert torch.allclose(big.pos_embed, resize_pos_embed(small.pos_embed, (4, 4), (8, 8)))


@pytest.mark.parametrize("sizes", [[(48, 64), (64, 40), (64, 64)], [(50, 61), (37, 64), (9, 20)]])
def test_padded_batch_equals_single_images(sizes):
    torch.manual_seed(0)
    vit = _randomise(VisionTransformer(32, 8, 48, 2, 3), seed=3).eval()
    images = [torch.randn(3, h, w) for h, w in sizes]
    batch = torch.zeros(len(images), 3, 64, 64)
    mask = torch.ones(len(images), 64, 64, dtype=torch.bool)
    for i, im in enumerate(images):
        batch[i, :, :im.shape[1], :im.shape[2]] = im
        mask[i, :im.shape[1], :im.shape[2]] = False
    with torch.no_grad():
        padded = vit.feature_map(batch, mask)  # [B, D, 8, 8]
        for i, im in enumerate(images):
            gh, gw = im.shape[1] // 8, im.shape[2] // 8
            alone = vit.feature_map(im[None, :, :gh * 8, :gw * 8])[0] if gh and gw else None
            if alone is not None:
                assert (padded[i, :, :gh, :gw] - alone).abs().max() < 1e-5
            assert padded[i, :, gh:].abs().sum() == 0 and padded[i, :, :, gw:].abs().sum() == 0


def test_patch_map_and_pyramid_levels():
    plain = build_vit_backbone(ViTTinyConfig(image_size=64, patch_size=16, depth=1))
    assert plain.levels == {"stride16": plain.levels["stride16"]} and plain.levels["stride16"].channels == 192
    out = plain(torch.randn(2, 3, 64, 96))
    assert out["stride16"].shape == (2, 192, 4, 6)
    fpn = build_vit_backbone(ViTTinyConfig(image_size=64, patch_size=16, depth=1, pyramid_channels=32,
                                           return_levels=["p2", "p3", "p4", "p5"]))
    assert [(n, lv.stride, lv.channels) for n, lv in fpn.levels.items()] == \
        [("p2", 4, 32), ("p3", 8, 32), ("p4", 16, 32), ("p5", 32, 32)]
    out = fpn(torch.randn(2, 3, 64, 96))
    assert {k: tuple(v.shape) for k, v in out.items()} == {"p2": (2, 32, 16, 24), "p3": (2, 32, 8, 12),
                                                          "p4": (2, 32, 4, 6), "p5": (2, 32, 2, 3)}
    one = build_vit_backbone(ViTTinyConfig(image_size=64, patch_size=16, depth=1, pyramid_channels=32,
                                           return_levels=["p3"]))
    assert list(one(torch.randn(1, 3, 64, 64))) == ["p3"] and len(one.pyramid.stages) == 1


def test_settings_errors():
    with pytest.raises(ConfigError, match="image_size: 100 is not a multiple of patch_size 16"):
        ViTConfig(image_size=100)
    with pytest.raises(ConfigError, match="num_heads: 5 heads do not divide embed_dim 192"):
        ViTTinyConfig(num_heads=5)
    with pytest.raises(ConfigError, match="pyramid_channels: the simple feature pyramid needs a power-of-two "
                                          "patch_size >= 4, got 14"):
        ViTConfig(image_size=224, patch_size=14, pyramid_channels=256)
    with pytest.raises(ConfigError, match="unknown level 'p6'"):
        build_vit_backbone(ViTTinyConfig(depth=1, pyramid_channels=32, return_levels=["p6"]))
