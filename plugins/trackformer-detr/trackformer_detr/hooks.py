"""trackformer plugin entry point for DETR: registration only. Settings live in `settings.py`, each
factory (`build`) at the bottom of the module it builds, imported when first used.

Registers: architecture `detr`; encoder `detr_encoder`; decoder `detr_decoder`; matcher `hungarian`;
loss `detr_set_criterion`; command `detect`. COCO AP comes from the core's `coco` evaluator,
which calls `DETR.predict`.
"""
from trackformer import hookimpl

from .settings import DETRConfig, HungarianConfig, SetCriterionConfig, TransformerStackConfig


@hookimpl
def register_architectures(register):
    register("detr", "trackformer_detr.detr:build", schema=DETRConfig,
             help="DETR: CNN backbone + transformer + set prediction (Carion et al. 2020)")


@hookimpl
def register_encoders(register):
    register("detr_encoder", "trackformer_detr.transformer:build_encoder", schema=TransformerStackConfig,
             help="DETR post-norm transformer encoder (positions added to q and k)")


@hookimpl
def register_decoders(register):
    register("detr_decoder", "trackformer_detr.transformer:build_decoder", schema=TransformerStackConfig,
             help="DETR post-norm query decoder returning every layer, normalised")


@hookimpl
def register_matchers(register):
    register("hungarian", "trackformer_detr.matcher:build", schema=HungarianConfig,
             help="Hungarian matching on class, L1 and GIoU costs (scipy per image)")


@hookimpl
def register_losses(register):
    register("detr_set_criterion", "trackformer_detr.criterion:build", schema=SetCriterionConfig,
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
