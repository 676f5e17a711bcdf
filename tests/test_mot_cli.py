"""`trackformer eval mot` end to end, as a user runs it."""
import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from trackformer.eval.mot import evaluate_mot

mm = pytest.importorskip("motmetrics")
MM_DATA = Path(mm.__file__).parent / "data"


def eval_mot(*args):
    env = {**os.environ, "CI": "1", "TRACKFORMER_DISABLE_PLUGIN_AUTOLOAD": "1"}
    return subprocess.run([sys.executable, "-m", "trackformer", "eval", "mot", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture
def case(tmp_path):
    """Two small sequences with gt and results: results = gt jittered, one id switch, one miss."""
    rng = np.random.default_rng(0)
    gt_root, res_dir = tmp_path / "train", tmp_path / "results"
    res_dir.mkdir()
    for name in ("SEQ-A", "SEQ-B"):
        rows = []
        for oid in range(1, 6):
            for f in range(1, 11):
                rows.append([f, oid, 100 * oid + f, 50, 40, 90, 1, 1, 1.0])
        gt = np.array(rows)
        (gt_root / name / "gt").mkdir(parents=True)
        (gt_root / name / "seqinfo.ini").write_text(f"[Sequence]\nname={name}\nseqLength=10\n")
        np.savetxt(gt_root / name / "gt" / "gt.txt", gt, delimiter=",", fmt="%g")
        res = np.column_stack([gt[:, :2], gt[:, 2:6] + rng.normal(0, 2, (len(gt), 4)), np.ones(len(gt)),
                               -np.ones((len(gt), 3))])
        res[(res[:, 1] == 2) & (res[:, 0] > 5), 1] = 77
        res = res[1:]
        np.savetxt(res_dir / f"{name}.txt", res, delimiter=",", fmt="%.3f")
    return gt_root, res_dir


def test_table_on_stderr_json_to_file(case, tmp_path):
    gt_root, res_dir = case
    out = tmp_path / "out" / "metrics.json"
    result = eval_mot("--gt", gt_root, "--results", res_dir, "--json", out)
    assert result.returncode == 0, result.stderr
    header, *rows = result.stderr.strip().splitlines()
    assert header.split()[:5] == ["sequence", "HOTA", "DetA", "AssA", "LocA"]
    assert [r.split()[0] for r in rows if not r.startswith("-")] == ["SEQ-A", "SEQ-B", "COMBINED"]
    saved = json.loads(out.read_text())
    assert saved["benchmark"] == "MOT17"
    assert saved["metrics"] == json.loads(json.dumps(evaluate_mot(gt_root, res_dir)))
    assert saved["metrics"]["SEQ-A"]["IDSW"] == 1 and saved["metrics"]["SEQ-A"]["FN"] == 1


def test_json_to_stdout_and_sequence_subset(case):
    gt_root, res_dir = case
    result = eval_mot("--gt", gt_root, "--results", res_dir, "--sequences", "SEQ-B", "--json", "-",
                      "--benchmark", "MOT20")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert list(payload["metrics"]) == ["SEQ-B", "COMBINED"] and payload["benchmark"] == "MOT20"
    assert payload["metrics"]["SEQ-B"] == payload["metrics"]["COMBINED"]


def test_missing_results_error_names_the_sequence_or_count_as_empty(case):
    gt_root, res_dir = case
    (res_dir / "SEQ-B.txt").unlink()
    result = eval_mot("--gt", gt_root, "--results", res_dir)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "SEQ-B" in result.stderr and "Traceback" not in result.stderr
    result = eval_mot("--gt", gt_root, "--results", res_dir, "--missing-ok", "--json", "-")
    assert result.returncode == 0, result.stderr
    seq_b = json.loads(result.stdout)["metrics"]["SEQ-B"]
    assert (seq_b["FN"], seq_b["FP"], seq_b["HOTA"], seq_b["GT_Dets"]) == (50, 0, 0.0, 50)


@pytest.mark.parametrize("mutate, fragment", [
    (lambda rd: (rd / "SEQ-A.txt").write_text("1,1,1,1,1,1,1,-1,-1,-1\n1,1,2,2,2,2,1,-1,-1,-1\n"),
     "SEQ-A.txt:2: id 1 occurs twice in frame 1"),
    (lambda rd: (rd / "SEQ-A.txt").write_text("11,1,1,1,1,1,1,-1,-1,-1\n"),
     "SEQ-A.txt:1: frame 11 is outside the sequence (frames 1..10)"),
    (lambda rd: (rd / "SEQ-A.txt").write_text("1,1,1,1,1\n"), "SEQ-A.txt:1: 5 columns"),
    (lambda rd: (rd / "SEQ-A.txt").write_text("1,1,1,1,1,1,1,2,-1,-1\n"), "only pedestrians"),
])
def test_malformed_results_one_line_error(case, mutate, fragment):
    gt_root, res_dir = case
    mutate(res_dir)
    result = eval_mot("--gt", gt_root, "--results", res_dir)
    assert result.returncode == 2
    assert result.stderr.startswith("trackformer: error: ") and result.stderr.count("\n") == 1
    assert fragment in result.stderr


def test_bad_arguments(case, tmp_path):
    gt_root, res_dir = case
    result = eval_mot("--gt", gt_root, "--results", res_dir, "--benchmark", "MOT99")
    assert result.returncode == 2 and result.stderr.splitlines() == [
        "trackformer: error: benchmark: must be one of MOT15, MOT16, MOT17, MOT20, not 'MOT99'"]
    result = eval_mot("--gt", tmp_path / "nowhere", "--results", res_dir)
    assert result.returncode == 2 and "not a directory" in result.stderr
    result = eval_mot("--gt", gt_root, "--results", res_dir, "--sequences", "SEQ-Z")
    assert result.returncode == 2 and "SEQ-Z" in result.stderr and "SEQ-A" in result.stderr


def test_tud_through_the_cli_matches_motmetrics_and_trackeval(tmp_path):
    trackeval = pytest.importorskip("trackeval")
    gt_root, res_dir = tmp_path / "gt", tmp_path / "trackers" / "tud"
    res_dir.mkdir(parents=True)
    for name in ("TUD-Campus", "TUD-Stadtmitte"):
        (gt_root / name / "gt").mkdir(parents=True)
        gt, res = (MM_DATA / name / "gt.txt").read_text(), (MM_DATA / name / "test.txt").read_text()
        (gt_root / name / "gt" / "gt.txt").write_text(gt)
        (res_dir / f"{name}.txt").write_text(res)
        length = max(int(float(ln.split(",")[0])) for ln in (gt + res).splitlines() if ln.strip())
        (gt_root / name / "seqinfo.ini").write_text(f"[Sequence]\nseqLength={length}\n")
    result = eval_mot("--gt", gt_root, "--results", res_dir, "--benchmark", "MOT15", "--json", "-")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)["metrics"]
    # values asserted by motmetrics/tests/test_metrics.py::test_motchallenge_files
    for seq, (mota, idf1, fp, fn, idsw) in {"TUD-Campus": (0.526462, 0.557659, 13, 150, 7),
                                            "TUD-Stadtmitte": (0.564014, 0.644619, 45, 452, 7),
                                            "COMBINED": (0.555116, 0.624296, 58, 602, 14)}.items():
        m = metrics[seq]
        assert (m["FP"], m["FN"], m["IDSW"]) == (fp, fn, idsw)
        assert m["MOTA"] == pytest.approx(mota, abs=1e-6) and m["IDF1"] == pytest.approx(idf1, abs=1e-6)
    # HOTA from TrackEval on the same files
    config = dict(GT_FOLDER=str(gt_root), TRACKERS_FOLDER=str(res_dir.parent), TRACKERS_TO_EVAL=["tud"],
                  TRACKER_SUB_FOLDER="", SKIP_SPLIT_FOL=True, BENCHMARK="MOT15", PRINT_CONFIG=False,
                  SEQ_INFO={s: None for s in ("TUD-Campus", "TUD-Stadtmitte")})
    with contextlib.redirect_stdout(io.StringIO()):
        res, _ = trackeval.Evaluator({"PRINT_RESULTS": False, "PRINT_CONFIG": False, "OUTPUT_SUMMARY": False,
                                      "OUTPUT_DETAILED": False, "PLOT_CURVES": False, "TIME_PROGRESS": False}
                                     ).evaluate([trackeval.datasets.MotChallenge2DBox(config)],
                                                [trackeval.metrics.HOTA()])
    hota = res["MotChallenge2DBox"]["tud"]
    for seq in ("TUD-Campus", "TUD-Stadtmitte", "COMBINED"):
        want = np.mean(hota["COMBINED_SEQ" if seq == "COMBINED" else seq]["pedestrian"]["HOTA"]["HOTA"])
        assert metrics[seq]["HOTA"] == pytest.approx(want, rel=1e-9)
