"""Deformable DETR through the component contract: its configs by name, settings checked when the config
loads and errors one line under their full key, the matcher and loss it declares, and DETR's inputs
(a list of differently sized images) in, sigmoid outputs and top-k detections in original pixels out."""
import pytest
import torch

import trackformer
from trackformer.api import build
from trackformer.errors import ConfigError

R50 = "deformable_detr_r50_coco"
SYNTHETIC = "deformable_detr_synthetic"


@pytest.mark.parametrize("override, message", [
    ("model.two_stage=true",
     "model.two_stage: needs with_box_refine: true (the proposal head is the decoder's last box head)"),
    ("model.hidden_dim=48", "model.hidden_dim: must be a multiple of 32 (GroupNorm(32) on every level), got 48"),
    ("model.nheads=6", "model.nheads: 6 does not divide hidden_dim 256"),
    ("model.num_queries=0", "model.num_queries: must be >= 1, got 0"),
    ("model.dropout=1.0", "model.dropout: must be in [0, 1), got 1.0"),
    ("loss.focal_gamma=-1", "loss.focal_gamma: must be >= 0, got -1.0"),
    ("matcher.name=hungarian",
     "matcher.name: 'hungarian' does not work with model.name 'deformable_detr', which takes matcher.name: "
     "focal_hungarian"),
])
def test_bad_settings_are_one_line_under_their_full_key(override, message):
    with pytest.raises(ConfigError) as error:
        trackformer.load_config(R50, [override])
    assert str(error.value) == message


def test_more_backbone_levels_than_feature_levels_is_a_build_error_under_the_model():
    cfg = trackformer.load_config(SYNTHETIC, ["model.num_feature_levels=1"])
    with pytest.raises(ConfigError) as error:
        trackformer.build_model(cfg, {"num_classes": 3})
    assert str(error.value) == "model.num_feature_levels: 1 is fewer than the backbone's 2 levels (res3, res4)"


def test_official_defaults_and_what_the_loss_reads_from_the_model():
    cfg = trackformer.load_config(R50)
    assert (cfg.matcher.cost_class, cfg.matcher.cost_bbox, cfg.matcher.cost_giou) == (2.0, 5.0, 2.0)
    assert (cfg.train.lr, cfg.train.lr_backbone, cfg.train.epochs, cfg.train.lr_drop) == (2e-4, 2e-5, 50, 40)
    cfg = trackformer.load_config(SYNTHETIC, ["model.aux_loss=false", "model.num_classes=5"])
    model = trackformer.build_model(cfg, {"num_classes": 3})
    criterion = build("losses", cfg.loss, matcher=build("matchers", cfg.matcher), model=model)
    assert (criterion.num_classes, criterion.aux_loss, criterion.focal_alpha) == (5, False, 0.25)


def test_images_of_different_sizes_in_sigmoid_outputs_and_detections_in_original_pixels_out():
    torch.manual_seed(0)
    cfg = trackformer.load_config(SYNTHETIC, ["model.with_box_refine=true"])
    model = trackformer.build_model(cfg, {"num_classes": 3}).eval()
    images = [torch.rand(3, 64, 80), torch.rand(3, 48, 64)]
    out = model(images)
    assert out["pred_logits"].shape == (2, 16, 3) and out["pred_boxes"].shape == (2, 16, 4)
    assert len(out["aux_outputs"]) == 2
    results = model.predict(images)
    assert [len(r["scores"]) for r in results] == [48, 48]  # 16 queries x 3 classes < 100
    best = out["pred_logits"][1].sigmoid().flatten().argmax() // 3  # its query
    cx, cy, w, h = out["pred_boxes"][1, best].tolist()  # the unpadded 64 x 48 image's size in pixels
    assert results[1]["boxes"][0].tolist() == pytest.approx([(cx - w / 2) * 64, (cy - h / 2) * 48,
                                                             (cx + w / 2) * 64, (cy + h / 2) * 48], rel=1e-5)
    assert torch.allclose(results[0]["scores"], out["pred_logits"][0].sigmoid().flatten().sort(descending=True)[0])
