"""`trackformer detect` end to end: COCO results, drawn boxes and one attention picture per
detection, on generated images with a small random-weight model saved as a checkpoint."""
import json
import subprocess
import sys
from pathlib import Path

import torch
from PIL import Image

import trackformer
from trackformer.data.shapes import ShapesSpec, generate

ROOT = Path(__file__).resolve().parents[3]
SMALL = ["model.backbone.name=resnet18", "model.hidden_dim=64", "model.num_queries=5",
         "model.encoder.num_layers=1", "model.decoder.num_layers=2", "model.encoder.dim_feedforward=64",
         "model.decoder.dim_feedforward=64", "data.val_size=96", "data.max_size=128"]


def test_detect_writes_results_boxes_and_attention(tmp_path):
    generate(tmp_path / "shapes", ShapesSpec(num_train=2, num_val=0, num_test=0, image_size=96))
    overrides = SMALL + [f"data.root={tmp_path / 'shapes'}", f"output_dir={tmp_path / 'run'}"]
    cfg = trackformer.load_config("detr_synthetic", overrides)
    model = trackformer.build_model(cfg, data_info={"num_classes": 3})
    torch.save({"model": model.state_dict()}, tmp_path / "weights.pt")
    (tmp_path / "data_info.json").write_text(json.dumps(
        {"num_classes": 3, "label_to_category": {"0": 1, "1": 2, "2": 3},
         "category_names": {"1": "circle", "2": "square", "3": "triangle"}}))
    out = tmp_path / "detect"
    cmd = [sys.executable, "-m", "trackformer", "detect", "detr_synthetic",
           *overrides, f"model.weights={tmp_path / 'weights.pt'}", "--input", str(tmp_path / 'shapes' / 'train'),
           "--threshold", "0", "--output", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    results = json.loads((out / "results.json").read_text())
    assert len(results) == 2 * 5  # threshold 0 keeps every query of both images
    assert {r["category_id"] for r in results} <= {1, 2, 3}
    assert all(len(r["bbox"]) == 4 and 0 <= r["score"] <= 1 for r in results)
    assert sorted(p.name for p in (out / "boxes").iterdir()) == ["000001.png", "000002.png"]
    pictures = sorted((out / "attention").iterdir())
    assert len(pictures) == 10 and Image.open(pictures[0]).size == (96, 96)
    # bfloat16: the same detections, boxes within a pixel or so of float32 on these 96-px images
    proc = subprocess.run(cmd[:-2] + ["--output", str(tmp_path / 'bf16'), "--precision", "bf16", "--no-attention"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    bf16 = json.loads((tmp_path / "bf16" / "results.json").read_text())
    assert [r["image_id"] for r in bf16] == [r["image_id"] for r in results]
    assert max(abs(a - b) for r, q in zip(results, bf16) for a, b in zip(r["bbox"], q["bbox"])) < 2.0
    assert not (tmp_path / "bf16" / "attention").exists()
    # a missing input and an unknown precision are one-line errors with exit status 2
    bad = subprocess.run(cmd + ["--input", str(tmp_path / "nope")], capture_output=True, text=True,
                         cwd=ROOT, timeout=300)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        f"trackformer: error: --input: no such file or folder: {tmp_path / 'nope'}"]
    bad = subprocess.run(cmd + ["--precision", "fp16"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "trackformer: error: argument --precision: invalid choice: 'fp16' (choose from 'fp32', 'bf16') "
        "(see: trackformer detect --help)"]


def test_detect_options_spelled_as_config_keys_get_a_one_line_hint():
    """`key=value` is only ever a config key: the old spellings name the flag to use instead."""
    for old, hint in [("input=images/", "use --input images/"), ("output=out dir", "use --output 'out dir'"),
                      ("threshold=0.5", "use --threshold 0.5"), ("precision=bf16", "use --precision bf16")]:
        proc = subprocess.run([sys.executable, "-m", "trackformer", "detect", "detr_synthetic", old],
                              capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert proc.returncode == 2
        assert proc.stderr.strip().splitlines() == [f"trackformer: error: {old!r} is not a config key; {hint}"]
    proc = subprocess.run([sys.executable, "-m", "trackformer", "detect", "detr_synthetic"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "trackformer: error: --input: give the image or folder of images to run on"]
