"""Fixtures shared by the core's and the plugins' tests."""
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parent.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """`../shared` beside the checkout (real data and weights); tests using it skip when it is absent."""
    if not (SHARED / "data").is_dir():
        pytest.skip("../shared is not present")
    return SHARED


@pytest.fixture
def fit_four_images(tmp_path):
    """`fit(config_name) -> (first loss, last loss, AP50 before, AP50 after)`: a detector config trained
    for 150 steps on four generated `shapes` images (matching, set loss, backward, AdamW, clipping),
    judged by pycocotools AP50 on those images."""
    import torch

    import trackformer
    from trackformer.api import build, build_dataset, build_model
    from trackformer.engine.optim import build_optimizer
    from trackformer.eval.coco import coco_box_metrics, to_coco_results

    def fit(config_name: str, steps: int = 150):
        cfg = trackformer.load_config(config_name, [
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

        before, first = ap50(), None
        for _ in range(steps):
            loss = criterion(model(inputs, targets), targets)["loss"]
            first = loss.item() if first is None else first
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.clip_max_norm)
            optimizer.step()
        return first, loss.item(), before, ap50()

    return fit
