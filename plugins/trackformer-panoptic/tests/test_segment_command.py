"""`trackformer segment`: COCO panoptic PNGs + JSON that panopticapi-compatible PQ accepts (ids in
the PNG equal the JSON's), and one overlay picture per image; the generated scenes' layout."""
import json

import numpy as np
import pytest

from trackformer.cli import main as cli_main
from trackformer.data.panoptic_format import load_panoptic_json, read_id_png
from trackformer.eval.panoptic import pq_compute


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    from trackformer_panoptic.shapes import SceneSpec, ensure_scenes

    root = tmp_path_factory.mktemp("scenes")
    return ensure_scenes(root, SceneSpec(num_train=4, num_val=0, num_test=3, image_size=64,
                                         thing_min_size=11, thing_max_size=28))


def test_scenes_layout(scenes):
    gt = load_panoptic_json(scenes / "test" / "panoptic.json")
    assert len(gt["annotations"]) == 3 and {c["isthing"] for c in gt["categories"]} == {0, 1}
    for ann in gt["annotations"]:
        ids = read_id_png(scenes / "test" / "panoptic" / ann["file_name"])
        assert set(np.unique(ids)) - {0} == {s["id"] for s in ann["segments_info"]}
        assert any(s["category_id"] > 3 for s in ann["segments_info"])  # stuff
    assert pq_compute(scenes / "test" / "panoptic.json", scenes / "test" / "panoptic.json")["All"]["pq"] == 1.0


def test_segment_writes_panoptic_files_and_overlays(scenes, tmp_path, capsys):
    out = tmp_path / "seg"
    code = cli_main(["segment", "detr_panoptic_synthetic", f"data.root={scenes}", "data.num_train=4",
                     "data.num_test=3", f"output_dir={tmp_path / 'run'}", "--input", str(scenes / "test" / "images"),
                     "--output", str(out), "--threshold", "0.0"])
    assert code in (0, None)
    assert "segments on 3 images" in capsys.readouterr().out
    pred = json.loads((out / "panoptic.json").read_text())
    assert len(pred["annotations"]) == 3 and len(list((out / "overlay").glob("*.png"))) == 3
    for ann in pred["annotations"]:
        ids = read_id_png(out / "panoptic" / ann["file_name"])
        assert ids.shape == (64, 64)
        assert set(np.unique(ids)) - {0} == {s["id"] for s in ann["segments_info"]}
    results = pq_compute(scenes / "test" / "panoptic.json", out / "panoptic.json", pred_folder=out / "panoptic")
    assert 0.0 <= results["All"]["pq"] <= 1.0
