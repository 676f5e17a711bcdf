"""Settings of the online tracker, the SORT baseline and the tracking evaluator: plain dataclasses
with no heavy imports, so the plugin's config schema (`hooks.py`) and the code that runs them
(`tracker.py`, `sort.py`, `evaluator.py`) share one definition of every default."""
from dataclasses import dataclass, field
from typing import Optional


@dataclass
class TrackerConfig:
    detection_threshold: float = 0.4
    track_threshold: float = 0.4
    reid_threshold: float = 0.4  # score for an inactive track's query to bring it back
    track_nms: float = 0.9
    detection_nms: float = 0.9
    inactive_patience: int = 5
    public_detections: bool = False
    public_iou: float = 0.5
    # appearance re-identification of inactive tracks (needs an embedding model)
    reid_appearance: bool = False
    reid_similarity: float = 0.7  # minimum cosine similarity
    reid_weight: float = 0.5  # weight of appearance vs. IoU with the last box in the matching cost
    reid_crop_height: int = 64
    reid_crop_width: int = 64
    reid_momentum: float = 0.8  # running average of a track's appearance while it is active


@dataclass
class SortConfig:
    detection_threshold: float = 0.4
    iou_threshold: float = 0.3
    max_age: int = 1
    min_hits: int = 3


@dataclass
class TrackingEvalConfig:
    size: int = 0  # short side of the network input; 0 = the frames' own size
    max_size: Optional[int] = None
    benchmark: str = "MOT17"  # the core evaluator's preprocessing (MOT17: distractors removed)
    public_detections: bool = False  # the MOT17 public protocol: births gated by det/det.txt
    baseline: bool = True  # also run SORT on the same detector
    render: bool = False  # also draw the tracks: <output_dir>/tracking/render/<seq>.gif
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    sort: SortConfig = field(default_factory=SortConfig)
    # appearance re-id: a metric-learning run config whose model offers `embed(images) -> [N, D]`
    reid_model: Optional[str] = None
    reid_weights: Optional[str] = None
