"""End-to-end: detr_panoptic_synthetic through the CLI (slow: run with `pytest -m slow`)."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow
def test_synthetic_panoptic_reaches_pq(tmp_path):
    """Both stages, every weight random: test PQ >= 0.70 (the issue's bar) on held-out scenes; the
    20-minute budget is for 2 otherwise idle cores, so the time is printed, not asserted."""
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"),
               TRACKFORMER_CACHE=str(tmp_path / "cache"))
    start = time.time()
    proc = subprocess.run([sys.executable, "-m", "trackformer", "run", "detr_panoptic_synthetic",
                           f"output_dir={tmp_path / 'run'}"], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=2400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    print(f"detr_panoptic_synthetic: PQ {metrics['PQ']:.3f} (th {metrics['PQ_th']:.3f}, st {metrics['PQ_st']:.3f}) "
          f"in {time.time() - start:.0f} s")
    assert {"PQ", "SQ", "RQ", "PQ_th", "PQ_st"} <= set(metrics)
    assert metrics["PQ"] >= 0.70
    assert (tmp_path / "run" / "panoptic_predictions.json").is_file()
