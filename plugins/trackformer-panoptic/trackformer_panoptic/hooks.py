"""trackformer plugin entry point for DETR panoptic segmentation: registration only.

Registers: architecture `detr_panoptic`; loss `detr_panoptic_criterion`; data sets `coco_panoptic`
(COCO panoptic PNGs + JSON) and `panoptic_shapes` (generated scenes in that layout); evaluator
`panoptic` (PQ / SQ / RQ via trackformer.eval.panoptic); command `segment`.
"""
from trackformer import hookimpl

from .settings import (CocoPanopticDataConfig, DETRPanopticConfig, PanopticCriterionConfig, PanopticEvalConfig,
                       PanopticShapesConfig)


@hookimpl
def register_architectures(register):
    register("detr_panoptic", "trackformer_panoptic.detr_panoptic:build", schema=DETRPanopticConfig,
             help="DETR panoptic: DETR + multi-head attention map + FPN-style mask head (official DETRsegm layout)")


@hookimpl
def register_losses(register):
    register("detr_panoptic_criterion", "trackformer_panoptic.criterion:build", schema=PanopticCriterionConfig,
             help="DETR set loss + sigmoid focal and dice mask losses on matched queries")


@hookimpl
def register_datasets(register):
    register("coco_panoptic", "trackformer_panoptic.data:build_coco_panoptic", schema=CocoPanopticDataConfig,
             help="COCO panoptic: images + panoptic PNGs + JSON; masks, boxes (from masks), labels")
    register("panoptic_shapes", "trackformer_panoptic.data:build_panoptic_shapes", schema=PanopticShapesConfig,
             help="generated panoptic scenes (overlapping shapes + textured stuff) in the COCO panoptic layout")


@hookimpl
def register_evaluators(register):
    register("panoptic", "trackformer_panoptic.evaluator:build", schema=PanopticEvalConfig,
             help="PQ, SQ, RQ (all / things / stuff) equal to panopticapi's pq_compute")


@hookimpl
def register_commands(register):
    from .segment import add_arguments, main

    register("segment", main, add_arguments=add_arguments,
             help="panoptic segmentation of images: PNGs + JSON (COCO panoptic) and overlay pictures")


@hookimpl
def config_dirs():
    from pathlib import Path

    return [Path(__file__).parent / "configs"]
