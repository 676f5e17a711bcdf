"""Appearance embeddings for re-identifying inactive tracks, from a trained metric-learning model
(the intra-batch metric plugin) whose model offers `embed(images [N,3,h,w]) -> [N, D]`."""
from typing import Callable, Optional

import torch

from trackformer.data.transforms import IMAGENET_MEAN, IMAGENET_STD


def load_embedder(config: Optional[str], weights: Optional[str] = None, device="cpu") -> Callable:
    """A callable mapping crops in [0, 1] to embeddings, from a run config (and optional weights,
    else the config's `model.weights`)."""
    from trackformer import build_model, load_config
    from trackformer.errors import ConfigError

    if not config:
        raise ConfigError("evaluator.reid_model", "tracker.reid_appearance needs a metric-learning config "
                                                  "(evaluator.reid_model=PATH, the model offering embed())")
    overrides = [f"model.weights={weights}"] if weights else []
    cfg = load_config(config, overrides)
    model = build_model(cfg, data_info={"num_classes": 1})
    if not hasattr(model, "embed"):
        raise ConfigError("evaluator.reid_model", f"the model of {config} has no embed(images) method")
    model.eval().to(device)
    mean = torch.tensor(IMAGENET_MEAN, device=device)[:, None, None]
    std = torch.tensor(IMAGENET_STD, device=device)[:, None, None]

    @torch.no_grad()
    def embed(crops: torch.Tensor) -> torch.Tensor:  # [N, 3, h, w] in [0, 1] -> [N, D]
        if len(crops) == 0:
            return torch.zeros(0, 1)
        return model.embed((crops.to(device) - mean) / std).float().cpu()

    return embed
