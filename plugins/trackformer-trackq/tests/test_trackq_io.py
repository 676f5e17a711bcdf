"""Frame-pair data, inputs (sequence, root, image folder, video), rendering, result files, `track`."""
import json
import random
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from trackformer_trackq.inputs import open_inputs
from trackformer_trackq.online import read_public_detections, write_results
from trackformer_trackq.render import colour, render
from trackformer_trackq.sequences import MOTFramePairs, PairTransform, StaticImagePairs
from trackformer_trackq.synthetic import SyntheticConfig, generate_dataset


@pytest.fixture(scope="module")
def syn(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn")
    generate_dataset(root, SyntheticConfig(seq_length=12, width=96, height=80), {"train": 2, "test": 1}, seed=3)
    return root


def test_frame_pairs_are_within_range_and_keep_identities(syn):
    random.seed(0)
    seqs = sorted((syn / "train").iterdir())
    ds = MOTFramePairs(seqs, PairTransform(True, [80], None, hflip=0.5, prev_crop=1.0), frame_range=2)
    assert len(ds) == 24
    gt = np.loadtxt(seqs[0] / "gt" / "gt.txt", delimiter=",")
    for idx in range(12):
        image, target = ds[idx]
        prev = target["prev_target"]
        assert image.shape == target["prev_image"].shape == (3, 80, 96)
        # the previous frame is the one whose gt ids equal the sampled prev target's ids
        frames = [f for f in range(1, 13) if sorted(gt[gt[:, 0] == f, 1].astype(int)) == sorted(prev["track_ids"].tolist())]
        assert any(abs(f - (idx + 1)) <= 2 for f in frames)
        assert (target["boxes"] >= 0).all() and (target["boxes"] <= 1).all()
    # without flip or crop, boxes are the gt boxes (cxcywh relative)
    plain = MOTFramePairs(seqs[:1], PairTransform(False, [80], None, 0.0, 1.0))
    _, t = plain[0]
    r = gt[gt[:, 0] == 1]
    r = r[np.argsort(r[:, 1])]
    order = torch.argsort(t["track_ids"])
    cx = (r[:, 2] - 1 + r[:, 4] / 2) / 96
    np.testing.assert_allclose(t["boxes"][order, 0].numpy(), cx, atol=1e-5)


def test_flip_is_shared_by_both_frames(syn):
    seqs = sorted((syn / "train").iterdir())
    flipped = MOTFramePairs(seqs[:1], PairTransform(True, [80], None, hflip=1.0, prev_crop=1.0), frame_range=0)
    plain = MOTFramePairs(seqs[:1], PairTransform(True, [80], None, hflip=0.0, prev_crop=1.0), frame_range=0)
    (a, ta), (b, tb) = flipped[3], plain[3]
    torch.testing.assert_close(a, b.flip(-1))
    torch.testing.assert_close(ta["prev_image"], tb["prev_image"].flip(-1))
    torch.testing.assert_close(ta["boxes"][:, 0], 1 - tb["boxes"][:, 0])


def test_random_crop_is_shared_by_both_frames_and_moves_the_boxes_with_the_pixels():
    """A white rectangle on black: after the random crop and resize, the box of each frame is where its
    white pixels are (clipped when the crop cuts it), and both frames got the same region."""
    image = np.zeros((80, 120, 3), np.uint8)
    image[10:50, 30:70] = 255
    image = Image.fromarray(image)
    box = torch.tensor([[30.0, 10.0, 70.0, 50.0]])
    target = {"boxes": box, "labels": torch.zeros(1, dtype=torch.int64), "track_ids": torch.tensor([7]),
              "size": torch.tensor([80, 120])}
    transform = PairTransform(True, [60], None, hflip=0.0, prev_crop=1.0, crop=1.0, crop_min=0.4)
    random.seed(0)
    shapes, seen = set(), 0
    for _ in range(30):
        (im, t), (prev, pt) = transform(image, dict(target), image, dict(target))
        torch.testing.assert_close(im, prev)
        shapes.add(tuple(im.shape))
        white = im[0] > 0  # normalised: white is positive, black negative
        if not len(t["boxes"]):
            assert white.sum() <= 2  # the crop missed the rectangle: at most a resampled edge
            continue
        seen += 1
        torch.testing.assert_close(t["boxes"], pt["boxes"])
        assert t["track_ids"].tolist() == [7]
        h, w = im.shape[1:]
        cx, cy, bw, bh = (t["boxes"][0] * torch.tensor([w, h, w, h])).tolist()
        rows, cols = white.any(1).nonzero()[:, 0], white.any(0).nonzero()[:, 0]
        assert abs(cols[0] - (cx - bw / 2)) <= 1.5 and abs(cols[-1] + 1 - (cx + bw / 2)) <= 1.5
        assert abs(rows[0] - (cy - bh / 2)) <= 1.5 and abs(rows[-1] + 1 - (cy + bh / 2)) <= 1.5
    assert seen >= 10 and len(shapes) >= 5  # regions of many sizes and aspect ratios


def test_static_pairs_from_coco(shared_dir):
    coco = shared_dir / "data" / "coco128"
    random.seed(1)
    ds = StaticImagePairs(coco / "images" / "train2017", coco / "annotations" / "instances_train2017.json",
                          PairTransform(True, [128], 200, 0.5, 1.0), category_ids=(1,), prev_crop=0.8)
    n_people = 0
    for i in range(8):
        image, t = ds[i]
        prev = t["prev_target"]
        assert image.shape == t["prev_image"].shape
        assert set(prev["track_ids"].tolist()) <= set(t["track_ids"].tolist())
        n_people += len(t["track_ids"])
    assert n_people > 0


def test_inputs_sequence_root_folder_and_video(syn, tmp_path):
    seq = sorted((syn / "train").iterdir())[0]
    [s] = open_inputs(seq)
    assert s.num_frames == 12 and s.has_gt and [f for f, _ in s.frames()] == list(range(1, 13))
    assert [x.name for x in open_inputs(syn)] == ["SYN-test-00", "SYN-train-00", "SYN-train-01"]
    [folder] = open_inputs(seq / "img1", max_frames=5)
    assert folder.num_frames == 5 and len(list(folder.frames())) == 5 and not folder.has_gt
    cv2 = pytest.importorskip("cv2")
    video = tmp_path / "v.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 80))
    frames = [np.asarray(Image.open(p)) for p in sorted((seq / "img1").iterdir())]
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    [v] = open_inputs(video)
    got = list(v.frames())
    assert v.num_frames == 12 and len(got) == 12 and got[0][1].size == (96, 80)
    assert np.abs(np.asarray(got[4][1]).astype(float) - frames[4]).mean() < 12  # lossy, same picture


def test_results_roundtrip_and_render(syn, tmp_path):
    rows = [(1, 1, 11.0, 21.0, 30.0, 40.0, 0.9), (1, 2, 51.0, 21.0, 10.0, 20.0, 0.8), (2, 1, 12.0, 22.0, 30.0, 40.0, 0.9)]
    path = write_results(rows[::-1], tmp_path / "r" / "S.txt")
    lines = path.read_text().splitlines()
    assert lines[0].startswith("1,1,11.00,21.00,30.00,40.00") and lines[0].endswith(",-1,-1,-1") and len(lines) == 3
    seq = sorted((syn / "train").iterdir())[0]
    [src] = open_inputs(seq)
    gif = render(src.frames(), rows, tmp_path / "S.gif")
    im = Image.open(gif)
    assert im.n_frames == 12
    im.seek(0)
    rgb = np.asarray(im.convert("RGB"))
    # the outline of track 1 (x 10..40, y 20..60 0-based) is drawn in its id colour
    s = 320 // 96  # small frames are enlarged by an integer factor
    assert rgb.shape[:2] == (80 * s, 96 * s)
    assert np.abs(rgb[40 * s, 10 * s].astype(int) - np.array(colour(1))).max() < 40
    assert colour(1) != colour(2)
    dets = read_public_detections(seq)
    raw = np.loadtxt(seq / "det" / "det.txt", delimiter=",")
    assert sum(len(v) for v in dets.values()) == len(raw)
    np.testing.assert_allclose(dets[int(raw[0, 0])][0][:2], raw[raw[:, 0] == raw[0, 0]][0, 2:4] - 1)


@pytest.mark.slow
def test_track_command_writes_results_metrics_and_gif(syn, tmp_path):
    cmd = [sys.executable, "-m", "trackformer", "track", "trackformer_synthetic",
           "--input", str(syn / 'test'), f"output_dir={tmp_path}", "-o", str(tmp_path / "out"), "--baseline"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "out"
    assert (out / "results" / "SYN-test-00.txt").is_file() and (out / "render" / "SYN-test-00.gif").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"MOTA", "IDF1", "HOTA", "IDSW", "baseline/MOTA"} <= set(metrics)


def test_evaluator_tracks_both_ways_and_scores_with_the_core(syn, tmp_path):
    from trackformer.eval.mot import evaluate_mot
    from trackformer_detr.matcher import HungarianMatcher
    from trackformer_detr.settings import TransformerStackConfig as Stack
    from trackformer_detr.transformer import build_decoder, build_encoder
    from trackformer_trackq.evaluator import build
    from trackformer_trackq.small_cnn import SmallCNN
    from trackformer_trackq.settings import SortConfig, TrackerConfig, TrackingEvalConfig
    from trackformer_trackq.trackformer import build_trackformer

    torch.manual_seed(0)
    model = build_trackformer(SmallCNN((8, 16), 1), build_encoder(Stack(1, 4, 64, 0.0), 32), build_decoder(Stack(1, 4, 64, 0.0), 32),
                              1, 6, HungarianMatcher())
    ds = MOTFramePairs(sorted((syn / "test").iterdir()), PairTransform(False, [80], None))
    ev = build(TrackingEvalConfig(render=True, tracker=TrackerConfig(detection_threshold=0.0, track_threshold=0.0),
                                  sort=SortConfig(detection_threshold=0.0, min_hits=1)))
    metrics = ev.evaluate(model, ds, "cpu", tmp_path)
    assert set(metrics) == {"MOTA", "IDF1", "HOTA", "IDSW", "baseline/MOTA", "baseline/IDF1", "baseline/HOTA",
                            "baseline/IDSW"}
    for kind, prefix in (("results", ""), ("baseline", "baseline/")):
        files = tmp_path / "tracking" / kind
        assert (files / "SYN-test-00.txt").stat().st_size > 0
        ref = evaluate_mot(syn / "test", files, "MOT17")["COMBINED"]
        assert metrics[prefix + "MOTA"] == pytest.approx(ref["MOTA"]) and metrics[prefix + "IDF1"] == pytest.approx(ref["IDF1"])
    assert Image.open(tmp_path / "tracking" / "render" / "SYN-test-00.gif").n_frames == 12


def test_track_options_spelled_as_config_keys_get_a_one_line_hint(tmp_path):
    """`key=value` is only ever a config key: `data=PATH` (the old input spelling) names --input."""
    for old, hint in [("data=MOT17/train", "use --input MOT17/train"), ("input=video.mp4", "use --input video.mp4"),
                      ("output=out", "use --output out")]:
        proc = subprocess.run([sys.executable, "-m", "trackformer", "track", "trackformer_synthetic", old],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2
        assert proc.stderr.splitlines() == [f"trackformer: error: {old!r} is not a config key; {hint}"]
    proc = subprocess.run([sys.executable, "-m", "trackformer", "track", "trackformer_synthetic",
                           f"output_dir={tmp_path}"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.splitlines() == [
        "trackformer: error: --input: name the input: a sequence folder, a MOTChallenge root, images or a video"]


def test_misspelled_nested_tracker_setting_is_one_line_with_its_own_keys(tmp_path):
    cmd = [sys.executable, "-m", "trackformer", "run", "trackformer_synthetic",
           f"output_dir={tmp_path}", "evaluator.sort.max_ag=3"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (
        "trackformer: error: evaluator.sort.max_ag: Key 'max_ag' not in 'SortConfig'. Did you mean: "
        "'max_age'?; valid keys: detection_threshold, iou_threshold, max_age, min_hits")
    assert not any(tmp_path.iterdir())  # nothing written
