"""`trackformer track` runs TrackFormer on Deformable DETR (the previous frame kept between steps, track
queries carrying their boxes), and the synthetic config reaches its measured figures."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[3]
CONFIG = "trackformer_deformable_synthetic"


def trackformer(*args, timeout=900):
    proc = subprocess.run([sys.executable, "-m", "trackformer", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_track_command_runs_the_deformable_model_and_keeps_identities(tmp_path):
    import torch

    from trackformer import build_model, load_config
    from trackformer_trackq.settings import SyntheticConfig
    from trackformer_trackq.synthetic import generate_sequence

    generate_sequence(tmp_path / "seqs" / "SYN-01", SyntheticConfig(width=96, height=96, seq_length=4), seed=3)
    torch.manual_seed(0)
    model = build_model(load_config(CONFIG), data_info={"num_classes": 1})
    torch.save({"model": model.state_dict()}, tmp_path / "w.pt")
    out = tmp_path / "out"
    # an untrained model scores low: zero thresholds make every query a track, every track survive
    trackformer("track", CONFIG, f"model.weights={tmp_path / 'w.pt'}", "--input", tmp_path / "seqs" / "SYN-01",
                "evaluator.tracker.detection_threshold=0.0", "evaluator.tracker.track_threshold=0.0",
                "evaluator.tracker.detection_nms=1.0", "evaluator.tracker.track_nms=1.0", "-o", out, "--render", "none")
    rows = np.loadtxt(out / "results" / "SYN-01.txt", delimiter=",", ndmin=2)
    assert set(rows[:, 0].astype(int)) == {1, 2, 3, 4}
    first = set(rows[rows[:, 0] == 1, 1].astype(int))
    assert len(first) > 0
    for frame in (2, 3, 4):  # every track of frame 1 continues through its track query
        assert first <= set(rows[rows[:, 0] == frame, 1].astype(int))


@pytest.mark.slow
def test_synthetic_config_reaches_its_targets(tmp_path):
    trackformer("run", CONFIG, f"output_dir={tmp_path}", timeout=3600)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    # measured 0.909 / 0.905 (docs/deformable.md); the bar is 0.85 / 0.85, its goal 0.90 / 0.90
    assert metrics["MOTA"] >= 0.85 and metrics["IDF1"] >= 0.85
    assert metrics["IDF1"] >= metrics["baseline/IDF1"]
