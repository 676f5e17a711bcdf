"""End to end: `trackformer track` on real MOT17 frames, and the synthetic config reaching its targets."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[3]
TINY = ["model.backbone.name=resnet18", "model.encoder.num_layers=1", "model.decoder.num_layers=1",
        "model.num_queries=20", "evaluator.size=256", "evaluator.max_size=480"]


def trackformer(*args, timeout=900):
    proc = subprocess.run([sys.executable, "-m", "trackformer", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_track_mot17_mini_writes_files_that_eval_mot_accepts(shared_dir, tmp_path):
    import torch

    from trackformer import build_model, load_config

    mini = shared_dir / "data" / "MOT17-mini" / "train"
    cfg = load_config("trackformer_mot17", TINY)
    torch.manual_seed(0)
    model = build_model(cfg, data_info={"num_classes": 1})
    weights = tmp_path / "w.pt"
    torch.save({"model": model.state_dict()}, weights)
    out = tmp_path / "out"
    trackformer("track", "trackformer_mot17", *TINY, f"model.weights={weights}",
                "--input", mini,
                # an untrained model scores low: a zero threshold makes it write tracks anyway
                "evaluator.tracker.detection_threshold=0.0", "evaluator.tracker.track_threshold=0.0",
                "-o", out, "--max-frames", 3, "--render", "gif")
    for seq in ("MOT17-02-FRCNN", "MOT17-04-FRCNN"):
        rows = np.loadtxt(out / "results" / f"{seq}.txt", delimiter=",", ndmin=2)
        assert rows.shape[0] > 0 and rows.shape[1] == 10 and (rows[:, 7:] == -1).all()
        assert set(rows[:, 0].astype(int)) == {1, 2, 3}
        assert (rows[:, 4] > 0).all() and (rows[:, 5] > 0).all()
        assert (out / "render" / f"{seq}.gif").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"MOTA", "IDF1", "HOTA", "IDSW"} <= set(metrics)
    # the core's `eval mot` command accepts the files and agrees on the numbers (4 frames evaluated)
    proc = trackformer("eval", "mot", "--gt", mini, "--results", out / "results", "--json", "-")
    report = json.loads(proc.stdout)
    assert abs(report["metrics"]["COMBINED"]["MOTA"] - metrics["MOTA"]) < 1e-9
    assert abs(report["metrics"]["COMBINED"]["IDF1"] - metrics["IDF1"]) < 1e-9


@pytest.mark.slow
def test_synthetic_config_reaches_its_targets(tmp_path):
    trackformer("run", "trackformer_synthetic", f"output_dir={tmp_path}", timeout=3600)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["MOTA"] >= 0.80 and metrics["IDF1"] >= 0.80
    assert metrics["IDF1"] >= metrics["baseline/IDF1"]


@pytest.mark.parametrize("name", ["trackformer_synthetic", "trackformer_mot17", "trackformer_crowdhuman"])
def test_configs_validate(name):
    from trackformer import load_config
    from trackformer.errors import ConfigError

    cfg = load_config(name)
    assert cfg.model.name == "trackformer" and cfg.evaluator.name == "mot_tracking"
    assert cfg.evaluator.tracker.detection_threshold == 0.4 and cfg.evaluator.tracker.track_nms == 0.9
    assert cfg.model.fn_prob == 0.4 and cfg.model.fp_prob == 0.1
    with pytest.raises(ConfigError, match="model.fn_prob"):
        from trackformer import build_model

        build_model(load_config(name, ["model.fn_prob=1.5"]), data_info={"num_classes": 1})


def test_static_pairs_config_builds_from_coco(shared_dir):
    from trackformer import build_dataset, load_config

    coco = shared_dir / "data" / "coco128"
    cfg = load_config("trackformer_crowdhuman",
                      [f"data.image_dir={coco / 'images' / 'train2017'}",
                       f"data.ann_file={coco / 'annotations' / 'instances_train2017.json'}", "data.scales=[128]",
                       "data.max_size=200"])
    ds = build_dataset(cfg, "train")
    image, target = ds[0]
    assert "prev_image" in target and ds.info["num_classes"] == 1
    assert build_dataset(cfg, "test") is None


def test_appearance_reid_with_the_metric_plugin_embeddings(shared_dir):
    """The evaluator wires the metric-learning model's `embed` into the tracker; its ImageNet features
    find the same pedestrian in the next MOT17 frame among the others."""
    pytest.importorskip("trackformer_metric")
    import torch
    import torchvision.transforms.functional as TF
    from PIL import Image

    from trackformer import build
    from trackformer.plugins import load_plugins
    from trackformer_trackq.sequences import read_sequence

    if "intra_batch" not in load_plugins().registries["architectures"]:
        pytest.skip("metric plugin not registered")
    from omegaconf import OmegaConf

    node = OmegaConf.create({"name": "mot_tracking", "reid_model": "intrabatch_cub100",
                             "tracker": {"reid_appearance": True}})
    from trackformer.config import validate_component

    ev = build("evaluators", validate_component(node, "evaluators", "evaluator"))
    assert ev.embed is not None
    seq = read_sequence(shared_dir / "data" / "MOT17-mini" / "train" / "MOT17-04-FRCNN")
    g1, g2 = seq["gt"][0], seq["gt"][1]
    big = (g1["boxes"][:, 3] - g1["boxes"][:, 1]) > 120  # well visible people
    ids = g1["ids"][big][:6]
    from trackformer_trackq.tracker import Tracker, TrackerConfig

    tracker = Tracker(TrackerConfig(reid_appearance=True), embed=ev.embed)
    im1 = TF.to_tensor(Image.open(seq["frames"][0]).convert("RGB"))
    im2 = TF.to_tensor(Image.open(seq["frames"][1]).convert("RGB"))
    b1 = torch.stack([g1["boxes"][g1["ids"] == i][0] for i in ids])
    b2 = torch.stack([g2["boxes"][g2["ids"] == i][0] for i in ids])
    sim = tracker._features(im1, b1) @ tracker._features(im2, b2).T  # [6, 6]
    assert (sim.argmax(1) == torch.arange(len(ids))).float().mean() >= 5 / 6


def test_fine_tune_from_a_detr_plugin_checkpoint(tmp_path):
    """A DETR checkpoint (other class count) loads into TrackFormer non-strictly: all but the class head."""
    import torch
    from omegaconf import OmegaConf

    from trackformer import build, build_model, load_config
    from trackformer.config import validate_component

    cfg = load_config("trackformer_synthetic")
    m = OmegaConf.to_container(cfg.model)
    node = {"name": "detr", "num_classes": 3, **{k: m[k] for k in ("backbone", "encoder", "decoder", "hidden_dim",
                                                                    "num_queries")}}
    detr = build("architectures", validate_component(OmegaConf.create(node), "architectures", "model"),
                 data_info={"num_classes": 3})
    torch.save({"model": detr.state_dict()}, tmp_path / "detr.pt")
    model = build_model(load_config("trackformer_synthetic",
                                    [f"model.weights={tmp_path / 'detr.pt'}", "model.weights_strict=false"]),
                        data_info={"num_classes": 1})
    own, ref = model.state_dict(), detr.state_dict()
    assert set(own) == set(ref)
    for k in own:
        if k.startswith("class_embed"):
            assert own[k].shape != ref[k].shape
        else:
            assert torch.equal(own[k], ref[k]), k
