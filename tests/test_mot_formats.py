"""Real MOTChallenge formats (MOT15/PETS/MOT17 gt, 7/10-column detections) and frame ranges."""
import numpy as np
import pytest

from trackformer.data.frame_range import FrameRange, parse_frame_range, split_entry
from trackformer.data.mot import Tracks, read_det, read_gt, read_sequence
from trackformer.errors import ConfigError, DataError
from trackformer.eval.mot import evaluate_mot, evaluate_sequence, restrict_to_range, summarize

# (frame, id, x, y, w, h): boxes leaving the image on the left (x < 1) and on the right
BOXES = np.array([[1, 1, -30.5, 182, 121, 229], [1, 2, 282, 201, 92, 184], [2, 1, -28, 183, 120, 230],
                  [2, 2, 600.25, 200, 91, 185], [3, 2, 610, 199, 92.5, 186], [3, 3, 63, 153, 82, 288]])


def _variants():
    """The same boxes in every gt convention the issue lists; rows shuffled, CRLF, whitespace."""
    b = [[f"{v:g}" for v in r] for r in BOXES]
    mot17 = [",".join(r + ["1", "1", "0.8"]) for r in b]
    mot15 = [",".join(r + ["1", "-1", "-1", "-1"]) for r in b]
    pets = [",".join(r + ["-1", f"{-11773 + i}", f"{-14337 - i}", "0"]) for i, r in enumerate(b)]
    order = [3, 0, 5, 1, 4, 2]
    return {"mot17": "\n".join(mot17) + "\n", "mot15": "\n".join(mot15) + "\n", "pets09": "\n".join(pets),
            "mot15_shuffled_crlf": "\r\n".join(mot15[i] for i in order) + "\r\n",
            "mot17_spaces": "\n".join(" ".join(r.split(",")) for r in mot17) + "\n"}


def _sorted(tracks):
    o = np.lexsort((tracks.id, tracks.frame))
    return np.column_stack([tracks.frame[o], tracks.id[o], tracks.boxes[o]])


@pytest.mark.parametrize("name", list(_variants()))
def test_every_gt_variant_gives_the_same_boxes(tmp_path, name):
    f = tmp_path / "gt.txt"
    f.write_bytes(_variants()[name].encode())
    gt = read_gt(f, num_frames=3)
    np.testing.assert_array_equal(_sorted(gt), BOXES)        # boxes outside the image are kept as they are
    assert np.all(gt.score != 0)                              # -1 (PETS09) and 1 both mean "consider"
    assert np.all(gt.cls == (1 if name.startswith("mot17") else -1))


def test_every_gt_variant_scores_the_same(tmp_path):
    """The same tracker output against each variant (MOT15 conventions need benchmark MOT15; MOT17's
    preprocessing keeps every class-1 row): identical metrics."""
    rng = np.random.default_rng(0)
    res = Tracks.from_arrays(BOXES[:, 0], BOXES[:, 1] % 2, BOXES[:, 2:] + rng.normal(0, 3, (6, 4)))
    seen = []
    for name, text in _variants().items():
        f = tmp_path / f"{name}.txt"
        f.write_text(text)
        bench = "MOT17" if name.startswith("mot17") else "MOT15"
        seen.append(summarize(evaluate_sequence(read_gt(f), res, 3, bench)))
    assert all(s == seen[0] for s in seen) and seen[0]["GT_Dets"] == 6


@pytest.mark.parametrize("sep,extra", [(",", ""), (",", ",-1,-1,-1"), (" ", " -1 -1 -1")])
def test_detections_7_or_10_columns_unnormalised_any_order(tmp_path, sep, extra):
    rows = [(2, 600.25, 200, 91, 185, 133.2), (1, -30.5, 182, 121, 229, 0.14), (1, 282, 201, 92, 184, 51.8)]
    f = tmp_path / "det.txt"
    f.write_text("".join(sep.join(f"{v:g}" for v in (r[0], -1) + r[1:]) + extra + "\n" for r in rows))
    det = read_det(f)
    o = np.lexsort((det.boxes[:, 0], det.frame))
    np.testing.assert_array_equal(det.boxes[o], [r[1:5] for r in sorted(rows)])
    np.testing.assert_array_equal(det.score[o], [r[5] for r in sorted(rows)])   # scores kept as written


@pytest.mark.parametrize("reader,text,message", [
    (read_gt, "1,1,10,20,30,60,1,-1,-1,-1\n2,1,10,20,30,60,1,-1,-1\n", "gt.txt:2: 9 columns where the file has 10"),
    (read_gt, "1,1,10,20,30,60,-1,12.5,-3,0\n2,1,10,x,30,60,-1,1,1,0\n", "gt.txt:2: non-numeric value 'x'"),
    (read_gt, "1,1,10,20,30,60,1,1,1\n\n3,1,10,20,0,60,1,1,1\n", "gt.txt:3: non-positive box size 0x60"),
    (read_det, "1,-1,10,20,30,60,5.5\n2,-1,10,20,30,60\n", "gt.txt:2: 6 columns where the file has 7"),
    (read_det, "1,-1,10,20,30,60,5.5,-1\n", "gt.txt:1: 8 columns, expected 7 or 10"),
])
def test_malformed_row_is_one_line_naming_file_and_line(tmp_path, reader, text, message):
    f = tmp_path / "gt.txt"
    f.write_text(text)
    with pytest.raises(DataError) as info:
        reader(f)
    assert str(info.value).endswith(message) and str(info.value).startswith(str(f))
    assert "\n" not in str(info.value)


def test_real_pedestrian_sequences(shared_dir):
    """The two older-format sequences of ../shared (counts from its README)."""
    root = shared_dir / "data" / "pedestrians"
    tud, pets = read_sequence(root / "TUD-Campus"), read_sequence(root / "PETS09-S3MF1")
    assert (tud.info.num_frames, len(tud.gt), len(np.unique(tud.gt.id)), len(tud.det)) == (71, 359, 8, 344)
    assert (pets.info.num_frames, len(pets.gt), len(np.unique(pets.gt.id)), len(pets.det)) == (107, 620, 7, 691)
    assert tud.gt.boxes[:, 0].min() == -30 and (tud.gt.boxes[:, 0] + tud.gt.boxes[:, 2]).max() == 682
    assert np.all(pets.gt.score == -1) and np.all(tud.gt.score == 1)
    assert 0.1 < tud.det.score.min() < 0.2 and tud.det.score.max() > 100 and pets.det.score.max() <= 1


# ------------------------------------------------------------------------------------------ frame ranges

def test_frame_range_spelling():
    assert parse_frame_range("37-71") == FrameRange(37, 71) and str(FrameRange(37, None)) == "37-"
    assert split_entry("train/TUD-Campus:37-71") == ("train/TUD-Campus", FrameRange(37, 71))
    assert split_entry("TUD-Campus") == ("TUD-Campus", None)
    assert len(FrameRange(55).resolve(107)) == 53
    with pytest.raises(ConfigError, match="frames 37-80 are not inside the sequence \\(frames 1-71\\)"):
        FrameRange(37, 80).resolve(71)
    with pytest.raises(ConfigError, match="'71-37': frames run from 1 and FIRST <= LAST"):
        parse_frame_range("71-37")
    with pytest.raises(ConfigError, match="is not a frame range"):
        parse_frame_range("37..71")


def _sequence(root, name, n_frames=71, n_ids=4):
    rows = [[f, i, 40 * i + f, 50, 30, 80, 1, -1, -1, -1] for i in range(1, n_ids + 1) for f in range(1, n_frames + 1)]
    seq = root / name
    (seq / "gt").mkdir(parents=True)
    (seq / "det").mkdir()
    (seq / "seqinfo.ini").write_text(f"[Sequence]\nname={name}\nseqLength={n_frames}\n")
    np.savetxt(seq / "gt" / "gt.txt", rows, delimiter=",", fmt="%g")
    det = [[r[0], -1, *r[2:6], 9.5] for r in rows]
    np.savetxt(seq / "det" / "det.txt", det, delimiter=",", fmt="%g")
    return np.array(rows, dtype=float)


def test_restriction_of_gt_and_detections(tmp_path):
    _sequence(tmp_path, "SEQ")
    seq = read_sequence(tmp_path / "SEQ")
    r = FrameRange(37, 71)
    gt, det = r.restrict(seq.gt), r.restrict(seq.det)
    assert gt.frame.min() == 37 and gt.frame.max() == 71 and len(gt) == 35 * 4 and len(det) == 35 * 4
    renumbered = r.restrict(seq.gt, renumber=True)
    assert renumbered.frame.min() == 1 and renumbered.frame.max() == 35
    np.testing.assert_array_equal(renumbered.boxes, gt.boxes)


def test_a_run_over_frames_37_to_71_is_scored_only_there(tmp_path):
    """Results only for 37-71 (perfect there, one id switch at 50): scored on the range, a perfect
    MOTA but the switch; scored on the whole sequence, 36 frames of misses as well."""
    gt = _sequence(tmp_path / "gt", "SEQ")
    res = gt[gt[:, 0] >= 37].copy()
    res[(res[:, 1] == 2) & (res[:, 0] >= 50), 1] = 9
    (tmp_path / "res").mkdir()
    np.savetxt(tmp_path / "res" / "SEQ.txt", res, delimiter=",", fmt="%g")
    part = evaluate_mot(tmp_path / "gt", tmp_path / "res", "MOT15", sequences=["SEQ:37-71"])["SEQ"]
    whole = evaluate_mot(tmp_path / "gt", tmp_path / "res", "MOT15")["SEQ"]
    assert (part["GT_Dets"], part["FN"], part["FP"], part["IDSW"]) == (140, 0, 0, 1)
    assert part["MOTA"] == pytest.approx(1 - 1 / 140)
    assert (whole["GT_Dets"], whole["FN"], whole["IDSW"]) == (284, 144, 1)
    # results outside the range are not scored either: a stray row at frame 5 changes nothing
    np.savetxt(tmp_path / "res" / "SEQ.txt", np.vstack([res, [5, 1, 0, 0, 10, 10, 1, -1, -1, -1]]),
               delimiter=",", fmt="%g")
    assert evaluate_mot(tmp_path / "gt", tmp_path / "res", "MOT15", sequences=["SEQ:37-71"])["SEQ"] == part


def test_range_scoring_equals_trackeval_on_the_cut_sequence(tmp_path):
    """The same numbers as the official evaluation run on files cut to 37-71 and renumbered."""
    trackeval = pytest.importorskip("trackeval")
    gt = _sequence(tmp_path / "gt", "SEQ")
    rng = np.random.default_rng(1)
    res = gt[(gt[:, 0] >= 30) & (rng.random(len(gt)) > 0.1)].copy()
    res[:, 2:6] += rng.normal(0, 4, (len(res), 4))
    res[(res[:, 1] == 3) & (res[:, 0] >= 60), 1] = 7
    (tmp_path / "res").mkdir()
    np.savetxt(tmp_path / "res" / "SEQ.txt", res, delimiter=",", fmt="%.3f")
    ours = evaluate_mot(tmp_path / "gt", tmp_path / "res", "MOT15", sequences=["SEQ:37-71"])["SEQ"]
    cut_gt, cut_res = tmp_path / "cut" / "SEQ", tmp_path / "trk" / "t"
    (cut_gt / "gt").mkdir(parents=True)
    cut_res.mkdir(parents=True)
    (cut_gt / "seqinfo.ini").write_text("[Sequence]\nname=SEQ\nseqLength=35\n")
    for rows, path in ((gt, cut_gt / "gt" / "gt.txt"), (res, cut_res / "SEQ.txt")):
        rows = rows[(rows[:, 0] >= 37) & (rows[:, 0] <= 71)].copy()
        rows[:, 0] -= 36
        np.savetxt(path, rows, delimiter=",", fmt="%.3f")
    config = dict(GT_FOLDER=str(tmp_path / "cut"), TRACKERS_FOLDER=str(tmp_path / "trk"), TRACKERS_TO_EVAL=["t"],
                  TRACKER_SUB_FOLDER="", SKIP_SPLIT_FOL=True, BENCHMARK="MOT15", PRINT_CONFIG=False,
                  SEQ_INFO={"SEQ": 35})
    ev = trackeval.Evaluator(dict(PRINT_RESULTS=False, PRINT_ONLY_COMBINED=False, PRINT_CONFIG=False,
                                  OUTPUT_SUMMARY=False, OUTPUT_DETAILED=False, PLOT_CURVES=False,
                                  TIME_PROGRESS=False, DISPLAY_LESS_PROGRESS=True, USE_PARALLEL=False))
    out, _ = ev.evaluate([trackeval.datasets.MotChallenge2DBox(config)],
                         [trackeval.metrics.CLEAR(dict(PRINT_CONFIG=False)),
                          trackeval.metrics.Identity(dict(PRINT_CONFIG=False))])
    ref = out["MotChallenge2DBox"]["t"]["SEQ"]["pedestrian"]
    assert ours["MOTA"] == pytest.approx(ref["CLEAR"]["MOTA"], abs=1e-12)
    assert ours["IDSW"] == ref["CLEAR"]["IDSW"] and ours["IDF1"] == pytest.approx(ref["Identity"]["IDF1"], abs=1e-12)


def test_restrict_to_range_in_memory():
    gt = Tracks.from_arrays([1, 2, 3, 4], [1, 1, 1, 1], [[0, 0, 10, 10]] * 4)
    g, r, n = restrict_to_range(gt, gt.select(np.array([False, True, True, True])), 4, FrameRange(2, 3))
    assert n == 2 and list(g.frame) == [1, 2] and list(r.frame) == [1, 2]
