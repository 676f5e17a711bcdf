"""Appearance embeddings for re-identifying inactive tracks, served by the metric-learning plugin's
`trackformer_metric.embed.load_embedder` (the one loader of a trained embedding model): the tracker
hands it crops in [0, 1], normalized here as the model was trained."""
from typing import Callable, Optional

import torch

from trackformer.data.transforms import IMAGENET_MEAN, IMAGENET_STD


def appearance_embedder(config: Optional[str], weights: Optional[str] = None, device="cpu") -> Callable:
    """A callable mapping crops [N, 3, h, w] in [0, 1] to embeddings [N, D], from the metric model of
    `weights` (a run folder or a checkpoint; `config` defaults to the run's config.yaml) or, without
    weights, the model `config` builds (its `model.weights`, else ImageNet features)."""
    from trackformer.errors import ConfigError

    if not config and not weights:
        raise ConfigError("evaluator.reid_model", "tracker.reid_appearance needs a metric-learning model: "
                                                  "evaluator.reid_weights=RUN_DIR and/or evaluator.reid_model=CONFIG",
                          full=True)
    try:
        from trackformer_metric.embed import load_embedder
    except ImportError:
        raise ConfigError("evaluator.tracker.reid_appearance", "appearance re-identification needs the "
                          "metric-learning plugin (pip install trackformer-metric)", full=True) from None
    embedder = load_embedder(weights, device, config=config)
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]

    def embed(crops: torch.Tensor) -> torch.Tensor:  # [N, 3, h, w] in [0, 1] -> [N, D]
        return embedder((crops.cpu() - mean) / std)

    return embed
