"""DETR's settings through the component contract: typed, checked when the config loads, errors under
their full key, `num_classes` / `aux_loss` set once on the model, and the README's Python example."""
import os
import pytest
import torch

import trackformer
from trackformer.api import build
from trackformer.errors import ConfigError

R50 = "detr_r50_coco"  # configs by name, as the README uses them
SYNTHETIC = "detr_synthetic"


@pytest.mark.parametrize("override, message", [
    ("model.position_embedding=sinus",
     "model.position_embedding: Invalid value 'sinus', expected one of ['sine', 'learned']"),
    ("model.num_queries=0", "model.num_queries: must be >= 1, got 0"),
    ("model.hidden_dim=63", "model.hidden_dim: must be even (half per image axis), got 63"),
    ("model.decoder.dropout=1.5", "model.decoder.dropout: must be in [0, 1), got 1.5"),
])
def test_bad_settings_are_one_line_under_their_full_key(override, message):
    with pytest.raises(ConfigError) as error:
        trackformer.load_config(R50, [override])
    assert str(error.value) == message


def test_build_time_error_names_the_full_key():
    cfg = trackformer.load_config(SYNTHETIC, ["model.encoder.nhead=3"])
    with pytest.raises(ConfigError) as error:
        build("encoders", cfg.model.encoder, d_model=cfg.model.hidden_dim)
    assert str(error.value) == f"model.encoder.nhead: 3 does not divide the model width {cfg.model.hidden_dim}"


def test_loss_takes_classes_and_aux_outputs_from_the_model():
    with pytest.raises(ConfigError) as error:
        trackformer.load_config(R50, ["loss.num_classes=3"])
    assert str(error.value).startswith("loss.num_classes: Key 'num_classes' not in 'SetCriterionConfig'")
    cfg = trackformer.load_config(SYNTHETIC, ["model.aux_loss=false", "model.num_classes=5"])
    model = trackformer.build_model(cfg, {"num_classes": 3})
    criterion = build("losses", cfg.loss, matcher=build("matchers", cfg.matcher), model=model)
    assert (criterion.num_classes, criterion.aux_loss) == (5, False)
    assert criterion.empty_weight.shape == (6,)


def test_readme_python_example_builds_the_official_model_without_coco(tmp_path, monkeypatch):
    """README: load_config("detr_r50_coco", ["model.weights=detr-r50-e632da11.pth"]) then
    build_model(cfg), in a folder holding the checkpoint and no COCO data."""
    monkeypatch.chdir(tmp_path)
    assert not (tmp_path / "data").exists()
    torch.manual_seed(0)
    official = trackformer.build_model(trackformer.load_config(R50))
    torch.save({"model": official.state_dict()}, "detr-r50-e632da11.pth")
    cfg = trackformer.load_config(R50, ["model.weights=detr-r50-e632da11.pth"])
    model = trackformer.build_model(cfg)
    assert model.class_embed.out_features == 92 and len(model.state_dict()) == 458
    for key, value in official.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    assert not os.path.exists("data")
