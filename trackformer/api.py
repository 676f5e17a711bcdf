"""Building things from a validated config: components, models, data sets."""
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable, Dict, Optional

from omegaconf import DictConfig

from .config import settings_of
from .errors import ConfigError
from .plugins import registry


def node_key(node: DictConfig) -> str:
    """The full dotted key of a config node, e.g. `model.backbone`; "" for the root."""
    try:
        return node._get_full_key(None) or ""
    except Exception:
        return ""


def build(kind: str, node: Optional[DictConfig], **deps) -> Any:
    """Build the component `node` (`{name: ..., **settings}`) registered under `kind`.

    The factory receives its settings as an instance of the registered schema dataclass (the node
    itself when the component registered none) and `deps`, what its caller computed for it (e.g.
    `d_model`, `data_info`, `model`). A `ConfigError` it raises is reported under the node's full key."""
    if node is None:
        raise ConfigError("", f"a {registry(kind).singular} is required here but the config has none")
    key = node_key(node)
    entry = registry(kind).get(node.name, key=f"{key}.name".lstrip("."))
    settings = settings_of(node, entry.schema, key) if entry.schema is not None else node
    try:
        return entry.factory(settings, **deps)
    except ConfigError as error:
        raise error.under(key) from None


def build_dataset(cfg: DictConfig, split: str):
    if cfg.data is None:
        raise ConfigError("data", "no data set configured")
    return build("datasets", cfg.data, split=split)


class DataInfo(Mapping):
    """The training split's `info` (num_classes, label maps), read from the data only when a factory
    asks for a value: a model whose settings fix everything is built without touching the data."""

    def __init__(self, load: Callable[[], Optional[Dict[str, Any]]]):
        self._load = load
        self._info: Optional[Dict[str, Any]] = None

    def _data(self) -> Dict[str, Any]:
        if self._info is None:
            self._info = dict(self._load() or {})
        return self._info

    def __getitem__(self, key):
        return self._data()[key]

    def __iter__(self):
        return iter(self._data())

    def __len__(self):
        return len(self._data())


def build_model(cfg: DictConfig, data_info: Optional[Mapping] = None):
    """The model of `cfg.model`, with `model.weights` loaded when set (strict unless
    `model.weights_strict=false`). Without `data_info`, values the model takes from the data (e.g.
    `num_classes` left unset) come from the training split's info, as in training; the data are read
    only if the model asks."""
    from .checkpoint import load_model_weights

    if cfg.model is None:
        raise ConfigError("model", "no model configured")
    if data_info is None:
        def train_info():
            return getattr(build_dataset(cfg, "train"), "info", None) if cfg.data is not None else None

        data_info = DataInfo(train_info)
    model = build("architectures", cfg.model, data_info=data_info)
    weights = cfg.model.get("weights")
    if weights:
        if not Path(weights).is_file():
            raise ConfigError("model.weights", f"file not found: {weights}")
        load_model_weights(model, weights, strict=bool(cfg.model.get("weights_strict", True)))
    return model
