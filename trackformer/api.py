"""Building things from a validated config: components, models, data sets."""
from pathlib import Path
from typing import Any, Dict, Optional

from omegaconf import DictConfig

from .errors import ConfigError
from .plugins import registry


def _key_of(node: DictConfig) -> str:
    try:
        return node._get_full_key(None) or ""
    except Exception:
        return ""


def build(kind: str, node: Optional[DictConfig], **context) -> Any:
    """Build the component `node` (`{name: ..., **settings}`) registered under `kind`."""
    if node is None:
        raise ConfigError("", f"a {kind[:-1]} is required here but the config has none")
    entry = registry(kind).get(node.name, key=f"{_key_of(node)}.name".lstrip("."))
    return entry.factory(node, **context)


def build_dataset(cfg: DictConfig, split: str):
    if cfg.data is None:
        raise ConfigError("data", "no data set configured")
    return build("datasets", cfg.data, split=split)


def build_model(cfg: DictConfig, data_info: Optional[Dict[str, Any]] = None):
    """The model of `cfg.model`, with `model.weights` loaded when set (strict unless
    `model.weights_strict=false`). Without `data_info` the training split's info is used when the
    config has data, so `num_classes` etc. come from the data as in training."""
    from .checkpoint import load_model_weights

    if cfg.model is None:
        raise ConfigError("model", "no model configured")
    if data_info is None:
        data_info = {}
        if cfg.data is not None:
            train_set = build_dataset(cfg, "train")
            data_info = dict(getattr(train_set, "info", {}) or {})
    model = build("architectures", cfg.model, data_info=data_info)
    weights = cfg.model.get("weights")
    if weights:
        if not Path(weights).is_file():
            raise ConfigError("model.weights", f"file not found: {weights}")
        load_model_weights(model, weights, strict=bool(cfg.model.get("weights_strict", True)))
    return model
