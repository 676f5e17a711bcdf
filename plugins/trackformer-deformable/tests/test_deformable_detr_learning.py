"""Deformable DETR learns: a small model from random weights fits four generated images in 150 steps (the
whole loop: focal matching, focal set loss, backward, AdamW), judged by pycocotools AP on those images."""

import torch

import trackformer
from trackformer.api import build, build_dataset, build_model
from trackformer.engine.optim import build_optimizer
from trackformer.eval.coco import coco_box_metrics, to_coco_results


def test_small_deformable_detr_fits_four_images(tmp_path):
    cfg = trackformer.load_config("deformable_detr_synthetic", [
        f"data.root={tmp_path / 'shapes'}", "data.num_train=4", "data.num_val=0", "data.num_test=0",
        "data.min_objects=1", "data.max_objects=2", "data.hflip=false"])
    torch.manual_seed(0)
    data = build_dataset(cfg, "train")
    model = build_model(cfg, data.info)
    criterion = build("losses", cfg.loss, matcher=build("matchers", cfg.matcher), model=model)
    optimizer = build_optimizer(model, cfg.train)
    inputs, targets = data.collate_fn([data[i] for i in range(4)])

    def ap50():
        model.eval()
        predictions = model.predict(inputs, targets)
        model.train()
        results = to_coco_results({int(t["image_id"]): p for t, p in zip(targets, predictions)},
                                  data.info["label_to_category"])
        return coco_box_metrics(data.coco_ground_truth(), results)["AP50"]

    assert ap50() < 0.1
    first = None
    for _ in range(150):
        loss = criterion(model(inputs, targets), targets)["loss"]
        first = loss.item() if first is None else first
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.clip_max_norm)
        optimizer.step()
    assert loss.item() < first / 10
    assert ap50() >= 0.9
