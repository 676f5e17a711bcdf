"""trackformer plugin entry point for Deformable DETR: registration only. Settings live in `settings.py`,
each factory (`build`) at the bottom of the module it builds, imported when first used.

Registers: architecture `deformable_detr`; matcher `focal_hungarian`; loss `deformable_criterion`; the
run configs in `configs/`. COCO AP comes from the core's `coco` evaluator, which calls
`DeformableDETR.predict`.
"""
from trackformer import hookimpl

from .settings import DeformableCriterionConfig, DeformableDETRConfig, FocalHungarianConfig


@hookimpl
def register_architectures(register):
    register("deformable_detr", "trackformer_deformable.deformable_detr:build", schema=DeformableDETRConfig,
             matchers=["focal_hungarian"], losses=["deformable_criterion"],
             help="Deformable DETR: multi-scale deformable attention, sigmoid focal loss (Zhu et al. 2021)")


@hookimpl
def register_matchers(register):
    register("focal_hungarian", "trackformer_deformable.matcher:build", schema=FocalHungarianConfig,
             help="Hungarian matching on the focal class cost, L1 and GIoU (Deformable DETR)")


@hookimpl
def register_losses(register):
    register("deformable_criterion", "trackformer_deformable.criterion:build", schema=DeformableCriterionConfig,
             help="Deformable DETR set loss: sigmoid focal + L1 + GIoU, auxiliary layers, two-stage proposals")


@hookimpl
def config_dirs():
    from pathlib import Path

    return [Path(__file__).parent / "configs"]
