"""MOT metrics against the reference tools: TrackEval (the official MOTChallenge evaluation) on many
random trackings and real data, motmetrics on its own shipped TUD sequences and on random cases."""
import contextlib
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trackformer.data.mot import read_gt, read_results, read_sequence_info, write_results
from trackformer.eval.mot import evaluate_mot
from trackformer.eval.mot.assign import max_weight_matching
from trackformer.eval.mot.prepare import pair_ious

trackeval = pytest.importorskip("trackeval")
mm = pytest.importorskip("motmetrics")
MM_DATA = Path(mm.__file__).parent / "data"

# our key -> (TrackEval metric, field); HOTA fields are reported as the mean over the 19 thresholds
TE_FIELDS = {
    **{k: ("HOTA", k) for k in ("HOTA", "DetA", "AssA", "LocA", "DetRe", "DetPr", "AssRe", "AssPr",
                                "HOTA(0)", "LocA(0)")},
    **{k: ("CLEAR", k) for k in ("MOTA", "MOTP", "MODA", "CLR_Re", "CLR_Pr", "MTR", "PTR", "MLR", "CLR_TP",
                                 "IDSW", "MT", "PT", "ML", "Frag")},
    "FP": ("CLEAR", "CLR_FP"), "FN": ("CLEAR", "CLR_FN"),
    **{k: ("Identity", k) for k in ("IDF1", "IDP", "IDR", "IDTP", "IDFN", "IDFP")},
    **{k: ("Count", v) for k, v in (("GT_Dets", "GT_Dets"), ("Dets", "Dets"), ("GT_IDs", "GT_IDs"),
                                    ("IDs", "IDs"))},
}


def run_trackeval(gt_root, results_dir, benchmark, seq_lengths=None):
    """TrackEval's own pipeline on `<gt_root>/<SEQ>/gt/gt.txt` and `<results_dir>/<SEQ>.txt`."""
    gt_root, results_dir = Path(gt_root), Path(results_dir)
    seqs = sorted(p.name for p in gt_root.iterdir() if (p / "gt" / "gt.txt").is_file())
    seq_info = {s: (seq_lengths or {}).get(s) for s in seqs}  # None: TrackEval reads seqinfo.ini
    config = dict(GT_FOLDER=str(gt_root), TRACKERS_FOLDER=str(results_dir.parent),
                  TRACKERS_TO_EVAL=[results_dir.name], TRACKER_SUB_FOLDER="", SKIP_SPLIT_FOL=True,
                  SEQ_INFO=seq_info, BENCHMARK=benchmark, PRINT_CONFIG=False,
                  OUTPUT_FOLDER=str(results_dir.parent / "_trackeval_out"))
    quiet = dict(USE_PARALLEL=False, PRINT_RESULTS=False, PRINT_CONFIG=False, TIME_PROGRESS=False,
                 OUTPUT_SUMMARY=False, OUTPUT_DETAILED=False, PLOT_CURVES=False, OUTPUT_EMPTY_CLASSES=False)
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = trackeval.Evaluator(quiet)
        dataset = trackeval.datasets.MotChallenge2DBox(config)
        metrics = [trackeval.metrics.HOTA(), trackeval.metrics.CLEAR({"PRINT_CONFIG": False}),
                   trackeval.metrics.Identity({"PRINT_CONFIG": False})]  # Count is added by Evaluator
        res, msg = evaluator.evaluate([dataset], metrics)
    assert msg["MotChallenge2DBox"][results_dir.name] == "Success", msg
    out = {}
    for seq, by_class in res["MotChallenge2DBox"][results_dir.name].items():
        r = by_class["pedestrian"]
        out["COMBINED" if seq == "COMBINED_SEQ" else seq] = {
            k: float(np.mean(r[m][f])) for k, (m, f) in TE_FIELDS.items()}
    return out


def assert_same(ours, ref, rel=1e-9):
    assert set(ours) == set(ref)
    for seq in ref:
        for key, want in ref[seq].items():
            got = ours[seq][key]
            assert got == pytest.approx(want, rel=rel, abs=1e-12), f"{seq} {key}: ours {got!r}, ref {want!r}"


# ------------------------------------------------------------------------------------------ random cases

def random_sequence(rng, num_frames, num_objects, integer_boxes):
    """gt rows [N, 9] (pedestrians, distractors, ignored classes) and results rows [M, 10] with noise,
    misses, id switches, swaps, duplicates and false positives."""
    gt, res = [], []
    next_id = 1
    for oid in range(1, num_objects + 1):
        first = int(rng.integers(1, num_frames + 1))
        last = int(rng.integers(first, num_frames + 1))
        frames = np.arange(first, last + 1)
        n = len(frames)
        w = rng.uniform(20, 80)
        xy = rng.uniform(0, 400, size=2) + np.cumsum(rng.normal(0, 6, size=(n, 2)), axis=0)
        boxes = np.column_stack([xy, np.full(n, w), np.full(n, 2 * w)]) * rng.uniform(0.95, 1.05, (n, 4))
        if integer_boxes:
            boxes = np.maximum(np.round(boxes), 1)
        cls = int(rng.choice([1] * 8 + [2, 7, 8, 12, 6, 3, 9]))
        consider = int(cls == 1 and rng.random() > 0.1)
        gt.append(np.column_stack([frames, np.full(n, oid), boxes, np.full(n, consider), np.full(n, cls),
                                   rng.random(n)]))
        if cls not in (1, 2, 7, 8, 12) or rng.random() < 0.2:
            continue
        seen = rng.random(n) > rng.uniform(0, 0.4)
        ids = np.full(n, next_id)
        for cut in rng.integers(0, n, size=rng.integers(0, 3)):
            next_id += 1
            ids[cut:] = next_id
        next_id += 1
        noisy = boxes + rng.normal(0, rng.uniform(0.02, 0.2), (n, 4)) * boxes[:, [2, 3, 2, 3]]
        noisy[:, 2:] = np.maximum(noisy[:, 2:], 1)
        if integer_boxes:
            noisy = np.maximum(np.round(noisy), 1)
        rows = np.column_stack([frames, ids, noisy, rng.random(n), -np.ones((n, 3))])[seen]
        res.append(rows)
        if rng.random() < 0.15 and len(rows):                       # a duplicate track: exact ties
            dup = rows.copy()
            dup[:, 1] = next_id
            next_id += 1
            res.append(dup)
    for _ in range(int(rng.integers(0, num_frames // 2 + 1))):  # false positives
        f = int(rng.integers(1, num_frames + 1))
        box = np.r_[rng.uniform(0, 450, 2), rng.uniform(10, 90, 2)]
        res.append(np.r_[f, next_id if rng.random() < 0.5 else next_id + 1, box, 0.5, -1, -1, -1][None])
        next_id += 2
    res = np.concatenate(res) if res else np.zeros((0, 10))
    if len(res) > 1 and rng.random() < 0.5:                         # swap two ids from some frame on
        a, b = rng.choice(np.unique(res[:, 1]), 2, replace=False)
        later = res[:, 0] >= rng.integers(1, num_frames + 1)
        is_a, is_b = later & (res[:, 1] == a), later & (res[:, 1] == b)
        res[is_a, 1], res[is_b, 1] = b, a
    if len(res):  # one id per frame: a swap may collide
        _, first_of = np.unique(res[:, 0] * 1e6 + res[:, 1], return_index=True)
        res = res[np.sort(first_of)]
    return np.concatenate(gt), res[rng.permutation(len(res))]


def write_case(root, rng, num_seqs, integer_boxes=False, empty_results=(), frames=(5, 60), objects=(1, 25)):
    gt_root, res_dir = root / "gt", root / "trackers" / "ours"
    res_dir.mkdir(parents=True)
    lengths = {}
    for s in range(num_seqs):
        name = f"SEQ-{s:02d}"
        num_frames = int(rng.integers(*frames))
        gt, res = random_sequence(rng, num_frames, int(rng.integers(*objects)), integer_boxes)
        (gt_root / name / "gt").mkdir(parents=True)
        (gt_root / name / "seqinfo.ini").write_text(f"[Sequence]\nname={name}\nseqLength={num_frames}\n")
        np.savetxt(gt_root / name / "gt" / "gt.txt", gt[np.lexsort((gt[:, 0], gt[:, 1]))], delimiter=",",
                   fmt=["%d", "%d", "%.3f", "%.3f", "%.3f", "%.3f", "%d", "%d", "%.3f"])
        if name in empty_results:
            res = res[:0]
        np.savetxt(res_dir / f"{name}.txt", res, delimiter=",",
                   fmt=["%d", "%d", "%.3f", "%.3f", "%.3f", "%.3f", "%.3f", "%d", "%d", "%d"])
        lengths[name] = num_frames
    return gt_root, res_dir, lengths


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("benchmark", ["MOT17", "MOT20", "MOT15"])
def test_random_cases_equal_trackeval(tmp_path, seed, benchmark):
    rng = np.random.default_rng(1000 * seed + len(benchmark) + ord(benchmark[-1]))
    gt_root, res_dir, _ = write_case(tmp_path, rng, num_seqs=3, integer_boxes=seed % 3 == 0,
                                     empty_results={"SEQ-01"} if seed % 4 == 1 else ())
    ours = evaluate_mot(gt_root, res_dir, benchmark=benchmark)
    assert_same(ours, run_trackeval(gt_root, res_dir, benchmark))


def test_crowded_frames_equal_trackeval(tmp_path):
    """Many overlapping boxes per frame: every frame needs the full per-frame solve, row sums of
    three or more overlaps exercise the dense summation path."""
    rng = np.random.default_rng(7)
    gt_root, res_dir, _ = write_case(tmp_path, rng, num_seqs=2)
    for gt_file in gt_root.glob("*/gt/gt.txt"):
        rows = np.loadtxt(gt_file, delimiter=",", ndmin=2)
        rows[:, 2:4] = rows[:, 2:4] % 60                                # squeeze everything together
        np.savetxt(gt_file, rows, delimiter=",", fmt=["%d", "%d"] + ["%.3f"] * 4 + ["%d", "%d", "%.3f"])
    for res_file in res_dir.glob("*.txt"):
        rows = np.loadtxt(res_file, delimiter=",", ndmin=2)
        if len(rows):
            rows[:, 2:4] = rows[:, 2:4] % 60
            np.savetxt(res_file, rows, delimiter=",", fmt="%.3f")
    ours = evaluate_mot(gt_root, res_dir, benchmark="MOT17")
    assert_same(ours, run_trackeval(gt_root, res_dir, "MOT17"))


@pytest.mark.parametrize("benchmark", ["MOT17", "MOT20"])
def test_longer_sequences_equal_trackeval(tmp_path, benchmark):
    rng = np.random.default_rng(21)
    gt_root, res_dir, _ = write_case(tmp_path, rng, num_seqs=2, frames=(300, 400), objects=(60, 80))
    ours = evaluate_mot(gt_root, res_dir, benchmark=benchmark)
    assert ours["COMBINED"]["GT_Dets"] > 5000 and ours["COMBINED"]["IDSW"] > 10
    assert_same(ours, run_trackeval(gt_root, res_dir, benchmark))


def test_missing_ok_scores_empty_like_trackeval(tmp_path):
    rng = np.random.default_rng(3)
    gt_root, res_dir, _ = write_case(tmp_path, rng, num_seqs=2, empty_results={"SEQ-01"})
    (res_dir / "SEQ-01.txt").unlink()
    ours = evaluate_mot(gt_root, res_dir, missing_ok=True)
    (res_dir / "SEQ-01.txt").write_text("")
    assert_same(ours, run_trackeval(gt_root, res_dir, "MOT17"))


# -------------------------------------------------------------------------- vectorized pieces, brute force

def test_pair_ious_equal_trackeval_dense_iou():
    rng = np.random.default_rng(0)
    frames_g = np.sort(rng.integers(0, 20, 300))
    frames_t = np.sort(rng.integers(0, 20, 250))
    gt = np.column_stack([rng.uniform(0, 300, (300, 2)), rng.uniform(1, 90, (300, 2))])
    trk = np.column_stack([rng.uniform(0, 300, (250, 2)), rng.uniform(1, 90, (250, 2))])
    gt[:20] = np.round(gt[:20])
    trk[:20] = gt[:20]                                                  # identical boxes: IoU exactly 1
    g_start = np.searchsorted(frames_g, np.arange(21))
    t_start = np.searchsorted(frames_t, np.arange(21))
    g, t, s = pair_ious(gt, trk, frames_g, frames_t, t_start)
    for f in range(20):
        a, b = gt[g_start[f]:g_start[f + 1]], trk[t_start[f]:t_start[f + 1]]
        dense = trackeval.datasets._base_dataset._BaseDataset._calculate_box_ious(a, b)
        ours = np.zeros_like(dense)
        in_f = (g >= g_start[f]) & (g < g_start[f + 1])
        ours[g[in_f] - g_start[f], t[in_f] - t_start[f]] = s[in_f]
        np.testing.assert_array_equal(ours, dense)                      # bit for bit


def test_sparse_identity_matching_equals_dense_assignment():
    from scipy.optimize import linear_sum_assignment

    rng = np.random.default_rng(1)
    for _ in range(50):
        dense = rng.integers(0, 6, size=(rng.integers(1, 25), rng.integers(1, 25)))
        dense = dense * (rng.random(dense.shape) < rng.uniform(0.05, 0.5))
        r, c = np.nonzero(dense)
        ri, ci = linear_sum_assignment(dense, maximize=True)
        assert max_weight_matching(r, c, dense[r, c].astype(float)) == dense[ri, ci].sum()


# ------------------------------------------------------------------------------ motmetrics' TUD sequences

def _tud_case(tmp_path):
    gt_root, res_dir = tmp_path / "gt", tmp_path / "trackers" / "motmetrics"
    res_dir.mkdir(parents=True)
    for name in ("TUD-Campus", "TUD-Stadtmitte"):
        (gt_root / name / "gt").mkdir(parents=True)
        gt = (MM_DATA / name / "gt.txt").read_text()
        res = (MM_DATA / name / "test.txt").read_text()
        (gt_root / name / "gt" / "gt.txt").write_text(gt)
        (res_dir / f"{name}.txt").write_text(res)
        length = max(int(float(line.split(",")[0])) for line in (gt + res).splitlines() if line.strip())
        (gt_root / name / "seqinfo.ini").write_text(f"[Sequence]\nname={name}\nseqLength={length}\n")
    return gt_root, res_dir


# motmetrics/tests/test_metrics.py::test_motchallenge_files asserts these (atol 1e-3):
# idf1 idp idr recall precision num_unique_objects MT PT ML FP FN IDSW Frag MOTA MOTP(distance)
MM_TUD_EXPECTED = {
    "TUD-Campus": [0.557659, 0.729730, 0.451253, 0.582173, 0.941441, 8, 1, 6, 1, 13, 150, 7, 7, 0.526462, 0.277201],
    "TUD-Stadtmitte": [0.644619, 0.819760, 0.531142, 0.608997, 0.939920, 10, 5, 4, 1, 45, 452, 7, 6, 0.564014,
                       0.345904],
    "COMBINED": [0.624296, 0.799176, 0.512211, 0.602640, 0.940268, 18, 6, 10, 2, 58, 602, 14, 13, 0.555116,
                 0.330177],
}


def test_tud_reproduces_motmetrics_asserted_values_and_trackeval(tmp_path):
    gt_root, res_dir = _tud_case(tmp_path)
    ours = evaluate_mot(gt_root, res_dir, benchmark="MOT15")
    for seq, want in MM_TUD_EXPECTED.items():
        r = ours[seq]
        got = [r["IDF1"], r["IDP"], r["IDR"], r["CLR_Re"], r["CLR_Pr"], r["GT_IDs"], r["MT"], r["PT"], r["ML"],
               r["FP"], r["FN"], r["IDSW"], r["Frag"], r["MOTA"], 1 - r["MOTP"]]
        np.testing.assert_allclose(got, want, atol=1e-3, err_msg=seq)
    assert_same(ours, run_trackeval(gt_root, res_dir, "MOT15"))
    assert ours["COMBINED"]["HOTA"] == pytest.approx(0.39996, abs=1e-5)  # TrackEval's printed 39.996


# ------------------------------------------------------------------------------- motmetrics, random cases

def _iou_distances(gt_boxes, hyp_boxes):
    """motmetrics' IoU distance (1 - IoU, NaN beyond 0.5) without `np.asfarray`, gone in NumPy 2."""
    a = np.asarray(gt_boxes, float).reshape(-1, 4)
    b = np.asarray(hyp_boxes, float).reshape(-1, 4)
    ious = trackeval.datasets._base_dataset._BaseDataset._calculate_box_ious(a, b)
    dist = 1 - ious
    dist[ious < 0.5] = np.nan
    return dist


def motmetrics_summary(gt_rows, res_rows, num_frames):
    """motmetrics' CLEAR and Identity on one sequence (one accumulator: no merge_event_dataframes,
    which needs DataFrame.append, gone in pandas 2)."""
    acc = mm.MOTAccumulator(auto_id=False)
    for f in range(1, num_frames + 1):
        g, h = gt_rows[gt_rows[:, 0] == f], res_rows[res_rows[:, 0] == f]
        acc.update(g[:, 1].astype(int), h[:, 1].astype(int), _iou_distances(g[:, 2:6], h[:, 2:6]), frameid=f)
    metrics = ["idf1", "idp", "idr", "idtp", "num_false_positives", "num_misses", "num_switches", "mota",
               "motp", "mostly_tracked", "num_objects"]
    return mm.metrics.create().compute(acc, metrics=metrics, return_dataframe=False)


@pytest.mark.parametrize("seed", range(6))
def test_random_cases_agree_with_motmetrics(tmp_path, seed):
    """Where the rules agree. Identity metrics always do. CLEAR does when no gt is ever left
    unmatched and then matched again (motmetrics keeps a gt's match across unmatched frames, the
    official tool only from the previous frame) and when no gt is tracked exactly 80% of its frames
    (MT: motmetrics >= 0.8, official > 0.8): here every pedestrian is seen in all its frames and
    track lengths are never multiples of 5."""
    rng = np.random.default_rng(seed)
    gt_root, res_dir = tmp_path / "gt", tmp_path / "trackers" / "t"
    res_dir.mkdir(parents=True)
    num_frames = 40
    gt_rows, res_rows, next_id = [], [], 1
    for oid in range(1, 12):
        n = int(rng.choice([7, 11, 13, 17, 19, 23, 29, 31, 37]))
        first = int(rng.integers(1, num_frames - n + 2))
        frames = np.arange(first, first + n)
        xy = rng.uniform(0, 500, 2) + np.cumsum(rng.normal(0, 4, (n, 2)), axis=0)
        boxes = np.column_stack([xy, np.full((n, 2), [40.0, 90.0])])
        gt_rows.append(np.column_stack([frames, np.full(n, oid), boxes, np.ones(n), np.ones(n), np.ones(n)]))
        ids = np.full(n, next_id)
        ids[int(rng.integers(0, n)):] += 1 if rng.random() < 0.5 else 0   # an identity switch
        next_id += 2
        noisy = boxes + rng.normal(0, 1.0, (n, 4))                         # IoU stays well above 0.5
        res_rows.append(np.column_stack([frames, ids, noisy, np.ones(n), -np.ones((n, 3))]))
    for _ in range(30):                                                    # false positives
        res_rows.append(np.r_[rng.integers(1, num_frames + 1), next_id, rng.uniform(0, 500, 2), 40, 90,
                              1, -1, -1, -1][None])
        next_id += 1
    gt, res = np.concatenate(gt_rows), np.concatenate(res_rows)
    (gt_root / "S" / "gt").mkdir(parents=True)
    (gt_root / "S" / "seqinfo.ini").write_text(f"[Sequence]\nseqLength={num_frames}\n")
    np.savetxt(gt_root / "S" / "gt" / "gt.txt", gt, delimiter=",", fmt="%.4f")
    np.savetxt(res_dir / "S.txt", res, delimiter=",", fmt="%.4f")
    ours = evaluate_mot(gt_root, res_dir, benchmark="MOT17")["S"]
    theirs = motmetrics_summary(np.loadtxt(gt_root / "S" / "gt" / "gt.txt", delimiter=","),
                                np.loadtxt(res_dir / "S.txt", delimiter=","), num_frames)
    assert ours["IDTP"] == theirs["idtp"]
    for key, mkey in (("IDF1", "idf1"), ("IDP", "idp"), ("IDR", "idr"), ("MOTA", "mota")):
        assert ours[key] == pytest.approx(theirs[mkey], rel=1e-12), key
    assert (ours["FP"], ours["FN"], ours["IDSW"], ours["MT"]) == (
        theirs["num_false_positives"], theirs["num_misses"], theirs["num_switches"], theirs["mostly_tracked"])
    assert ours["MOTP"] == pytest.approx(1 - theirs["motp"], rel=1e-12)


# --------------------------------------------------------------------------------------------- real data

def test_mot17_mini_gt_against_itself_is_perfect(shared_dir, tmp_path):
    root = shared_dir / "data" / "MOT17-mini" / "train"
    for seq in ("MOT17-02-FRCNN", "MOT17-04-FRCNN"):
        gt = read_gt(root / seq / "gt" / "gt.txt")
        ped = (gt.cls == 1) & (gt.score == 1)
        write_results(tmp_path / f"{seq}.txt", gt.frame[ped], gt.id[ped], gt.boxes[ped])
    res = evaluate_mot(root, tmp_path, benchmark="MOT17")
    for key in ("HOTA", "DetA", "AssA", "LocA", "MOTA", "MOTP", "IDF1", "IDP", "IDR"):
        assert res["COMBINED"][key] == pytest.approx(1.0, abs=1e-12), key
    assert res["COMBINED"]["GT_Dets"] == 88 + 336
    assert (res["COMBINED"]["FP"], res["COMBINED"]["FN"], res["COMBINED"]["IDSW"]) == (0, 0, 0)


def test_mot17_mini_perturbed_equals_trackeval(shared_dir, tmp_path):
    """Real MOT17 gt (all classes, distractors, the full-length seqinfo.ini): tracker boxes from all
    gt rows (distractors included, so the preprocessing removes some), jittered, with switches."""
    root = shared_dir / "data" / "MOT17-mini" / "train"
    rng = np.random.default_rng(0)
    res_dir = tmp_path / "trackers" / "jitter"
    res_dir.mkdir(parents=True)
    for seq in ("MOT17-02-FRCNN", "MOT17-04-FRCNN"):
        gt = read_gt(root / seq / "gt" / "gt.txt")
        keep = rng.random(len(gt)) < 0.85
        boxes = gt.boxes + rng.normal(0, 0.08, gt.boxes.shape) * gt.boxes[:, [2, 3, 2, 3]]
        boxes[:, 2:] = np.abs(boxes[:, 2:]) + 1
        ids = gt.id + 1000 * (gt.frame > rng.integers(1, 5, len(gt)))   # some tracks change id
        write_results(res_dir / f"{seq}.txt", gt.frame[keep], ids[keep], boxes[keep], decimals=3)
    ours = evaluate_mot(root, res_dir, benchmark="MOT17")
    ref = run_trackeval(root, res_dir, "MOT17")          # TrackEval trusts seqLength (600, 1050)
    assert_same(ours, ref)
    assert read_sequence_info(root / "MOT17-02-FRCNN").num_frames == 4


def test_results_survive_write_read_round_trip(tmp_path):
    rng = np.random.default_rng(5)
    frames = rng.integers(1, 10, 50)
    ids = np.arange(50)
    boxes = rng.uniform(1, 100, (50, 4))
    write_results(tmp_path / "S.txt", frames, ids, boxes, rng.random(50), decimals=6)
    back = read_results(tmp_path / "S.txt")
    order = np.lexsort((ids, frames))
    np.testing.assert_array_equal(back.frame, frames[order])
    np.testing.assert_allclose(back.boxes, boxes[order], atol=5e-7)
    assert pd.read_csv(tmp_path / "S.txt", header=None).shape == (50, 10)


def test_empty_files_equal_trackeval(tmp_path):
    """A sequence without gt, one without results, one without either: the official tool's early
    returns (e.g. MOTA 0 for a sequence with only false positives) and how they combine."""
    rng = np.random.default_rng(11)
    gt_root, res_dir, _ = write_case(tmp_path, rng, num_seqs=4, empty_results={"SEQ-01", "SEQ-02"})
    for name in ("SEQ-02", "SEQ-03"):
        (gt_root / name / "gt" / "gt.txt").write_text("")
    ours = evaluate_mot(gt_root, res_dir, benchmark="MOT17")
    assert ours["SEQ-03"]["FP"] > 0 and ours["SEQ-03"]["MOTA"] == 0.0
    assert_same(ours, run_trackeval(gt_root, res_dir, "MOT17"))
