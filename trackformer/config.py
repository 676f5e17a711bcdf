"""Config loading: YAML + `extends:` + dotted overrides, validated against the registered schemas.

Validation runs in two passes: the top-level schema (`trackformer.schema.RunConfig`), then each
component node `{name: <registered>, ...}` against the schema its plugin registered, recursively.
Every mistake becomes a `ConfigError` naming the full dotted key. Nothing in a config is imported or
executed: component names are looked up in the registries, never resolved as import paths.
"""
import dataclasses
import typing
from pathlib import Path
from typing import Any, Iterable, List, Optional, Sequence, Tuple

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .errors import ConfigError
from .plugins import registry
from .registry import did_you_mean
from .schema import RunConfig


def load_config(path, overrides: Sequence[str] = (), schema=RunConfig) -> DictConfig:
    """Read `path`, apply `overrides` (`a.b=value`), validate, resolve; returns a read-only config."""
    raw = _read_with_extends(Path(path), seen=())
    raw = apply_overrides(raw, overrides)
    cfg = validate(raw, schema)
    OmegaConf.set_readonly(cfg, True)
    return cfg


def _read_yaml(path: Path) -> DictConfig:
    if not path.is_file():
        raise ConfigError("", f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError("", f"{path}{where}: invalid YAML: {getattr(error, 'problem', error)}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("", f"{path}: a config must be a mapping of keys to values")
    return OmegaConf.create(data)


def _read_with_extends(path: Path, seen: Tuple[Path, ...]) -> DictConfig:
    path = path.resolve()
    if path in seen:
        raise ConfigError("extends", f"circular extends: {' -> '.join(str(p) for p in (*seen, path))}")
    node = _read_yaml(path)
    parents = node.pop("extends", None) or []
    if isinstance(parents, str):
        parents = [parents]
    merged = OmegaConf.create({})
    for parent in parents:
        merged = _merge_replacing_components(merged, _read_with_extends(path.parent / parent, (*seen, path)))
    return _merge_replacing_components(merged, node)


def _merge_replacing_components(base: DictConfig, top: DictConfig) -> DictConfig:
    """Merge `top` over `base`; a component node whose `name` changes replaces the old node whole, so
    the old component's settings are dropped instead of being rejected by the new one's schema."""
    base = base.copy()
    for key, value in top.items():
        old = base.get(key) if key in base else None
        if isinstance(value, DictConfig) and isinstance(old, DictConfig):
            if "name" in value and "name" in old and value.name != old.name:
                base[key] = value
            else:
                base[key] = _merge_replacing_components(old, value)
        else:
            base[key] = value
    return base


def parse_override(text: str) -> Tuple[str, Any]:
    if "=" not in text:
        raise ConfigError("", f"override {text!r} is not of the form key=value")
    key, value = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError("", f"override {text!r} has an empty key")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        parsed = value
    return key, parsed


def apply_overrides(raw: DictConfig, overrides: Iterable[str]) -> DictConfig:
    raw = raw.copy()
    for text in overrides:
        key, value = parse_override(text)
        parent_key, _, leaf = key.rpartition(".")
        parent = OmegaConf.select(raw, parent_key) if parent_key else raw
        if leaf == "name" and isinstance(parent, DictConfig) and parent.get("name") not in (None, value):
            # Switching a component on the command line drops the old component's settings.
            OmegaConf.update(raw, parent_key, {"name": value}, merge=False)
            continue
        existing = OmegaConf.select(raw, key, default=None)
        merge = isinstance(existing, DictConfig) and isinstance(value, dict)
        try:
            OmegaConf.update(raw, key, value, merge=merge, force_add=True)
        except OmegaConfBaseException as error:
            raise ConfigError(key, _first_line(error)) from None
    return raw


def validate(raw: DictConfig, schema=RunConfig) -> DictConfig:
    components = {f.name: f.metadata["component"] for f in dataclasses.fields(schema) if "component" in f.metadata}
    plain = {k: v for k, v in raw.items() if k not in components}
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(schema), plain)
    except OmegaConfBaseException as error:
        raise _config_error(error, prefix="") from None
    for key, kind in components.items():
        node = raw.get(key) if key in raw else None
        OmegaConf.set_struct(cfg, False)
        cfg[key] = validate_component(node, kind, key)
        OmegaConf.set_struct(cfg, True)
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(missing[0], "a required value is missing (set it in the config or as "
                                      f"{missing[0]}=VALUE)")
    try:
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as error:
        raise _config_error(error, prefix="") from None
    if schema is RunConfig:  # until every schema node is instantiated: TrainConfig.__post_init__'s checks
        try:
            OmegaConf.to_object(cfg.train)
        except ConfigError as error:
            raise ConfigError(f"train.{error.key}", error.message) from None
    return cfg


def validate_component(node: Any, kind: str, key: str) -> Optional[DictConfig]:
    """Validate `{name: ..., **settings}` against the schema registered under that name."""
    if node is None:
        return None
    reg = registry(kind)
    if isinstance(node, str):
        node = OmegaConf.create({"name": node})
    if not isinstance(node, DictConfig) or "name" not in node:
        raise ConfigError(key, f"must be a mapping with a 'name' key naming a registered {reg.singular}; "
                               f"registered: {', '.join(reg.names()) or '(none)'}")
    name = node.name
    entry = reg.get(name, key=f"{key}.name")
    settings = {k: v for k, v in node.items() if k != "name"}
    if entry.schema is None:
        out = OmegaConf.create(settings)
    else:
        sub_components = {f.name: f.metadata["component"] for f in dataclasses.fields(entry.schema)
                          if "component" in f.metadata}
        plain = {k: v for k, v in settings.items() if k not in sub_components}
        try:
            out = OmegaConf.merge(OmegaConf.structured(entry.schema), plain)
        except OmegaConfBaseException as error:
            inner = str(getattr(error, "full_key", "") or "").split(".")
            raise _config_error(error, prefix=key, choices=_field_names(entry.schema, inner[:-1])) from None
        OmegaConf.set_struct(out, False)
        for sub_key, sub_kind in sub_components.items():
            default = getattr(out, sub_key, None)
            out[sub_key] = validate_component(settings.get(sub_key, default), sub_kind, f"{key}.{sub_key}")
    OmegaConf.set_struct(out, False)
    out["name"] = name
    OmegaConf.set_struct(out, True)
    return out


def _field_names(schema, path: List[str]) -> Optional[List[str]]:
    """The field names of the dataclass reached from `schema` along `path` (nested settings such as
    `evaluator.sort.*`); None when the path leaves the dataclasses."""
    for part in path:
        hint = typing.get_type_hints(schema).get(part)
        if hint is None or not dataclasses.is_dataclass(hint):
            return None
        schema = hint
    return [f.name for f in dataclasses.fields(schema)]


def _first_line(error: Exception) -> str:
    msg = getattr(error, "msg", None) or str(error)
    return str(msg).strip().splitlines()[0]


def _config_error(error: OmegaConfBaseException, prefix: str, choices: Optional[List[str]] = None) -> ConfigError:
    inner = getattr(error, "full_key", None) or getattr(error, "key", None) or ""
    key = ".".join(p for p in (prefix, str(inner)) if p)
    message = _first_line(error)
    if "not in" in message and choices is not None:
        leaf = str(inner).split(".")[-1]
        if "Did you mean" not in message:
            message += did_you_mean(leaf, choices).replace(" (", " ").rstrip(")")
        message += f"; valid keys: {', '.join(sorted(choices))}"
    elif "not in" in message and not prefix:
        top = [f.name for f in dataclasses.fields(RunConfig)]
        if "Did you mean" not in message:
            message += did_you_mean(str(inner).split(".")[-1], top).replace(" (", " ").rstrip(")")
    return ConfigError(key, message)


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg)


def as_container(node) -> Any:
    if isinstance(node, (DictConfig, ListConfig)):
        return OmegaConf.to_container(node, resolve=True)
    return node
