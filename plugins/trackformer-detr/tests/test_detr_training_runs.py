"""End-to-end training runs through the CLI (slow: run with `pytest -m slow`)."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def run(config, tmp_path, *overrides, threads=None):
    threads = threads or os.environ.get("OMP_NUM_THREADS", "2")  # the issue: 2 cores
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), TRACKFORMER_CACHE=str(tmp_path / "cache"))
    start = time.time()
    proc = subprocess.run([sys.executable, "-m", "trackformer", "run", config,
                           f"output_dir={tmp_path / 'run'}", *overrides],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((tmp_path / "run" / "metrics.json").read_text()), time.time() - start


@pytest.mark.slow
def test_synthetic_detr_reaches_ap50(tmp_path):
    """detr_synthetic, every weight random: AP50 >= 0.9 on the held-out shapes (the
    issue's target; the 10-minute budget is for 2 otherwise idle cores, so the time is printed, not
    asserted)."""
    metrics, seconds = run("detr_synthetic", tmp_path)
    print(f"detr_synthetic: AP50 {metrics['AP50']:.3f} AP {metrics['AP']:.3f} in {seconds:.0f} s")
    assert metrics["AP50"] >= 0.9
    info = json.loads((tmp_path / "run" / "data_info.json").read_text())
    assert info["num_classes"] == 3 and len(info["label_to_category"]) == 3


@pytest.mark.slow
def test_coco128_smoke_run(shared_dir, tmp_path):
    metrics, _ = run("detr_coco128", tmp_path, "train.epochs=1", "train.max_steps=8")
    assert set(metrics) >= {"AP", "AP50", "AP75", "APs", "APm", "APl"}
    assert all(0.0 <= metrics[k] <= 1.0 for k in ("AP", "AP50", "AP75", "APs", "APm", "APl"))
