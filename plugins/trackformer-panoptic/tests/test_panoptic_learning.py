"""The mask head learns: on four generated scenes, 250 steps of the full panoptic loss bring the dice
loss down (with the official raw softmax maps it stays flat at this scale: `attention_scale`)."""
import torch

import trackformer
from trackformer.api import build, build_dataset, build_model
from trackformer.engine.optim import build_optimizer


def test_masks_learn_on_four_scenes(tmp_path):
    cfg = trackformer.load_config("detr_panoptic_synthetic", [f"data.root={tmp_path}", "data.num_train=4",
                                                              "data.num_test=0", "data.hflip=false"])
    torch.manual_seed(0)
    data = build_dataset(cfg, "train")
    model = build_model(cfg, data.info)
    criterion = build("losses", cfg.loss, matcher=build("matchers", cfg.matcher), model=model)
    optimizer = build_optimizer(model, cfg.train)
    inputs, targets = data.collate_fn([data[i] for i in range(4)])
    dice = []
    for _ in range(250):
        losses = criterion(model(inputs, targets), targets)
        optimizer.zero_grad()
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.clip_max_norm)
        optimizer.step()
        dice.append(float(losses["loss_dice"]))
    assert sum(dice[-10:]) / 10 < dice[0] - 0.08
