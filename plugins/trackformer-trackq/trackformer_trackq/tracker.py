"""TrackFormer's online tracking state machine, separated from the network so it can be driven (and
tested) with any per-frame outputs.

Per frame the network decodes the current image with one track query per active or inactive track
(in `Tracker.queries()` order) followed by the learned object queries. `Tracker.step` then
  1. keeps an active track while its query scores above `track_threshold`, else turns it inactive;
     revives an inactive track whose query scores above `reid_threshold`;
  2. runs NMS among the active tracks (`track_nms`), deleting the weaker of two overlapping tracks
     (ranked by score, or by `track_nms_rank: continuity`; `track_nms_to_inactive` keeps it inactive);
  3. turns object-query detections above `detection_threshold` into new tracks, unless a public
     detection does not support them (public mode, `public_matching`: TrackFormer's `min_iou_0_5` or
     `center_distance`, or one-to-one IoU >= `public_iou`) or they overlap an
     active track above `detection_nms` (existing tracks win);
  4. optionally re-identifies inactive tracks by appearance (cosine similarity of embeddings from an
     `embed(images [N,3,h,w]) -> [N,E]` callable) before starting a new track;
  5. forgets inactive tracks after `inactive_patience` frames.
"""
from typing import Callable, Dict, List, Optional

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torchvision.ops import box_iou, nms

from .settings import TrackerConfig


class Track:
    __slots__ = ("id", "box", "score", "query", "inactive", "feature", "age")

    def __init__(self, tid: int, box, score: float, query):
        self.id, self.box, self.score, self.query = tid, box, score, query
        self.inactive = -1  # -1: active; otherwise frames spent inactive
        self.feature = None
        self.age = 0


class Tracker:
    def __init__(self, cfg: TrackerConfig = TrackerConfig(), embed: Optional[Callable] = None):
        if cfg.reid_appearance and embed is None:
            raise ValueError("reid_appearance needs an embedding model")
        self.cfg = cfg
        self.embed = embed if cfg.reid_appearance else None
        self.reset()

    def reset(self):
        self.active: List[Track] = []
        self.inactive: List[Track] = []
        self.next_id = 1

    def tracks(self) -> List[Track]:
        """Active then inactive: the order of the track queries the network must decode."""
        return self.active + self.inactive

    def queries(self) -> Optional[torch.Tensor]:
        tracks = self.tracks()
        return torch.stack([t.query for t in tracks]) if tracks else None  # [T, D]

    def step(self, track_out: Optional[Dict], det_out: Dict, public_boxes=None, image=None) -> List[Dict]:
        """`track_out`/`det_out`: `scores [N]`, `boxes [N,4]` (xyxy pixels), `embeds [N,D]`; `track_out`
        rows follow `queries()`. `public_boxes [P,4]` xyxy; `image [3,H,W]` in [0,1] for appearance.
        Returns the active tracks after this frame: dicts `id, box [4], score`."""
        cfg = self.cfg
        n_act = len(self.active)
        before = {t.id: (t.box, t.query) for t in self.active}  # for the track NMS
        if track_out is not None and (n_act + len(self.inactive)):
            scores, boxes, embeds = track_out["scores"], track_out["boxes"], track_out["embeds"]
            still_active, to_inactive, revived, still_inactive = [], [], [], []
            for i, t in enumerate(self.tracks()):
                thr = cfg.track_threshold if i < n_act else cfg.reid_threshold
                if scores[i] > thr and _area(boxes[i]) > 0:
                    t.box, t.score, t.query = boxes[i], float(scores[i]), embeds[i]
                    (still_active if i < n_act else revived).append(t)
                else:
                    (to_inactive if i < n_act else still_inactive).append(t)
            for t in revived:
                t.inactive = -1
            for t in to_inactive:
                t.inactive = 0
            self.active = still_active + revived
            self.inactive = still_inactive + to_inactive

        if len(self.active) > 1 and cfg.track_nms < 1:
            self._track_nms(before)

        new = self._new_detections(det_out, public_boxes)
        if self.embed is not None and image is not None:
            new = self._appearance_reid(new, det_out, image)
        for j in new:
            t = Track(self.next_id, det_out["boxes"][j], float(det_out["scores"][j]), det_out["embeds"][j])
            self.next_id += 1
            self.active.append(t)
            if self.embed is not None and image is not None:
                t.feature = self._features(image, t.box[None])[0]

        for t in self.inactive:
            t.inactive += 1
        self.inactive = [t for t in self.inactive if t.inactive <= cfg.inactive_patience]
        for t in self.active:
            t.age += 1
        return [{"id": t.id, "box": t.box, "score": t.score} for t in self.active]

    def _track_nms(self, before: Dict):
        """Suppresses the weaker of two active tracks overlapping above `track_nms`; `before` maps the
        ids of the tracks active one frame earlier to their (box, query) of that frame."""
        cfg = self.cfg
        boxes = torch.stack([t.box for t in self.active]).float()  # [A, 4]
        if cfg.track_nms_rank == "continuity":  # revived tracks rank last: they have no box one frame back
            rank = torch.tensor([_iou(t.box, before[t.id][0]) if t.id in before else 0.0 for t in self.active])
        else:
            rank = torch.tensor([t.score for t in self.active])
        keep = set(nms(boxes, rank.float(), cfg.track_nms).tolist())
        suppressed = [t for i, t in enumerate(self.active) if i not in keep]
        self.active = [t for i, t in enumerate(self.active) if i in keep]
        if cfg.track_nms_to_inactive:
            for t in suppressed:
                if t.id in before:
                    t.box, t.query = before[t.id]
                t.inactive = 0
                self.inactive.append(t)

    def _new_detections(self, det_out, public_boxes) -> List[int]:
        cfg = self.cfg
        keep = torch.nonzero(det_out["scores"] > cfg.detection_threshold).flatten()
        boxes = det_out["boxes"][keep]
        if len(keep):
            keep = keep[(boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])]
        if cfg.public_detections:
            if public_boxes is None or len(public_boxes) == 0 or len(keep) == 0:
                return []
            keep = keep[_public_support(det_out["boxes"][keep].float(), torch.as_tensor(public_boxes).float(),
                                        cfg.public_matching, cfg.public_iou)]
        if len(keep) == 0:
            return []
        boxes, scores = det_out["boxes"][keep].float(), det_out["scores"][keep].float()
        if self.active:
            track_boxes = torch.stack([t.box for t in self.active]).float()
            free = box_iou(boxes, track_boxes).max(dim=1).values <= cfg.detection_nms
            keep, boxes, scores = keep[free], boxes[free], scores[free]
        if len(keep) > 1:
            keep = keep[nms(boxes, scores, cfg.detection_nms)]
        return keep.tolist()

    def _features(self, image, boxes) -> torch.Tensor:
        """Crops `boxes [N,4]` from `image [3,H,W]`, resizes them and embeds them, L2-normalised."""
        from torchvision.ops import roi_align

        cfg = self.cfg
        rois = torch.cat([torch.zeros(len(boxes), 1), boxes.float()], dim=1)
        crops = roi_align(image[None].float(), rois, (cfg.reid_crop_height, cfg.reid_crop_width), aligned=True)
        with torch.no_grad():
            feats = self.embed(crops)
        return F.normalize(torch.as_tensor(feats).float(), dim=-1)  # [N, E]

    def _appearance_reid(self, new: List[int], det_out, image) -> List[int]:
        """Matches new detections to inactive tracks by appearance; matched ones revive their track."""
        cfg = self.cfg
        if self.active:  # keep active appearances current, so a track going inactive has a fresh one
            feats = self._features(image, torch.stack([t.box for t in self.active]))
            for t, f in zip(self.active, feats):
                t.feature = f if t.feature is None else F.normalize(
                    cfg.reid_momentum * t.feature + (1 - cfg.reid_momentum) * f, dim=0)
        candidates = [t for t in self.inactive if t.feature is not None]
        if not new or not candidates:
            return new
        det_boxes = det_out["boxes"][new].float()
        det_feats = self._features(image, det_boxes)
        sim = det_feats @ torch.stack([t.feature for t in candidates]).T  # [K, I]
        iou = box_iou(det_boxes, torch.stack([t.box for t in candidates]).float())
        cost = cfg.reid_weight * (1 - sim) + (1 - cfg.reid_weight) * (1 - iou)
        cost[sim < cfg.reid_similarity] = 1e6
        rows, cols = linear_sum_assignment(cost.numpy())
        matched = set()
        for r, c in zip(rows, cols):
            if cost[r, c] >= 1e6:
                continue
            t, j = candidates[c], new[r]
            t.box, t.score, t.query = det_out["boxes"][j], float(det_out["scores"][j]), det_out["embeds"][j]
            t.inactive, t.feature = -1, det_feats[r]
            self.inactive.remove(t)
            self.active.append(t)
            matched.add(r)
        return [j for r, j in enumerate(new) if r not in matched]


def _public_support(boxes, public, matching: str, min_iou: float) -> torch.Tensor:
    """Indices (sorted) of the new detections `boxes [K, 4]` that public boxes `public [P, 4]` (xyxy) support:
    "min_iou_0_5" (official): each public box claims its best detection if their IoU >= `min_iou`;
    "center_distance" (official): each public box claims the detection with the nearest centre, if the
    squared centre distance is below that detection's area; "one_to_one": Hungarian on IoU, pairs >= `min_iou`."""
    if matching == "center_distance":
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        dist = ((public[:, None, :2] + public[:, None, 2:]) / 2 - centres[None]).pow(2).sum(-1)  # [P, K]
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        dist = torch.where(dist < area[None], dist, torch.full_like(dist, float("inf")))
        best, index = dist.min(1)
        claimed = index[torch.isfinite(best)]
    elif matching == "min_iou_0_5":
        best, index = box_iou(public, boxes).max(1)  # [P]
        claimed = index[best >= min_iou]
    else:
        iou = box_iou(boxes, public)  # [K, P]
        rows, cols = linear_sum_assignment(-iou.numpy())
        claimed = torch.as_tensor([r for r, c in zip(rows, cols) if iou[r, c] >= min_iou], dtype=torch.long)
    return torch.unique(claimed)


def _iou(a, b) -> float:
    return float(box_iou(a[None].float(), b[None].float())[0, 0])


def _area(box) -> float:
    return float((box[2] - box[0]).clamp(min=0) * (box[3] - box[1]).clamp(min=0))


def build(cfg, embed: Optional[Callable] = None) -> Tracker:
    fields = TrackerConfig.__dataclass_fields__
    return Tracker(TrackerConfig(**{k: cfg[k] for k in fields if k in cfg}), embed=embed)
