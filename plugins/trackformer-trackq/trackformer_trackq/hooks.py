"""trackformer plugin entry point for TrackFormer track queries: registration only. Settings live in
`settings.py`, each factory (`build`) at the bottom of the module it builds, imported when first used.

Registers: architecture `trackformer` (it takes matcher `track_hungarian` and loss
`trackformer_criterion`, since plain Hungarian matching would never fix track queries to their
identities); backbone `small_cnn`; data sets `mot_pairs` and `static_pairs`; evaluator
`mot_tracking`; command `track`. Publishes its own hook specs (`trackformer_trackq.hookspecs`) and
their defaults.
"""
from trackformer import hookimpl
from trackformer_detr.settings import HungarianConfig, SetCriterionConfig

from .settings import (MOTPairsConfig, SmallCNNConfig, StaticPairsConfig, TrackFormerConfig,
                       TrackingEvalConfig)


@hookimpl
def add_hookspecs(pluginmanager):
    from . import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


@hookimpl(trylast=True)
def trackq_build_track_queries(prev_outputs, index, prev_match, prev_target, target):
    from .track_queries import default_build

    return default_build(prev_outputs, index, prev_match, prev_target, target)


@hookimpl(trylast=True)
def trackq_augment_track_queries(queries, prev_outputs, index, prev_match, fn_prob, fp_prob, generator):
    from .track_queries import default_augment

    return default_augment(queries, prev_outputs, index, prev_match, fn_prob, fp_prob, generator)


@hookimpl
def register_architectures(register):
    register("trackformer", "trackformer_trackq.trackformer:build", schema=TrackFormerConfig,
             matchers=["track_hungarian"], losses=["trackformer_criterion"],
             help="TrackFormer: DETR with track queries (Meinhardt et al. 2022)")


@hookimpl
def register_backbones(register):
    register("small_cnn", "trackformer_trackq.small_cnn:build", schema=SmallCNNConfig,
             help="small conv net (BatchNorm, stride 2 per width) for from-scratch CPU training")


@hookimpl
def register_matchers(register):
    register("track_hungarian", "trackformer_trackq.criterion:build_matcher", schema=HungarianConfig,
             help="TrackFormer matching: track queries fixed to their identity, the rest Hungarian")


@hookimpl
def register_losses(register):
    register("trackformer_criterion", "trackformer_trackq.criterion:build_criterion", schema=SetCriterionConfig,
             help="DETR set loss; unmatched track queries learn no-object at full weight")


@hookimpl
def register_datasets(register):
    register("mot_pairs", "trackformer_trackq.sequences:build", schema=MOTPairsConfig,
             help="MOTChallenge frame pairs (previous frame within +-frame_range); optional synthetic sequences")
    register("static_pairs", "trackformer_trackq.sequences:build_static", schema=StaticPairsConfig,
             help="COCO-format detection images as tracking pairs (previous frame = shifted crop)")


@hookimpl
def register_evaluators(register):
    register("mot_tracking", "trackformer_trackq.evaluator:build", schema=TrackingEvalConfig,
             help="tracks held-out sequences with TrackFormer and the SORT baseline; MOTA, IDF1, HOTA, IDSW")


@hookimpl
def register_commands(register):
    from .track import add_arguments, main

    register("track", main, add_arguments=add_arguments,
             help="track sequences, MOT roots, image folders or videos; results, metrics, rendering")


@hookimpl
def config_dirs():
    from pathlib import Path

    return [Path(__file__).parent / "configs"]
