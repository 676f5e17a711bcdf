"""Optimizer with a separate backbone learning rate, and warm-up + step/cosine/constant schedules."""
import math

import torch

OPTIMIZERS = {"adamw": torch.optim.AdamW, "radam": torch.optim.RAdam, "sgd": torch.optim.SGD}


def build_optimizer(model: torch.nn.Module, train_cfg) -> torch.optim.Optimizer:
    """Parameters whose name contains `backbone` train at `lr_backbone` (`lr_backbone: 0` freezes them);
    those whose name contains a key of `lr_mult` at `lr * lr_mult[key]`; the rest at `lr`.
    `train_cfg` is a `TrainConfig`, whose validation checked the choices."""
    rest, backbone = [], []
    scaled = {key: [] for key in train_cfg.lr_mult}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        key = next((k for k in scaled if k in name), None)
        if key is not None:
            scaled[key].append(param)
        elif "backbone" in name:
            if train_cfg.lr_backbone > 0:
                backbone.append(param)
            else:
                param.requires_grad_(False)
        else:
            rest.append(param)
    groups = [{"params": rest, "lr": train_cfg.lr}]
    if backbone:
        groups.append({"params": backbone, "lr": train_cfg.lr_backbone})
    groups += [{"params": params, "lr": train_cfg.lr * train_cfg.lr_mult[key]}
               for key, params in scaled.items() if params]
    kwargs = {"weight_decay": train_cfg.weight_decay}
    if train_cfg.optimizer == "sgd":
        kwargs["momentum"] = 0.9
    if train_cfg.fused:
        # one kernel over all parameters instead of torch's default per-tensor-list update: the
        # same maths with other rounding, so off by default (recorded runs stay reproducible)
        kwargs["fused"] = True
    return OPTIMIZERS[train_cfg.optimizer](groups, lr=train_cfg.lr, **kwargs)


def build_scheduler(optimizer, train_cfg, steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-optimizer-step multiplier: linear warm-up, then the chosen schedule."""
    total = max(1, train_cfg.max_steps or train_cfg.epochs * steps_per_epoch)
    warmup = train_cfg.warmup_steps
    drop_at = train_cfg.lr_drop * steps_per_epoch

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if train_cfg.schedule == "step":
            return 0.1 if step >= drop_at else 1.0
        if train_cfg.schedule == "cosine":
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
