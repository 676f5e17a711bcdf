"""What a user of the pedestrian recipe runs and looks at: `trackformer track` on det/det.txt alone,
frame ranges through the data set and the evaluator, the video and the per-identity timeline."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from trackformer.data.mot import Tracks, read_results
from trackformer_trackq.render import colour
from trackformer_trackq.sequences import MOTFramePairs, PairTransform, find_sequence_entries
from trackformer_trackq.synthetic import generate_splits
from trackformer_trackq.settings import SyntheticSplitsConfig
from trackformer_trackq.timeline import MISS, SWITCH, coverage, draw_timeline


def track(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "trackformer", "track", *map(str, args)], capture_output=True,
                          text=True, timeout=600, cwd=cwd, env={**os.environ, "CI": "1"})


@pytest.fixture(scope="module")
def syn(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn")
    generate_splits(root, SyntheticSplitsConfig(num_train=1, num_val=0, num_test=1, seq_length=40, width=96,
                                                height=80, max_objects=3, initial_objects=2))
    return root


def test_sort_on_public_detections_from_the_command_line(shared_dir, tmp_path):
    """No model, no config: det/det.txt of the second half alone; the issue's SORT figures, a video
    of the 35 frames, the timeline, results only inside the range."""
    seq = shared_dir / "data" / "pedestrians" / "TUD-Campus"
    proc = track("--tracker", "sort", "--source", f"{seq}:37-71", "-o", tmp_path / "out", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "out"
    m = json.loads((out / "metrics.json").read_text())
    assert (round(m["sort_public/MOTA"], 3), round(m["sort_public/IDF1"], 3)) == (0.675, 0.742)
    rows = np.loadtxt(out / "sort_public" / "TUD-Campus.txt", delimiter=",")
    assert rows[:, 0].min() >= 37 and rows[:, 0].max() <= 71
    import cv2

    cap = cv2.VideoCapture(str(out / "render" / "TUD-Campus.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 35 and int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 640
    assert Image.open(out / "timeline" / "TUD-Campus.png").size[0] > 400
    assert "COMBINED" in proc.stderr and "MOTA" in proc.stderr           # the table


def test_bytetrack_on_public_detections_with_unnormalised_scores(shared_dir, tmp_path):
    seq = shared_dir / "data" / "pedestrians" / "TUD-Campus"
    proc = track("--tracker", "bytetrack", "-i", seq, "--frames", "37-71", "--render", "none", "-o", tmp_path, "--json")
    assert proc.returncode == 0, proc.stderr
    m = json.loads(proc.stdout)
    # ByteTrack's own thresholds (0.6 / 0.1) on rank-normalised ACF scores: 0.462 / 0.582 at this commit
    assert m["bytetrack_public/MOTA"] > 0.4 and m["bytetrack_public/IDF1"] > 0.5
    assert not (tmp_path / "render").exists()


@pytest.mark.parametrize("args,message", [
    (["--tracker", "sort", "--detections", "model"], "--detections: the model's detections need its config"),
    ([], "config: name the model's config"),
    (["--tracker", "sort", "--frames", "71-37"], "--frames: '71-37': frames run from 1 and FIRST <= LAST"),
])
def test_track_flag_mistakes_are_one_line(syn, tmp_path, args, message):
    proc = track("-i", syn / "test", *args, "-o", tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip() == f"trackformer: error: {message}" or message in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_frame_range_entries_keep_training_inside_the_range(syn):
    """`SEQ:1-12`: current frames 1-12 only, and previous frames (drawn within +-5) never past 12."""
    import random

    seq = sorted((syn / "train").iterdir())[0]
    found = find_sequence_entries(syn, [f"train/{seq.name}:1-12"])
    ds = MOTFramePairs([found[0][0]], PairTransform(False, [64], None, prev_crop=1.0), frame_range=5,
                       frame_ranges=[found[0][1]])
    assert sorted(f for _, f in ds.index) == list(range(12))
    random.seed(0)
    prev = {int(ds[i][1]["prev_target"]["image_id"]) % 100000 for i in range(8, 12) for _ in range(10)}
    assert max(prev) == 11 and min(prev) >= 3                          # frame 12 (index 11) +-5, clamped


def test_timeline_colours_switches_and_misses(tmp_path):
    """Person 1: tracker id 4 on frames 1-3, missed on 4, id 9 on 5-6 (a switch). Person 2: id 5 throughout."""
    gt = Tracks.from_arrays([f for f in range(1, 7)] * 2, [1] * 6 + [2] * 6,
                            [[10 + f, 10, 20, 40] for f in range(6)] + [[100, 10, 20, 40]] * 6)
    rows = [(f, 4, 11 + f - 1, 10, 20, 40, 1) for f in (1, 2, 3)] + [(f, 9, 11 + f - 1, 10, 20, 40, 1) for f in (5, 6)]
    rows += [(f, 5, 100, 10, 20, 40, 1) for f in range(1, 7)]
    ids, cover, switch = coverage(gt, rows, range(1, 7))
    assert ids == [1, 2]
    np.testing.assert_array_equal(cover, [[4, 4, 4, 0, 9, 9], [5] * 6])
    np.testing.assert_array_equal(switch[0], [0, 0, 0, 0, 1, 0])
    im = np.asarray(Image.open(draw_timeline(gt, rows, range(1, 7), tmp_path / "t.png")).convert("RGB"))
    left, top, cw, rh = 64, 34, 16, 16
    cell = lambda r, c: tuple(im[top + r * rh + rh // 2, left + c * cw + cw - 3])
    assert cell(0, 1) == colour(4) and cell(0, 3) == MISS and cell(0, 5) == colour(9) and cell(1, 2) == colour(5)
    assert tuple(im[top + rh // 2, left + 4 * cw + 1]) == SWITCH


def test_evaluator_scores_every_baseline_per_sequence_on_a_range(syn, tmp_path):
    from trackformer_detr.matcher import HungarianMatcher
    from trackformer_detr.settings import TransformerStackConfig as Stack
    from trackformer_detr.transformer import build_decoder, build_encoder
    from trackformer_trackq.evaluator import build
    from trackformer_trackq.settings import SortConfig, TrackerConfig, TrackingEvalConfig
    from trackformer_trackq.small_cnn import SmallCNN
    from trackformer_trackq.trackformer import build_trackformer

    torch.manual_seed(0)
    model = build_trackformer(SmallCNN((8, 16), 1), build_encoder(Stack(1, 4, 64, 0.0), 32),
                              build_decoder(Stack(1, 4, 64, 0.0), 32), 1, 6, HungarianMatcher())
    seq = sorted((syn / "test").iterdir())[0]
    entries = find_sequence_entries(syn, [f"test/{seq.name}:21-40"])
    ds = MOTFramePairs([entries[0][0]], PairTransform(False, [80], None), frame_ranges=[entries[0][1]])
    names = ["sort", "bytetrack", "sort_public", "bytetrack_public"]
    ev = build(TrackingEvalConfig(baseline=False, baselines=names, per_sequence=True, benchmark="MOT17",
                                  tracker=TrackerConfig(detection_threshold=0.0, track_threshold=0.0),
                                  sort=SortConfig(detection_threshold=0.0, min_hits=1)))
    metrics = ev.evaluate(model, ds, "cpu", tmp_path)
    keys = {"MOTA", "IDF1", "HOTA", "IDSW"}
    expected = keys | {f"{n}/{k}" for n in names for k in keys}
    expected |= {f"{seq.name}/{k}" for k in expected}
    assert set(metrics) == expected
    for n in ["results"] + names:
        rows = read_results(tmp_path / "tracking" / n / f"{seq.name}.txt")
        assert len(rows) == 0 or rows.frame.min() >= 21                   # tracked from frame 21
    assert metrics["sort_public/MOTA"] > 0.5                              # public detections of the generator


def test_bytetrack_on_the_model_detections_from_the_command_line(syn, tmp_path):
    """A config and --tracker bytetrack: the model's own detections (object queries) tracked by
    ByteTrack; the GIF, the timeline and the scores of that tracker."""
    proc = track("trackformer_synthetic", f"output_dir={tmp_path}", "--tracker", "bytetrack", "-i", syn / "test",
                 "-o", tmp_path / "out", "--frames", "5-20")
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "out"
    name = sorted((syn / "test").iterdir())[0].name
    assert (out / "bytetrack" / f"{name}.txt").is_file() and not (out / "results").exists()
    assert Image.open(out / "render" / f"{name}.gif").n_frames == 16
    assert (out / "timeline" / f"{name}.png").is_file()
    assert set(json.loads((out / "metrics.json").read_text())) == {f"bytetrack/{k}" for k in ("MOTA", "IDF1", "HOTA", "IDSW")}


@pytest.mark.parametrize("name,arch", [("trackformer_pedestrians", "deformable_trackformer"),
                                       ("trackformer_pedestrians_detr", "trackformer")])
def test_pedestrians_recipe_builds_its_halves(shared_dir, name, arch):
    from trackformer import build_dataset, load_config

    over = [f"data.root={shared_dir / 'data' / 'pedestrians'}",
            f"model.backbone.weights={shared_dir / 'weights' / 'mobilenet_v2-b0353104.pth'}"]
    cfg = load_config(name, over)
    assert cfg.model.name == arch and cfg.model.backbone.name == "mobilenet_v2"
    train, test = build_dataset(cfg, "train"), build_dataset(cfg, "test")
    assert len(train) == 36 + 54                                        # first halves only
    assert [(s["name"], s["range"]) for s in test.sequences] == [("TUD-Campus", (36, 70)), ("PETS09-S3MF1", (54, 106))]
    assert cfg.evaluator.benchmark == "MOT15" and cfg.evaluator.per_sequence
    assert sorted(cfg.evaluator.baselines) == ["bytetrack", "bytetrack_public", "sort", "sort_public"]


@pytest.mark.slow
def test_pedestrians_recipe_smoke_run_writes_every_key(shared_dir, tmp_path):
    """Two training steps, a short held-out part of each sequence: every key of the issue's table."""
    cmd = [sys.executable, "-m", "trackformer", "run", "trackformer_pedestrians", f"output_dir={tmp_path}",
           f"data.root={shared_dir / 'data' / 'pedestrians'}", "train.max_steps=2", "train.epochs=1",
           f"model.backbone.weights={shared_dir / 'weights' / 'mobilenet_v2-b0353104.pth'}",
           "data.test=[TUD-Campus:37-44,PETS09-S3MF1:55-60]"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env={**os.environ, "CI": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = json.loads((tmp_path / "metrics.json").read_text())
    for prefix in ("", "TUD-Campus/", "PETS09-S3MF1/"):
        for method in ("", "sort_public/", "bytetrack_public/", "sort/", "bytetrack/"):
            for key in ("MOTA", "IDF1", "HOTA", "IDSW"):
                assert f"{prefix}{method}{key}" in m


def test_boxes_leaving_the_image_are_clipped_for_training(tmp_path):
    """MOT15-style gt with a box from x = -30 and one past the right border: clipped to the image in
    the training targets (evaluation reads the file as it is)."""
    seq = tmp_path / "CAM"
    (seq / "img1").mkdir(parents=True)
    (seq / "gt").mkdir()
    for f in (1, 2):
        Image.new("RGB", (100, 80), (90, 90, 90)).save(seq / "img1" / f"{f:06d}.jpg")
    (seq / "gt" / "gt.txt").write_text("1,1,-29,11,50,40,1,-1,-1,-1\n1,2,81,11,40,40,1,-1,-1,-1\n"
                                       "2,1,-28,11,50,40,1,-1,-1,-1\n2,3,200,11,40,40,1,-1,-1,-1\n")
    ds = MOTFramePairs([seq], PairTransform(False, [80], None, prev_crop=1.0), frame_ranges=[None])
    image, target = ds._load(0, 0)
    np.testing.assert_allclose(target["boxes"].numpy(), [[0, 10, 20, 50], [80, 10, 100, 50]])
    image, target = ds._load(0, 1)
    assert target["track_ids"].tolist() == [1]                          # wholly outside: dropped
