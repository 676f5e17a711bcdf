"""trackformer plugin entry point for Deformable DETR: registration only. Settings live in `settings.py`,
each factory (`build`) at the bottom of the module it builds, imported when first used.

Registers: architectures `deformable_detr` and `deformable_trackformer` (TrackFormer on Deformable DETR,
the released MOT17/MOT20 models; track-query helpers from the `trackformer-trackq` plugin); matchers
`focal_hungarian`, `focal_track_hungarian`; losses `deformable_criterion`, `deformable_track_criterion`;
the run configs in `configs/`. COCO AP comes from the core's `coco` evaluator, which calls
`DeformableDETR.predict`.
"""
from trackformer import hookimpl

from .settings import (DeformableCriterionConfig, DeformableDETRConfig, DeformableTrackFormerConfig,
                       FocalHungarianConfig)


@hookimpl
def register_architectures(register):
    register("deformable_detr", "trackformer_deformable.deformable_detr:build", schema=DeformableDETRConfig,
             matchers=["focal_hungarian"], losses=["deformable_criterion"],
             help="Deformable DETR: multi-scale deformable attention, sigmoid focal loss (Zhu et al. 2021)")
    register("deformable_trackformer", "trackformer_deformable.deformable_trackformer:build",
             schema=DeformableTrackFormerConfig, matchers=["focal_track_hungarian"],
             losses=["deformable_track_criterion"],
             help="TrackFormer on Deformable DETR: multi-frame attention, track queries (the released models)")


@hookimpl
def register_matchers(register):
    register("focal_hungarian", "trackformer_deformable.matcher:build", schema=FocalHungarianConfig,
             help="Hungarian matching on the focal class cost, L1 and GIoU (Deformable DETR)")
    register("focal_track_hungarian", "trackformer_deformable.track_criterion:build_matcher",
             schema=FocalHungarianConfig,
             help="TrackFormer matching on the focal cost: track queries fixed to their identity, the rest Hungarian")


@hookimpl
def register_losses(register):
    register("deformable_criterion", "trackformer_deformable.criterion:build", schema=DeformableCriterionConfig,
             help="Deformable DETR set loss: sigmoid focal + L1 + GIoU, auxiliary layers, two-stage proposals")
    register("deformable_track_criterion", "trackformer_deformable.track_criterion:build_criterion",
             schema=DeformableCriterionConfig,
             help="Deformable DETR set loss with track queries (empty track slots weigh 0)")


@hookimpl
def config_dirs():
    from pathlib import Path

    return [Path(__file__).parent / "configs"]
