"""The two-stage recipe through `train.freeze`: after `freeze_from_epoch` the detector (`detr.*`)
stops moving (resumed mid-recipe, too) while the attention map and the mask head train on."""
import torch

import trackformer
from trackformer.engine.trainer import fit


def test_detector_frozen_in_the_mask_stage(tmp_path):
    common = [f"data.root={tmp_path / 'data'}", "data.num_train=8", "data.num_test=2", "train.batch_size=4",
              f"output_dir={tmp_path / 'run'}", "train.freeze_from_epoch=1", "train.warmup_steps=0",
              "evaluator.batch_size=2"]
    fit(trackformer.load_config("detr_panoptic_synthetic", common + ["train.epochs=1"]))
    stage1 = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["model"]
    metrics = fit(trackformer.load_config("detr_panoptic_synthetic", common + ["train.epochs=2", "resume=true"]))
    stage2 = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["model"]
    assert metrics["train_steps"] == 4 and {"PQ", "SQ", "RQ", "PQ_th", "PQ_st"} <= set(metrics)
    detr = [k for k in stage1 if k.startswith("detr.") and stage1[k].is_floating_point()]
    assert detr and all(torch.equal(stage1[k], stage2[k]) for k in detr)
    for prefix in ("mask_head.", "bbox_attention."):
        assert any(not torch.equal(stage1[k], stage2[k]) for k in stage1 if k.startswith(prefix))
