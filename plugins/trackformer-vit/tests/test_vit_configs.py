"""The plugin's run configs build their models by name; the ViT serves DETR and intra-batch metric
learning through the multi-scale contract; an MAE run's checkpoint starts the metric model's backbone."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trackformer import build_model, load_config

ROOT = Path(__file__).resolve().parents[3]


def test_mae_config_builds_the_cpu_model():
    cfg = load_config("mae_cub100")
    model = build_model(cfg, data_info={"num_classes": 45})
    assert (model.grid, model.embed_dim, len(model.blocks), len(model.decoder_blocks)) == ((8, 8), 192, 6, 2)
    out = model(torch.randn(2, 3, 64, 64))
    assert out["pred"].shape == (2, 64, 8 * 8 * 3) and out["mask"].sum() == 2 * 48
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert "pos_embed" not in trainable and "decoder_pos_embed" not in trainable and "cls_token" in trainable


def test_intrabatch_vit_config_loads_an_mae_checkpoint(tmp_path):
    mae = build_model(load_config("mae_cub100"), data_info={})
    torch.save({"model": mae.state_dict()}, tmp_path / "best.pt")
    cfg = load_config("intrabatch_cub100_vit", [f"model.backbone.weights={tmp_path / 'best.pt'}"])
    model = build_model(cfg, data_info={"num_classes": 45})
    assert torch.equal(model.backbone.vit.blocks[5].mlp.fc2.weight, mae.blocks[5].mlp.fc2.weight)
    assert model.backbone.levels["stride8"].channels == 192
    model.train()
    out = model(torch.randn(4, 3, 64, 64))
    assert out["embeddings"].shape == (4, 512) and out["logits"].shape == (4, 45)


def test_detr_vit_config_runs_detr_on_the_pyramid_of_the_mae_shapes_vit(tmp_path):
    mae = build_model(load_config("mae_shapes"), data_info={})
    assert (mae.grid, mae.embed_dim, len(mae.blocks), len(mae.decoder_blocks)) == ((8, 8), 192, 4, 2)
    torch.save({"model": mae.state_dict()}, tmp_path / "best.pt")
    cfg = load_config("detr_vit_synthetic", [f"model.backbone.weights={tmp_path / 'best.pt'}"])
    assert cfg.model.backbone.weights != load_config("detr_vit_synthetic").model.backbone.weights
    assert cfg.data == load_config("mae_shapes").data  # the same images
    model = build_model(cfg, data_info={"num_classes": 3})
    vit = model.backbone[0].vit
    assert all(torch.equal(v, mae.state_dict()[k]) for k, v in vit.state_dict().items())
    assert list(model.backbone[0].levels) == ["p3"] and model.backbone[0].levels["p3"].stride == 8
    out = model([torch.rand(3, 64, 64), torch.rand(3, 64, 64)])
    assert out["pred_boxes"].shape == (2, 8, 4) and out["pred_logits"].shape == (2, 8, 4)


def _run(config, out, *overrides):
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    proc = subprocess.run([sys.executable, "-m", "trackformer", "run", config, f"output_dir={out}", *overrides],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.slow
def test_pretrain_then_finetune_smoke(shared_dir, tmp_path):
    """mae_cub100 for a few steps, then intrabatch_cub100_vit from its checkpoint and from scratch."""
    mae = _run("mae_cub100", tmp_path / "mae", "train.epochs=1", "train.max_steps=4")
    assert mae["masked_share"] == 0.75 and (tmp_path / "mae" / "mae_reconstruction.png").is_file()
    metrics = _run("intrabatch_cub100_vit", tmp_path / "ib", "train.epochs=1", "train.max_steps=4",
                   f"model.backbone.weights={tmp_path / 'mae' / 'best.pt'}")
    assert {"R@1", "R@8", "NMI", "MAP@R", "scratch/R@1", "scratch/MAP@R"} <= set(metrics)


@pytest.mark.slow
def test_mae_shapes_then_detr_vit_smoke(tmp_path):
    """mae_shapes pre-trains on the shapes' detection batches (labels unused), detr_vit_synthetic
    starts from its best.pt."""
    mae = _run("mae_shapes", tmp_path / "mae", "train.epochs=1", "train.max_steps=3", "data.num_train=64",
               "data.num_val=16", "data.num_test=16")
    assert mae["masked_share"] == 0.75 and (tmp_path / "mae" / "mae_reconstruction" / "000.png").is_file()
    detr = _run("detr_vit_synthetic", tmp_path / "detr", "train.epochs=1", "train.max_steps=3",
                "data.num_train=64", "data.num_val=16", "data.num_test=16",
                f"model.backbone.weights={tmp_path / 'mae' / 'best.pt'}")
    assert 0 <= detr["AP50"] <= 1


@pytest.mark.slow
def test_mae_initialisation_beats_random_on_cub100(shared_dir, tmp_path):
    """The issue's bar: the whole recipe (mae_cub100, then intrabatch_cub100_vit and its scratch variant;
    ~11 min on 2 idle cores) gives MAE-initialised R@1 >= scratch + 2 points on the test classes
    (measured 0.300 vs 0.201, docs/vit-mae.md)."""
    _run("mae_cub100", tmp_path / "mae")
    metrics = _run("intrabatch_cub100_vit", tmp_path / "ib", f"model.backbone.weights={tmp_path / 'mae' / 'best.pt'}")
    print(f"MAE-init R@1 {metrics['R@1']:.3f}, scratch R@1 {metrics['scratch/R@1']:.3f}")
    assert metrics["R@1"] >= metrics["scratch/R@1"] + 0.02


@pytest.mark.slow
def test_mae_pre_trained_vit_detr_reaches_the_bar(tmp_path):
    """The issue's bar: mae_shapes, then detr_vit_synthetic from its best.pt (~27 min on 2 idle cores)
    gives test AP50 >= 0.90 (measured 0.925, docs/vit-mae.md)."""
    _run("mae_shapes", tmp_path / "mae")
    metrics = _run("detr_vit_synthetic", tmp_path / "detr", f"model.backbone.weights={tmp_path / 'mae' / 'best.pt'}")
    print(f"test AP50 {metrics['AP50']:.3f}")
    assert metrics["AP50"] >= 0.90
