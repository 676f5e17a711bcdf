"""`train.freeze`: parameter groups that do not train, named by module path prefix (`detr`,
`backbone.0`, `transformer.encoder`), from epoch `train.freeze_from_epoch` (0: from the start).

Frozen parameters get `requires_grad = False` (the optimizer skips them: no update, no weight decay)
and the frozen modules run in eval mode while the rest trains, so their dropout is off and their
BatchNorm statistics stay — DETR's own stage-2 code leaves the frozen detector's dropout on.
"""
from typing import List, Sequence

import torch.nn as nn

from ..errors import ConfigError


def _matches(name: str, prefixes: Sequence[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def frozen_modules(model: nn.Module, prefixes: Sequence[str]) -> List[nn.Module]:
    """The modules named by `prefixes` (each must name at least one module)."""
    found = []
    for prefix in prefixes:
        modules = [m for n, m in model.named_modules() if n and _matches(n, [prefix])]
        if not modules:
            raise ConfigError("train.freeze", f"{prefix!r} names no module of the model "
                                              f"(top level: {', '.join(n for n, _ in model.named_children())})")
        found += modules
    return found


def freeze(model: nn.Module, prefixes: Sequence[str]) -> int:
    """Stop the named parameters from training; returns how many parameters (scalars) were frozen."""
    frozen_modules(model, prefixes)  # checks the names
    count = 0
    for name, param in model.named_parameters():
        if _matches(name, prefixes):
            param.requires_grad_(False)
            count += param.numel()
    return count


def train_mode(model: nn.Module, prefixes: Sequence[str] = ()) -> nn.Module:
    """`model.train()`, then the frozen modules back to eval mode."""
    model.train()
    for module in frozen_modules(model, prefixes) if prefixes else []:
        module.eval()
    return model
