"""PQ against panopticapi's `pq_compute` (the test-only oracle `panopticapi-lite`, installed with
--no-deps), on the coco128 panoptic annotations with perturbed predictions and on small hand-made
cases with VOID and crowd regions; GT against itself; the format's lossless round trip."""
import contextlib
import importlib.util
import io
import json
from pathlib import Path

import numpy as np
import pytest

from trackformer.data.panoptic_format import (id2rgb, load_panoptic_json, masks_to_rle, read_id_png, rgb2id,
                                              rle_to_masks, segments_from_ids, write_panoptic)
from trackformer.errors import DataError
from trackformer.eval.panoptic import pq_compute, summary

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _case_module():
    spec = importlib.util.spec_from_file_location("gen_panoptic_case", BENCH / "gen_panoptic_case.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _oracle(gt_json, pred_json, gt_folder, pred_folder):
    evaluation = pytest.importorskip("panopticapi.evaluation")
    gt, pred = json.loads(Path(gt_json).read_text()), json.loads(Path(pred_json).read_text())
    categories = {c["id"]: c for c in gt["categories"]}
    by_image = {a["image_id"]: a for a in pred["annotations"]}
    pairs = [(a, by_image[a["image_id"]]) for a in gt["annotations"]]
    with contextlib.redirect_stdout(io.StringIO()):
        stat = evaluation.pq_compute_single_core(0, pairs, str(gt_folder), str(pred_folder), categories)
    results = {}
    for name, isthing in (("All", None), ("Things", True), ("Stuff", False)):
        results[name], per_class = stat.pq_average(categories, isthing=isthing)
        if name == "All":
            results["per_class"] = per_class
    return results


def _assert_equal(ours, ref):
    for group in ("All", "Things", "Stuff"):
        assert ours[group]["n"] == ref[group]["n"]
        for key in ("pq", "sq", "rq"):
            assert abs(ours[group][key] - ref[group][key]) <= 1e-9, (group, key)
    assert set(ours["per_class"]) == set(ref["per_class"])
    for cat, values in ref["per_class"].items():
        for key in ("pq", "sq", "rq"):
            assert abs(ours["per_class"][cat][key] - values[key]) <= 1e-9, (cat, key)


@pytest.fixture(scope="module")
def coco128_panoptic(shared_dir):
    ann = shared_dir / "data" / "coco128" / "annotations"
    if not (ann / "panoptic_train2017.json").is_file():
        pytest.skip("coco128 panoptic annotations absent")
    return ann / "panoptic_train2017.json", ann / "panoptic_train2017"


@pytest.mark.parametrize("seed", [0, 1])
def test_pq_equals_panopticapi_on_coco128_perturbed(coco128_panoptic, tmp_path, seed):
    gt_json, gt_folder = coco128_panoptic
    pred_json = _case_module().write_case(gt_json, gt_folder, tmp_path / "pred.json", seed=seed)
    ours = pq_compute(gt_json, pred_json, gt_folder)
    _assert_equal(ours, _oracle(gt_json, pred_json, gt_folder, tmp_path / "pred"))
    assert 0.2 < ours["All"]["pq"] < 0.8  # the perturbation leaves TP, FP and FN to count


def test_ground_truth_against_itself_is_perfect(coco128_panoptic):
    gt_json, gt_folder = coco128_panoptic
    results = pq_compute(gt_json, gt_json, gt_folder, gt_folder)
    assert summary(results)["PQ"] == summary(results)["PQ_th"] == summary(results)["PQ_st"] == 1.0
    assert results["All"]["n"] == len({s["category_id"] for a in json.loads(gt_json.read_text())["annotations"]
                                       for s in a["segments_info"] if not s["iscrowd"]})


def test_reader_writer_round_trip_is_lossless(coco128_panoptic, tmp_path):
    gt_json, gt_folder = coco128_panoptic
    gt = load_panoptic_json(gt_json)
    pairs = []
    for ann in gt["annotations"]:
        ids = read_id_png(gt_folder / ann["file_name"])
        assert ids.dtype == np.int32
        cats = {s["id"]: s["category_id"] for s in ann["segments_info"]}
        crowd = {s["id"]: s["iscrowd"] for s in ann["segments_info"]}
        assert segments_from_ids(ids, cats, crowd) == ann["segments_info"]  # areas and boxes recounted
        pairs.append((ann, ids))
    write_panoptic(tmp_path / "out", tmp_path / "out.json", pairs, gt["categories"], gt["images"])
    again = load_panoptic_json(tmp_path / "out.json")
    assert again["annotations"] == gt["annotations"] and again["categories"] == gt["categories"]
    for ann, ids in pairs:
        assert np.array_equal(read_id_png(tmp_path / "out" / ann["file_name"]), ids)


def _write(folder, json_path, maps, segments, categories):
    anns = [({"image_id": i, "file_name": f"{i}.png", "segments_info": segs}, ids)
            for i, (ids, segs) in enumerate(zip(maps, segments))]
    write_panoptic(folder, json_path, anns, categories)


def test_void_and_crowd_rules_match_panopticapi(tmp_path):
    """Hand-made: a prediction mostly on VOID, one over a crowd region of its class, an IoU just
    above / below 0.5 because of VOID leaving the union, a relabelled segment."""
    cats = [{"id": 1, "name": "a", "isthing": 1}, {"id": 2, "name": "b", "isthing": 1},
            {"id": 7, "name": "s", "isthing": 0}]
    gt = np.zeros((20, 30), np.int32)
    gt[0:10, 0:10] = 5      # thing 1
    gt[10:20, 0:10] = 6     # crowd of 1
    gt[0:20, 10:20] = 9     # stuff 7
    gt[0:10, 20:30] = 11    # thing 2
    gt_segs = segments_from_ids(gt, {5: 1, 6: 1, 9: 7, 11: 2}, {6: 1})
    pred = np.zeros((20, 30), np.int32)
    pred[0:10, 0:6] = 100   # IoU 0.6 with 5
    pred[12:20, 0:10] = 101  # on the crowd region of its class: ignored
    pred[0:20, 10:16] = 102  # IoU 0.6 with the stuff
    pred[0:10, 20:30] = 103  # relabelled 2 -> 1: FP and FN
    pred[10:20, 20:30] = 104  # entirely on VOID: ignored
    pred[10:12, 0:10] = 105  # half crowd, class 2: counted as FP
    pred_segs = segments_from_ids(pred, {100: 1, 101: 1, 102: 7, 103: 1, 104: 2, 105: 2})
    _write(tmp_path / "gt", tmp_path / "gt.json", [gt, gt.T.copy()], [gt_segs, segments_from_ids(
        gt.T.copy(), {5: 1, 6: 1, 9: 7, 11: 2}, {6: 1})], cats)
    _write(tmp_path / "pred", tmp_path / "pred.json", [pred, gt.T.copy()],
           [pred_segs, segments_from_ids(gt.T.copy(), {5: 2, 6: 1, 9: 7, 11: 2})], cats)
    ours = pq_compute(tmp_path / "gt.json", tmp_path / "pred.json")
    _assert_equal(ours, _oracle(tmp_path / "gt.json", tmp_path / "pred.json", tmp_path / "gt", tmp_path / "pred"))
    assert ours["per_class"][7]["sq"] == pytest.approx((0.6 + 1.0) / 2)  # 0.6 here, 1.0 in the second image


def test_inconsistent_prediction_is_an_error(tmp_path):
    cats = [{"id": 1, "name": "a", "isthing": 1}]
    ids = np.zeros((4, 4), np.int32)
    ids[:2] = 3
    _write(tmp_path / "gt", tmp_path / "gt.json", [ids], [segments_from_ids(ids, {3: 1})], cats)
    _write(tmp_path / "pred", tmp_path / "pred.json", [ids], [[]], cats)
    with pytest.raises(KeyError, match="segment with ID 3 is presented in PNG and not presented in JSON"):
        pq_compute(tmp_path / "gt.json", tmp_path / "pred.json")
    _write(tmp_path / "pred", tmp_path / "pred.json", [ids], [[{"id": 3, "category_id": 1},
                                                                {"id": 4, "category_id": 1}]], cats)
    with pytest.raises(KeyError, match=r"segment IDs \[4\] are presented in JSON and not presented in PNG"):
        pq_compute(tmp_path / "gt.json", tmp_path / "pred.json")
    (tmp_path / "pred.json").write_text(json.dumps({"annotations": []}))
    with pytest.raises(DataError, match="no prediction for the image with id 0"):
        pq_compute(tmp_path / "gt.json", tmp_path / "pred.json")


def test_id_encoding_and_rle():
    ids = np.array([[0, 1, 256], [65536, 16777215, 12345]], dtype=np.int64)
    rgb = id2rgb(ids)
    assert rgb[0, 2].tolist() == [0, 1, 0] and rgb[1, 0].tolist() == [0, 0, 1]
    assert np.array_equal(rgb2id(rgb), ids)
    masks = np.random.default_rng(0).random((3, 7, 5)) > 0.5
    assert np.array_equal(rle_to_masks(masks_to_rle(masks), 7, 5), masks)
