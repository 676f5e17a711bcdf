"""trackformer plugin entry point for TrackFormer track queries. Import-light: torch and the model
code are imported inside the factories.

Registers: architecture `trackformer`; backbone `small_cnn`; matcher `track_hungarian`; loss
`trackformer_criterion`; data sets `mot_pairs` (MOTChallenge sequences, optionally generated
synthetic ones) and `static_pairs` (COCO-format images as pairs); evaluator `mot_tracking`; command
`track`. Publishes its own hook specs (`trackformer_trackq.hookspecs`) and their defaults.
"""
from dataclasses import dataclass, field
from typing import Any, List, Optional

from trackformer import hookimpl
from trackformer.schema import component

from .settings import TrackingEvalConfig


@dataclass
class TrackFormerConfig:
    backbone: Any = component("backbones", "resnet50")
    encoder: Any = component("encoders", "detr_encoder")
    decoder: Any = component("decoders", "detr_decoder")
    num_classes: Optional[int] = None  # None: from the data
    num_queries: int = 100
    hidden_dim: int = 256
    position_embedding: str = "sine"
    aux_loss: bool = True
    fn_prob: float = 0.4  # drop each track query in training (false negatives)
    fp_prob: float = 0.1  # add up to ceil(fp_prob x T) background queries (false positives)
    # matching of the previous frame's outputs to its ground truth (DETR's costs)
    prev_cost_class: float = 1.0
    prev_cost_bbox: float = 5.0
    prev_cost_giou: float = 2.0
    weights: Optional[str] = None  # e.g. a DETR checkpoint of the DETR plugin to fine-tune from
    weights_strict: bool = True


@dataclass
class SmallCNNConfig:
    widths: List[int] = field(default_factory=lambda: [32, 64, 96])
    depth: int = 2
    return_levels: Optional[List[str]] = None  # stride2 .. stride{2**len(widths)}; None: the last


@dataclass
class TrackMatcherConfig:
    cost_class: float = 1.0
    cost_bbox: float = 5.0
    cost_giou: float = 2.0


@dataclass
class TrackCriterionConfig:
    num_classes: Optional[int] = None
    eos_coef: float = 0.1
    ce_weight: float = 1.0
    bbox_weight: float = 5.0
    giou_weight: float = 2.0
    aux_loss: bool = True


@dataclass
class SyntheticNode:
    num_train: int = 12
    num_val: int = 1
    num_test: int = 3
    seed: int = 0
    width: int = 128
    height: int = 128
    seq_length: int = 100
    max_objects: int = 5
    initial_objects: int = 3
    spawn_prob: float = 0.15
    min_size: int = 12
    max_size: int = 28
    speed: float = 2.0
    velocity_noise: float = 0.3
    min_box: int = 6
    det_noise: float = 0.05
    det_miss: float = 0.1
    det_fp: float = 0.1
    frame_rate: int = 10


@dataclass
class MOTPairsConfig:
    root: str = "data/MOT17"
    # per split: sequence folders, or folders of sequences, relative to root; [] = no such split
    train: List[str] = field(default_factory=lambda: ["train"])
    val: List[str] = field(default_factory=list)
    test: List[str] = field(default_factory=list)
    frame_range: int = 5
    scales: List[int] = field(default_factory=lambda: [608, 640, 672, 704, 736, 768, 800])
    max_size: Optional[int] = 1333
    hflip: float = 0.5
    prev_crop: float = 0.95  # extra crop jitter of the previous frame (fraction of each side kept)
    classes: List[int] = field(default_factory=lambda: [1])
    min_visibility: float = 0.0
    synthetic: Optional[SyntheticNode] = None  # generate sequences into root first


@dataclass
class StaticPairsConfig:
    image_dir: str = "data/crowdhuman/images"
    ann_file: str = "data/crowdhuman/annotations/train.json"
    category_ids: List[int] = field(default_factory=lambda: [1])
    prev_crop: float = 0.8  # the previous frame: 80-100% of each side, resized back
    scales: List[int] = field(default_factory=lambda: [608, 640, 672, 704, 736, 768, 800])
    max_size: Optional[int] = 1333
    hflip: float = 0.5
    # evaluation splits come from MOTChallenge sequences (a static set has no identities to track)
    mot_root: Optional[str] = None
    val: List[str] = field(default_factory=list)
    test: List[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------- factories
def build_trackformer_model(cfg, data_info=None, **context):
    from trackformer import build
    from trackformer.errors import ConfigError
    from trackformer_detr.hooks import _num_classes
    from trackformer_detr.matcher import HungarianMatcher

    from .trackformer import build_trackformer

    if cfg.position_embedding not in ("sine", "learned"):
        raise ConfigError("model.position_embedding", "must be sine or learned")
    for key in ("fn_prob", "fp_prob"):
        if not 0 <= cfg[key] <= 1:
            raise ConfigError(f"model.{key}", f"must be in [0, 1], got {cfg[key]}")
    backbone = build("backbones", cfg.backbone)
    encoder = build("encoders", cfg.encoder, d_model=cfg.hidden_dim)
    decoder = build("decoders", cfg.decoder, d_model=cfg.hidden_dim)
    matcher = HungarianMatcher(cfg.prev_cost_class, cfg.prev_cost_bbox, cfg.prev_cost_giou)
    return build_trackformer(backbone, encoder, decoder, _num_classes(cfg, data_info, "model.num_classes"),
                             cfg.num_queries, matcher, cfg.aux_loss, cfg.fn_prob, cfg.fp_prob,
                             cfg.position_embedding)


def build_small_cnn(cfg, **context):
    from .small_cnn import SmallCNN

    levels = cfg.return_levels
    return SmallCNN(tuple(cfg.widths), cfg.depth, list(levels) if levels is not None else None)


def build_track_matcher(cfg, **context):
    from .criterion import build_matcher

    return build_matcher(cfg.cost_class, cfg.cost_bbox, cfg.cost_giou)


def build_track_criterion(cfg, matcher=None, data_info=None, **context):
    from trackformer_detr.hooks import _num_classes

    from .criterion import build_criterion, build_matcher

    return build_criterion(_num_classes(cfg, data_info, "loss.num_classes"),
                           matcher if matcher is not None else build_matcher(), cfg.eos_coef,
                           cfg.ce_weight, cfg.bbox_weight, cfg.giou_weight, cfg.aux_loss)


def build_mot_pairs(cfg, split, **context):
    from pathlib import Path

    from .sequences import MOTFramePairs, PairTransform, find_sequences

    if cfg.synthetic is not None:
        from .synthetic import SyntheticConfig, generate_dataset

        s = cfg.synthetic
        fields = {k: s[k] for k in SyntheticConfig.__dataclass_fields__}
        generate_dataset(cfg.root, SyntheticConfig(**fields),
                         {"train": s.num_train, "val": s.num_val, "test": s.num_test}, seed=s.seed)
    entries = list(cfg[split])
    if not entries:
        return None
    if not Path(cfg.root).is_dir():
        from trackformer.errors import ConfigError

        raise ConfigError("data.root", f"not a directory: {cfg.root}")
    train = split == "train"
    transform = PairTransform(train, list(cfg.scales), cfg.max_size, cfg.hflip, cfg.prev_crop)
    return MOTFramePairs(find_sequences(cfg.root, entries), transform, cfg.frame_range,
                         tuple(cfg.classes), cfg.min_visibility, pairs=True)


def build_static_pairs(cfg, split, **context):
    from .sequences import MOTFramePairs, PairTransform, StaticImagePairs, find_sequences

    if split != "train":
        entries = list(cfg[split])
        if not entries or cfg.mot_root is None:
            return None
        transform = PairTransform(False, list(cfg.scales), cfg.max_size, 0.0, 1.0)
        return MOTFramePairs(find_sequences(cfg.mot_root, entries), transform, pairs=True)
    transform = PairTransform(True, list(cfg.scales), cfg.max_size, cfg.hflip, 1.0)
    return StaticImagePairs(cfg.image_dir, cfg.ann_file, transform, tuple(cfg.category_ids), cfg.prev_crop)


def build_tracking_evaluator(cfg, data_info=None, **context):
    from .evaluator import build
    from .reid import load_embedder

    embed = load_embedder(cfg.reid_model, cfg.reid_weights) if cfg.tracker.reid_appearance else None
    return build(cfg, embed=embed)


# ------------------------------------------------------------------------------------ registration
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
    register("trackformer", build_trackformer_model, schema=TrackFormerConfig,
             help="TrackFormer: DETR with track queries (Meinhardt et al. 2022)")


@hookimpl
def register_backbones(register):
    register("small_cnn", build_small_cnn, schema=SmallCNNConfig,
             help="small conv net (BatchNorm, stride 2 per width) for from-scratch CPU training")


@hookimpl
def register_matchers(register):
    register("track_hungarian", build_track_matcher, schema=TrackMatcherConfig,
             help="TrackFormer matching: track queries fixed to their identity, the rest Hungarian")


@hookimpl
def register_losses(register):
    register("trackformer_criterion", build_track_criterion, schema=TrackCriterionConfig,
             help="DETR set loss; unmatched track queries learn no-object at full weight")


@hookimpl
def register_datasets(register):
    register("mot_pairs", build_mot_pairs, schema=MOTPairsConfig,
             help="MOTChallenge frame pairs (previous frame within +-frame_range); optional synthetic sequences")
    register("static_pairs", build_static_pairs, schema=StaticPairsConfig,
             help="COCO-format detection images as tracking pairs (previous frame = shifted crop)")


@hookimpl
def register_evaluators(register):
    register("mot_tracking", build_tracking_evaluator, schema=TrackingEvalConfig,
             help="tracks held-out sequences with TrackFormer and the SORT baseline; MOTA, IDF1, HOTA, IDSW")


@hookimpl
def register_commands(register):
    from .track import add_arguments, main

    register("track", main, add_arguments=add_arguments,
             help="track sequences, MOT roots, image folders or videos; results, metrics, rendering")
