"""trackformer plugin entry point for DETR. Import-light: torch and the model code are imported
inside the factories, never at start-up.

Registers: architecture `detr`; encoder `detr_encoder`; decoder `detr_decoder`; matcher `hungarian`;
loss `detr_set_criterion`; command `detect`. COCO AP comes from the core's `coco` evaluator,
which calls `DETR.predict`.
"""
from dataclasses import dataclass
from typing import Any, Optional

from trackformer import hookimpl
from trackformer.schema import component


@dataclass
class DETRConfig:
    backbone: Any = component("backbones", "resnet50")
    encoder: Any = component("encoders", "detr_encoder")
    decoder: Any = component("decoders", "detr_decoder")
    num_classes: Optional[int] = None  # None: from the data (`num_classes` of the training split)
    num_queries: int = 100
    hidden_dim: int = 256
    position_embedding: str = "sine"  # sine | learned
    aux_loss: bool = True
    weights: Optional[str] = None  # checkpoint to load after building (official DETR files work)
    weights_strict: bool = True


@dataclass
class TransformerStackConfig:
    num_layers: int = 6
    nhead: int = 8
    dim_feedforward: int = 2048
    dropout: float = 0.1


@dataclass
class HungarianConfig:
    cost_class: float = 1.0
    cost_bbox: float = 5.0
    cost_giou: float = 2.0


@dataclass
class SetCriterionConfig:
    num_classes: Optional[int] = None  # None: from the data
    eos_coef: float = 0.1
    ce_weight: float = 1.0
    bbox_weight: float = 5.0
    giou_weight: float = 2.0
    aux_loss: bool = True


def _num_classes(cfg, data_info, key):
    from trackformer.errors import ConfigError

    n = cfg.num_classes if cfg.num_classes is not None else (data_info or {}).get("num_classes")
    if n is None:
        raise ConfigError(key, "not set and the data do not provide num_classes")
    data_n = (data_info or {}).get("num_classes")
    if data_n is not None and n < data_n:
        raise ConfigError(key, f"is {n} but the data have {data_n} classes")
    return int(n)


def build_detr_model(cfg, data_info=None, **context):
    from trackformer import build
    from trackformer.errors import ConfigError

    from .detr import build_detr

    if cfg.position_embedding not in ("sine", "learned"):
        raise ConfigError("model.position_embedding", "must be sine or learned")
    if cfg.hidden_dim % 2:
        raise ConfigError("model.hidden_dim", "must be even (half per image axis)")
    backbone = build("backbones", cfg.backbone)
    encoder = build("encoders", cfg.encoder, d_model=cfg.hidden_dim)
    decoder = build("decoders", cfg.decoder, d_model=cfg.hidden_dim)
    return build_detr(backbone, encoder, decoder, _num_classes(cfg, data_info, "model.num_classes"),
                      cfg.num_queries, cfg.position_embedding, cfg.aux_loss)


def _stack_kwargs(cfg, d_model, key):
    from trackformer.errors import ConfigError

    if d_model % cfg.nhead:
        raise ConfigError(f"{key}.nhead", f"{cfg.nhead} does not divide the model width {d_model}")
    return dict(d_model=d_model, nhead=cfg.nhead, num_layers=cfg.num_layers,
                dim_feedforward=cfg.dim_feedforward, dropout=cfg.dropout)


def build_encoder(cfg, d_model=256, **context):
    from .transformer import build_encoder as build

    return build(**_stack_kwargs(cfg, d_model, "model.encoder"))


def build_decoder(cfg, d_model=256, **context):
    from .transformer import build_decoder as build

    return build(**_stack_kwargs(cfg, d_model, "model.decoder"))


def build_matcher(cfg, **context):
    from .matcher import HungarianMatcher

    return HungarianMatcher(cfg.cost_class, cfg.cost_bbox, cfg.cost_giou)


def build_criterion(cfg, matcher=None, data_info=None, **context):
    from .criterion import build
    from .matcher import HungarianMatcher

    return build(cfg, _num_classes(cfg, data_info, "loss.num_classes"),
                 matcher if matcher is not None else HungarianMatcher())


@hookimpl
def register_architectures(register):
    register("detr", build_detr_model, schema=DETRConfig,
             help="DETR: CNN backbone + transformer + set prediction (Carion et al. 2020)")


@hookimpl
def register_encoders(register):
    register("detr_encoder", build_encoder, schema=TransformerStackConfig,
             help="DETR post-norm transformer encoder (positions added to q and k)")


@hookimpl
def register_decoders(register):
    register("detr_decoder", build_decoder, schema=TransformerStackConfig,
             help="DETR post-norm query decoder returning every layer, normalised")


@hookimpl
def register_matchers(register):
    register("hungarian", build_matcher, schema=HungarianConfig,
             help="Hungarian matching on class, L1 and GIoU costs (scipy per image)")


@hookimpl
def register_losses(register):
    register("detr_set_criterion", build_criterion, schema=SetCriterionConfig,
             help="DETR set loss: CE (no-object down-weighted) + L1 + GIoU, auxiliary layers")


@hookimpl
def register_commands(register):
    from .detect import add_arguments, main

    register("detect", main, add_arguments=add_arguments,
             help="run a detector on images: COCO results JSON, drawn boxes, attention maps")


@hookimpl
def config_dirs():
    from pathlib import Path

    return [Path(__file__).parent / "configs"]
