"""MOTChallenge readers and writer: real MOT17 files, and every kind of malformed input."""
import numpy as np
import pytest

from trackformer.data.mot import (list_sequences, read_det, read_gt, read_results, read_sequence,
                                  read_sequence_info, read_seqinfo, results_path, write_results)
from trackformer.errors import DataError, TrackformerError

GT_ROW = "1,1,10,20,30,60,1,1,0.5"
RES_ROW = "1,1,10.5,20,30,60,0.9,-1,-1,-1"


# ------------------------------------------------------------------------------------------ real data

def test_mot17_mini_frame_counts_come_from_img1(shared_dir):
    root = shared_dir / "data" / "MOT17-mini" / "train"
    seqs = list_sequences(root)
    assert [p.name for p in seqs] == ["MOT17-02-FRCNN", "MOT17-04-FRCNN"]
    a, b = (read_sequence(p) for p in seqs)
    assert (a.info.num_frames, a.info.seq_length) == (4, 600)         # seqinfo.ini claims the full length
    assert (b.info.num_frames, b.info.seq_length) == (8, 1050)
    assert a.info.frame_files[-1].name == "000004.jpg" and len(b.info.frame_files) == 8
    assert (a.info.width, a.info.height, a.info.frame_rate) == (1920, 1080, 30)


def test_mot17_mini_gt_and_det_contents(shared_dir):
    root = shared_dir / "data" / "MOT17-mini" / "train"
    for name, gt_rows, ids, ped, det_all, det_present in (("MOT17-02-FRCNN", 156, 39, 88, 8186, 51),
                                                          ("MOT17-04-FRCNN", 792, 99, 336, 28406, 205)):
        seq = read_sequence(root / name)
        gt = seq.gt
        assert len(gt) == gt_rows and len(np.unique(gt.id)) == ids
        assert int(((gt.cls == 1) & (gt.score == 1)).sum()) == ped
        raw = np.loadtxt(root / name / "gt" / "gt.txt", delimiter=",")
        np.testing.assert_array_equal(gt.boxes, raw[:, 2:6])          # file order kept
        np.testing.assert_array_equal(gt.visibility, raw[:, 8])
        assert len(seq.det) == det_present and seq.det.frame.max() <= seq.info.num_frames
        assert len(read_det(root / name / "det" / "det.txt")) == det_all
        assert np.all(seq.det.score >= 0.05) and np.all(seq.det.id == -1)


# ---------------------------------------------------------------------------------------- well-formed

def test_reads_whitespace_blank_lines_and_trailing_commas(tmp_path):
    f = tmp_path / "gt.txt"
    f.write_text("1 1 10 20 30 60 1 1 0.5\n\n2 1 11 20 30 60 1 1 0.5\n")
    gt = read_gt(f)
    assert list(gt.frame) == [1, 2] and list(gt.line) == [1, 3]
    f.write_text("1, 1, 10, 20, 30, 60, 0.9, -1, -1, -1,\n2,1,10,20,30,60,0.9,-1,-1,-1,\n")
    res = read_results(f)
    np.testing.assert_array_equal(res.boxes[1], [10, 20, 30, 60])
    f.write_text("")
    assert len(read_results(f)) == 0


def test_det_accepts_7_and_10_columns_and_filters_frames(tmp_path):
    f = tmp_path / "det.txt"
    f.write_text("3,-1,1,2,3,4,0.9\n1,-1,1,2,3,4,0.5\n9,-1,1,2,3,4,0.7\n")
    det = read_det(f, num_frames=3)
    assert list(det.frame) == [3, 1] and list(det.score) == [0.9, 0.5]
    f.write_text("1,-1,1,2,3,4,0.9,-1,-1,-1\n")
    assert len(read_det(f)) == 1


def test_mot15_gt_has_ten_columns(tmp_path):
    f = tmp_path / "gt.txt"
    f.write_text("1,1,399,182,121,229,1,4.48,5.5,0\n")
    gt = read_gt(f)
    assert gt.cls[0] == -1 and gt.score[0] == 1


def test_sequence_without_img1_uses_seqlength(tmp_path):
    (tmp_path / "S").mkdir()
    (tmp_path / "S" / "seqinfo.ini").write_text("[Sequence]\nname=S\nseqLength=7\nimWidth=10\n")
    info = read_sequence_info(tmp_path / "S")
    assert (info.num_frames, info.width, info.frame_files) == (7, 10, [])


# ------------------------------------------------------------------------------------------ malformed

@pytest.mark.parametrize("rows, line, fragment", [
    ([GT_ROW, "2,1,10,20,30,60,1,1"], 2, "8 columns where the file has 9"),
    (["1,1,10,20,30,60,1,1"], 1, "8 columns, expected 9 or 10"),
    ([GT_ROW, "2,1,10,abc,30,60,1,1,0.5"], 2, "non-numeric value 'abc'"),
    ([GT_ROW, "2,1,10,20,0,60,1,1,0.5"], 2, "non-positive box size 0x60"),
    ([GT_ROW, "2,1,10,20,30,-5,1,1,0.5"], 2, "non-positive box size 30x-5"),
    ([GT_ROW, GT_ROW.replace("10,20", "12,22")], 2, "id 1 occurs twice in frame 1"),
    (["0,1,10,20,30,60,1,1,0.5"], 1, "before the first frame"),
    ([GT_ROW, "1.5,2,10,20,30,60,1,1,0.5"], 2, "frame 1.5 is not an integer"),
    ([GT_ROW, "1,2.5,10,20,30,60,1,1,0.5"], 2, "id 2.5 is not an integer"),
    ([GT_ROW, "1,2,10,20,30,nan,1,1,0.5"], 2, "non-finite"),
    ([GT_ROW, "1,2,10,20,30,60,1,1.5,0.5"], 2, "class 1.5 is not an integer"),
])
def test_malformed_gt_names_file_and_line(tmp_path, rows, line, fragment):
    f = tmp_path / "gt.txt"
    f.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError) as info:
        read_gt(f)
    assert info.value.line == line and info.value.path == str(f)
    assert fragment in str(info.value) and str(info.value).startswith(f"{f}:{line}: ")
    assert isinstance(info.value, TrackformerError)


def test_frames_outside_the_sequence_fail(tmp_path):
    f = tmp_path / "res.txt"
    f.write_text(RES_ROW + "\n\n" + RES_ROW.replace("1,1,", "5,1,", 1) + "\n")
    assert len(read_results(f, num_frames=5)) == 2
    with pytest.raises(DataError, match=r"res.txt:3: frame 5 is outside the sequence \(frames 1..4\)"):
        read_results(f, num_frames=4)


def test_results_column_counts(tmp_path):
    f = tmp_path / "res.txt"
    f.write_text("1,1,10,20,30,60\n")
    with pytest.raises(DataError, match="6 columns, expected 7 or 8 or 9 or 10"):
        read_results(f)
    f.write_text("1,1,10,20,30,60,0.5\n")
    assert read_results(f).cls[0] == -1


def test_unreadable_and_binary_files(tmp_path):
    with pytest.raises(DataError, match="cannot read"):
        read_gt(tmp_path / "missing.txt")
    f = tmp_path / "gt.txt"
    f.write_bytes(b"\xff\xfe\x00\x01,2\n")
    with pytest.raises(DataError):
        read_gt(f)


@pytest.mark.parametrize("text, fragment", [
    ("no section\n", "not an ini file"),
    ("[Other]\nx=1\n", "no [Sequence] section"),
    ("[Sequence]\nseqLength=abc\n", "seqlength='abc' is not a number"),
    ("[Sequence]\nseqLength=0\n", "must be positive"),
])
def test_bad_seqinfo(tmp_path, text, fragment):
    f = tmp_path / "seqinfo.ini"
    f.write_text(text)
    with pytest.raises(DataError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        read_seqinfo(f)


def test_img1_with_gap_and_missing_length(tmp_path):
    img = tmp_path / "S" / "img1"
    img.mkdir(parents=True)
    for k in (1, 2, 4):
        (img / f"{k:06d}.jpg").write_bytes(b"")
    with pytest.raises(DataError, match="frame 3 is missing"):
        read_sequence_info(tmp_path / "S")
    (tmp_path / "T").mkdir()
    with pytest.raises(DataError, match="cannot tell the sequence length"):
        read_sequence_info(tmp_path / "T")


# --------------------------------------------------------------------------------------------- writing

def test_write_results_sorted_ten_columns(tmp_path):
    out = write_results(tmp_path / "sub" / "S.txt", [2, 1, 1], [5, 9, 3], [[1, 2, 3, 4]] * 3, [0.5, 0.25, 1])
    lines = out.read_text().splitlines()
    assert lines == ["1,3,1.00,2.00,3.00,4.00,1,-1,-1,-1", "1,9,1.00,2.00,3.00,4.00,0.25,-1,-1,-1",
                     "2,5,1.00,2.00,3.00,4.00,0.5,-1,-1,-1"]
    assert list(read_results(out).id) == [3, 9, 5]


@pytest.mark.parametrize("frames, ids, boxes, fragment", [
    ([1, 1], [3, 3], [[1, 2, 3, 4]] * 2, "id 3 occurs twice in frame 1"),
    ([1, 2], [3, 3], [[1, 2, 0, 4]] * 2, "non-positive box size"),
    ([0], [3], [[1, 2, 3, 4]], "before the first frame"),
    ([1], [3], [[1, 2, np.inf, 4]], "non-finite"),
    ([1, 2], [3], [[1, 2, 3, 4]], "2 frames, 1 ids"),
])
def test_write_results_validates_before_touching_the_file(tmp_path, frames, ids, boxes, fragment):
    target = tmp_path / "S.txt"
    target.write_text("previous content\n")
    with pytest.raises(DataError, match=fragment):
        write_results(target, frames, ids, boxes)
    assert target.read_text() == "previous content\n"
    assert [p.name for p in tmp_path.iterdir()] == ["S.txt"]            # no temporary file left


def test_results_path_rejects_odd_names(tmp_path):
    assert results_path(tmp_path, "MOT17-02-FRCNN") == tmp_path / "MOT17-02-FRCNN.txt"
    with pytest.raises(DataError):
        results_path(tmp_path, "../escape")
