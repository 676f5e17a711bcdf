"""The synthetic MOTChallenge generator: determinism, layout, entering/leaving, occlusion."""
import configparser
import hashlib

import numpy as np

from trackformer_trackq.synthetic import SyntheticConfig, generate_dataset, generate_sequence


def _digest(d):
    h = hashlib.sha256()
    for p in sorted(d.rglob("*")):
        if p.is_file():
            h.update(p.name.encode()); h.update(p.read_bytes())
    return h.hexdigest()


def test_same_seed_same_files(tmp_path):
    cfg = SyntheticConfig(seq_length=15)
    generate_sequence(tmp_path / "a", cfg, 7, name="S")
    generate_sequence(tmp_path / "b", cfg, 7, name="S")
    generate_sequence(tmp_path / "c", cfg, 8, name="S")
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b") != _digest(tmp_path / "c")


def test_layout_and_ground_truth(tmp_path):
    cfg = SyntheticConfig(seq_length=80, width=128, height=96, spawn_prob=0.3)
    generate_sequence(tmp_path / "S", cfg, 3)
    ini = configparser.ConfigParser(); ini.optionxform = str
    ini.read(tmp_path / "S" / "seqinfo.ini")
    assert ini["Sequence"]["seqLength"] == "80" and ini["Sequence"]["imWidth"] == "128"
    assert len(list((tmp_path / "S" / "img1").glob("*.jpg"))) == 80
    from PIL import Image
    assert Image.open(tmp_path / "S" / "img1" / "000080.jpg").size == (128, 96)
    gt = np.loadtxt(tmp_path / "S" / "gt" / "gt.txt", delimiter=",")
    assert gt.shape[1] == 9 and (gt[:, 6] == 1).all() and (gt[:, 7] == 1).all()
    assert ((gt[:, 8] >= 0) & (gt[:, 8] <= 1)).all()
    x1, y1 = gt[:, 2] - 1, gt[:, 3] - 1
    assert (x1 >= 0).all() and (y1 >= 0).all()
    assert (x1 + gt[:, 4] <= 128 + 1e-6).all() and (y1 + gt[:, 5] <= 96 + 1e-6).all()
    first = {i: gt[gt[:, 1] == i, 0].min() for i in np.unique(gt[:, 1])}
    last = {i: gt[gt[:, 1] == i, 0].max() for i in np.unique(gt[:, 1])}
    assert any(f > 1 for f in first.values()), "objects must enter"
    assert any(v < 80 for v in last.values()), "objects must leave"
    # every partly hidden box is either cut by the border or overlapped by another object's box
    occluded = 0
    for r in gt[gt[:, 8] < 0.97]:
        same = gt[(gt[:, 0] == r[0]) & (gt[:, 1] != r[1])]
        ox = np.minimum(r[2] + r[4], same[:, 2] + same[:, 4]) - np.maximum(r[2], same[:, 2])
        oy = np.minimum(r[3] + r[5], same[:, 3] + same[:, 5]) - np.maximum(r[3], same[:, 3])
        overlapped = bool(((ox > 0) & (oy > 0)).any())
        at_border = r[2] - 1 < 0.5 or r[3] - 1 < 0.5 or r[2] - 1 + r[4] > 127.5 or r[3] - 1 + r[5] > 95.5
        assert overlapped or at_border
        occluded += overlapped and not at_border
    assert occluded > 0, "objects must occlude one another"
    det = np.loadtxt(tmp_path / "S" / "det" / "det.txt", delimiter=",")
    assert det.shape[1] == 10 and (det[:, 1] == -1).all() and set(det[:, 0]) <= set(range(1, 81))


def test_dataset_splits_are_cached_and_distinct(tmp_path):
    cfg = SyntheticConfig(seq_length=5)
    names = generate_dataset(tmp_path, cfg, {"train": 2, "test": 1}, seed=0)
    assert names == {"train": ["SYN-train-00", "SYN-train-01"], "test": ["SYN-test-00"]}
    a = (tmp_path / "train" / "SYN-train-00" / "gt" / "gt.txt").read_text()
    b = (tmp_path / "test" / "SYN-test-00" / "gt" / "gt.txt").read_text()
    assert a != b
    stamp = (tmp_path / "train" / "SYN-train-00" / "gt" / "gt.txt").stat().st_mtime_ns
    generate_dataset(tmp_path, cfg, {"train": 2, "test": 1}, seed=0)
    assert (tmp_path / "train" / "SYN-train-00" / "gt" / "gt.txt").stat().st_mtime_ns == stamp
