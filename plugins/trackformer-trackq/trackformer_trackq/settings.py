"""Settings of every component of the track-query plugin: plain dataclasses with no heavy imports, so
`hooks.py` registers them at start-up and the code that runs them (`trackformer.py`, `tracker.py`,
`sort.py`, `synthetic.py`, `evaluator.py`) shares one definition of every default. DETR's settings
are reused, never copied: TrackFormer's extend `DETRConfig`, its matcher and loss take DETR's.
"""
from dataclasses import dataclass, field
from typing import List, Literal, Optional

from trackformer.errors import ConfigError
from trackformer_detr.settings import DETRConfig, HungarianConfig


@dataclass
class TrackFormerConfig(DETRConfig):
    fn_prob: float = 0.4  # drop each track query in training (false negatives)
    fp_prob: float = 0.1  # add up to ceil(fp_prob x T) background queries (false positives)
    # matching of the previous frame's outputs to its ground truth, which picks the track queries
    prev_matcher: HungarianConfig = field(default_factory=HungarianConfig)

    def __post_init__(self):
        super().__post_init__()
        for name in ("fn_prob", "fp_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(name, f"must be in [0, 1], got {getattr(self, name)}")


@dataclass
class SmallCNNConfig:
    widths: List[int] = field(default_factory=lambda: [32, 64, 96])
    depth: int = 2
    return_levels: Optional[List[str]] = None  # stride2 .. stride{2**len(widths)}; None: the last


@dataclass
class SyntheticConfig:
    """The generated sequences (see `synthetic.py`)."""
    width: int = 160
    height: int = 160
    seq_length: int = 60
    max_objects: int = 5  # objects in the scene at once
    initial_objects: int = 3
    spawn_prob: float = 0.15  # per frame, while below max_objects
    min_size: int = 14
    max_size: int = 32
    speed: float = 2.0  # pixels per frame
    velocity_noise: float = 0.3  # std of the per-frame velocity perturbation
    min_box: int = 6  # ground truth needs at least this many pixels inside the image on each side
    det_noise: float = 0.05  # public detections: box jitter, fraction of the box size
    det_miss: float = 0.1
    det_fp: float = 0.1  # expected false positives per frame
    frame_rate: int = 10


@dataclass
class SyntheticSplitsConfig(SyntheticConfig):
    """`data.synthetic`: how many sequences of each split to generate into `data.root` first."""
    num_train: int = 12
    num_val: int = 1
    num_test: int = 3
    seed: int = 0


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
    crop: float = 0.0  # probability of cutting both frames to one random region before resizing
    crop_min: float = 0.5  # that region keeps crop_min..1 of each side
    classes: List[int] = field(default_factory=lambda: [1])
    min_visibility: float = 0.0
    synthetic: Optional[SyntheticSplitsConfig] = None  # generate sequences into root first

    def __post_init__(self):
        for name in ("hflip", "crop"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(name, f"must be in [0, 1], got {getattr(self, name)}")
        for name in ("prev_crop", "crop_min"):
            if not 0 < getattr(self, name) <= 1:
                raise ConfigError(name, f"must be in (0, 1], got {getattr(self, name)}")


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


@dataclass
class TrackerConfig:
    detection_threshold: float = 0.4
    track_threshold: float = 0.4
    reid_threshold: float = 0.4  # score for an inactive track's query to bring it back
    track_nms: float = 0.9
    # NMS among tracks ranks by "score" (official) or by "continuity": the IoU of each track's box with
    # its own box one frame earlier, so a track query that jumped onto another object loses
    track_nms_rank: Literal["score", "continuity"] = "score"
    # a track NMS suppresses is deleted (official), or turns inactive with its box and query of the
    # frame before, so it can be re-identified when its object reappears
    track_nms_to_inactive: bool = False
    detection_nms: float = 0.9
    inactive_patience: int = 5
    public_detections: bool = False
    public_iou: float = 0.5
    # which new detections public boxes support (TrackFormer's `public_detections` values, or Hungarian)
    public_matching: Literal["min_iou_0_5", "center_distance", "one_to_one"] = "min_iou_0_5"
    # appearance re-identification of inactive tracks (needs an embedding model)
    reid_appearance: bool = False
    reid_similarity: float = 0.7  # minimum cosine similarity
    reid_weight: float = 0.5  # weight of appearance vs. IoU with the last box in the matching cost
    reid_crop_height: int = 64
    reid_crop_width: int = 64
    reid_momentum: float = 0.8  # running average of a track's appearance while it is active


@dataclass
class SortConfig:
    detection_threshold: Optional[float] = 0.4  # None: every detection (the reference ignores scores)
    iou_threshold: float = 0.3
    max_age: int = 1
    min_hits: int = 3


@dataclass
class ByteTrackConfig:
    """Two-threshold association (ByteTrack, ifzhang/ByteTrack's defaults); see `bytetrack.py`."""
    track_thresh: float = 0.6  # high pool: score > track_thresh; low pool: low_thresh < score < track_thresh
    low_thresh: float = 0.1
    new_track_offset: float = 0.1  # unmatched high detections start tracks from track_thresh + this
    match_thresh: float = 0.9  # first association: cost 1 - IoU (x score when fuse_score) below this
    second_match_thresh: float = 0.5  # second association (low pool): cost 1 - IoU
    unconfirmed_match_thresh: float = 0.7
    fuse_score: bool = True
    track_buffer: int = 30  # frames a lost track is kept, at 30 fps (scaled by the sequence's rate)
    min_box_area: float = 100.0  # output filter (not inside the tracker)
    max_aspect: Optional[float] = 1.6  # output filter: boxes with w / h above this are not written
    # unnormalised detection scores (MOT15's ACF: 0.14-133): `rank` maps each file's scores to their
    # quantile in [0, 1]; `auto` does so only when a score exceeds 1; `none` keeps them
    score_norm: Literal["auto", "rank", "none"] = "auto"

    def __post_init__(self):
        if not 0 <= self.low_thresh < self.track_thresh:
            raise ConfigError("low_thresh", f"must be >= 0 and below track_thresh ({self.track_thresh}), "
                                            f"got {self.low_thresh}")


@dataclass
class TrackingEvalConfig:
    size: int = 0  # short side of the network input; 0 = the frames' own size
    max_size: Optional[int] = None
    benchmark: Literal["MOT15", "MOT16", "MOT17", "MOT20"] = "MOT17"  # the core evaluator's preprocessing
    public_detections: bool = False  # the MOT17 public protocol: births gated by det/det.txt
    baseline: bool = True  # also run SORT on the same detector
    render: bool = False  # also draw the tracks: <output_dir>/tracking/render/<seq>.gif
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    sort: SortConfig = field(default_factory=SortConfig)
    bytetrack: ByteTrackConfig = field(default_factory=ByteTrackConfig)
    # more trackers scored beside TrackFormer, each as `<name>/<key>`: sort / bytetrack on the model's
    # detections, sort_public / bytetrack_public on det/det.txt (SORT there as the reference: no threshold)
    baselines: List[Literal["sort", "bytetrack", "sort_public", "bytetrack_public"]] = field(default_factory=list)
    per_sequence: bool = False  # also `<SEQ>/<key>` and `<SEQ>/<baseline>/<key>`
    # appearance re-id: a metric-learning run config whose model offers `embed(images) -> [N, D]`
    reid_model: Optional[str] = None
    reid_weights: Optional[str] = None
