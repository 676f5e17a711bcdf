"""TrackFormer on Deformable DETR (Meinhardt et al., CVPR 2022): the model of every released MOT17/MOT20
checkpoint, official parameter names and order (597 keys with box refinement and the ResNet-50).

A Deformable DETR with box refinement whose transformer (`multi_frame.py`) encodes the previous and the
current frame with one encoder and decodes from both (`multi_frame`), and whose decoder also takes track
queries: the previous frame's last-layer embeddings of tracked objects, placed before the object queries,
with a zero query position and the previous boxes' centres as reference points. Without a previous frame
(the first frame of a sequence, detection-only evaluation) the current frame is its own previous frame.

Training (a target carrying `prev_image` / `prev_target`, as `mot_pairs` gives them): both frames are
padded to one size; the previous frame is decoded without gradients (itself as its previous frame), its
outputs matched to its ground truth (`prev_matcher`, focal cost), and the matched ones become track queries
through the track-query plugin's hooks (false negatives `fn_prob`, false positives `fp_prob`); the current
frame is decoded with them and the previous frame's backbone levels. Outputs carry the query layout
(`num_track_slots`, `track_valid`, `track_match_ids`) for the track matcher and criterion.

Tracking (`track_step`, driven by `trackformer_trackq.online`): the model keeps the previous frame's backbone
levels until `reset_tracking`; a track's query is its embedding with its box appended ([d + 4]), so the
tracker, which stores and returns queries as they are, carries both.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from trackformer.ops.boxes import box_cxcywh_to_xyxy, box_xyxy_to_cxcywh
from trackformer_detr.detr import Inputs, as_padded_batch

from .deformable_detr import DeformableDETR, build_backbone, sine_position
from .multi_frame import MultiFrameTransformer, sine_position_3d
from .settings import DeformableTrackFormerConfig

Levels = Tuple[List[Tensor], List[Tensor]]  # the backbone's levels: features [B, C_l, H_l, W_l], masks [B, H_l, W_l]


def pad_to(images: Tensor, mask: Tensor, height: int, width: int) -> Tuple[Tensor, Tensor]:
    """images [B, 3, h, w] and mask [B, h, w] padded (bottom, right) to [B, 3, height, width]."""
    pad = (0, width - images.shape[-1], 0, height - images.shape[-2])
    return F.pad(images, pad), F.pad(mask, pad, value=True)


class DeformableTrackFormer(DeformableDETR):
    def __init__(self, backbone_channels: Sequence[int], transformer: MultiFrameTransformer, num_classes: int,
                 num_queries: int = 500, num_feature_levels: int = 4, aux_loss: bool = True,
                 with_box_refine: bool = True, backbone: Optional[nn.Module] = None, overflow_boxes: bool = False,
                 prev_matcher=None, fn_prob: float = 0.4, fp_prob: float = 0.1, hook=None):
        super().__init__(backbone_channels, transformer, num_classes, num_queries, num_feature_levels, aux_loss,
                         with_box_refine, False, backbone)
        self.multi_frame = transformer.num_frames > 1
        self.overflow_boxes = overflow_boxes
        self.prev_matcher = prev_matcher  # matches the previous frame's outputs to its ground truth
        self.fn_prob, self.fp_prob = fn_prob, fp_prob
        self.hook = hook  # the plugin manager's hook caller (track-query hooks); None: the defaults
        self._previous: Optional[Levels] = None  # tracking: the previous frame's backbone levels

    @staticmethod
    def upgrade_state_dict(state: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """TrackFormer's own rewrites when it loads a checkpoint: a leading `detr.` removed (models saved
        from the tracking wrapper), keys containing `track_encoding` dropped (an abandoned module)."""
        return {(k[len("detr."):] if k.startswith("detr.") else k): v for k, v in state.items()
                if "track_encoding" not in k}

    # --- one frame pair --------------------------------------------------------------------------
    def frame_levels(self, features: Sequence[Tensor], masks: Sequence[Tensor], frame: int):
        """One frame's backbone levels -> the transformer's srcs, masks and positions of frame `frame`
        (0 previous, 1 current). Extra levels' masks come from the first level's (as TrackFormer's)."""
        srcs = [proj(f) for proj, f in zip(self.input_proj, features)]
        masks = list(masks)
        for lvl in range(len(srcs), self.num_feature_levels):
            srcs.append(self.input_proj[lvl](features[-1] if lvl == len(features) else srcs[-1]))
            masks.append(F.interpolate(masks[0][None].float(), size=srcs[-1].shape[-2:]).to(torch.bool)[0])
        d = self.transformer.d_model
        work = torch.promote_types(srcs[0].dtype, torch.float32)
        if self.multi_frame:
            pos = [sine_position_3d(m, d // 3, frame, 2, dtype=work).to(s.dtype) for s, m in zip(srcs, masks)]
        else:
            pos = [sine_position(m, d // 2, dtype=work).to(s.dtype) for s, m in zip(srcs, masks)]
        return srcs, masks, pos

    def decode(self, current: Levels, previous: Optional[Levels] = None, tracks: Optional[Dict] = None) -> Dict:
        """Backbone levels of the current and previous frame (None: the current one) and track queries
        {"embeds" [B, T, d], "boxes" [B, T, 4] cxcywh, "valid" [B, T] or None, "match_ids"} ->
        outputs {"pred_logits" [B, T+Q, C], "pred_boxes" [B, T+Q, 4], "hs_embed" [B, T+Q, d],
        "aux_outputs", "num_track_slots", "track_valid", "track_match_ids"}; rows [:T] are the tracks."""
        frames = [previous if previous is not None else current, current] if self.multi_frame else [current]
        levels = [self.frame_levels(*frame, index) for index, frame in enumerate(frames)]
        layout = {"num_track_slots": 0, "track_valid": None, "track_match_ids": None}
        track_tgt = track_ref = padding = None
        if tracks is not None and tracks["embeds"].shape[1]:
            track_tgt, track_ref = tracks["embeds"], tracks["boxes"][..., :2]  # [B, T, d], [B, T, 2]
            valid = tracks.get("valid")
            if valid is not None and not bool(valid.all()):
                padding = torch.cat([~valid, valid.new_zeros((valid.shape[0], self.num_queries))], 1)
            layout = {"num_track_slots": track_tgt.shape[1], "track_valid": valid,
                      "track_match_ids": tracks.get("match_ids")}
        hs, init_ref, refs = self.transformer(levels, self.query_embed.weight, track_tgt, track_ref, padding)
        out = self.heads(hs, init_ref, refs)
        out["hs_embed"] = hs[-1]
        for o in [out] + out.get("aux_outputs", []):
            o.update(layout)
        return out

    def backbone_levels(self, images: Tensor, mask: Tensor) -> Levels:
        if self.backbone is None:
            raise ValueError("built without a backbone: call decode with the levels' features")
        return self.backbone(images, mask)

    # --- training and evaluation ------------------------------------------------------------------
    def forward(self, inputs: Inputs, targets: Optional[List[Dict]] = None) -> Dict:
        """Images (as DETR takes them); targets with `prev_image` make it a training pair (module doc).
        Without them every image is its own previous frame and there are no track queries."""
        images, mask = as_padded_batch(inputs)
        if not targets or "prev_image" not in targets[0]:
            return self.decode(self.backbone_levels(images, mask))
        prev_images, prev_mask = as_padded_batch([t["prev_image"] for t in targets])
        height, width = max(images.shape[-2], prev_images.shape[-2]), max(images.shape[-1], prev_images.shape[-1])
        images, mask = pad_to(images, mask, height, width)
        prev_images, prev_mask = pad_to(prev_images.to(images), prev_mask.to(mask.device), height, width)
        with torch.no_grad():
            previous = self.backbone_levels(prev_images, prev_mask)
            tracks = self._track_queries(self.decode(previous), targets)
        return self.decode(self.backbone_levels(images, mask), previous, tracks)

    @torch.no_grad()
    def _track_queries(self, prev_out: Dict, targets: List[Dict]) -> Dict:
        """The previous frame's outputs matched to its ground truth -> padded track queries (module doc)."""
        from trackformer_trackq.track_queries import make_track_queries

        prev_targets = [{k: v.to(prev_out["pred_boxes"].device) if torch.is_tensor(v) else v
                         for k, v in t["prev_target"].items()} for t in targets]
        prev_indices = self.prev_matcher(prev_out, prev_targets)
        # embedding and box travel together through the hooks, which pick rows of `hs_embed`
        packed = dict(prev_out, hs_embed=torch.cat([prev_out["hs_embed"], prev_out["pred_boxes"]], -1))
        chosen = [dict(t) for t in targets]
        make_track_queries(packed, prev_indices, prev_targets, chosen, self.fn_prob if self.training else 0.0,
                           self.fp_prob if self.training else 0.0, hook=self.hook)
        d = self.transformer.d_model
        B, T = len(targets), max(len(t["track_query_hs_embeds"]) for t in chosen)
        rows = prev_out["hs_embed"].new_zeros((B, T, d + 4))
        valid = torch.zeros((B, T), dtype=torch.bool, device=rows.device)
        for b, t in enumerate(chosen):
            rows[b, :len(t["track_query_hs_embeds"])] = t["track_query_hs_embeds"]
            valid[b, :len(t["track_query_hs_embeds"])] = True
        return {"embeds": rows[..., :d], "boxes": rows[..., d:], "valid": valid,
                "match_ids": [t["track_query_match_ids"] for t in chosen]}

    # --- online tracking --------------------------------------------------------------------------
    def reset_tracking(self):
        """Forget the previous frame (a new sequence starts)."""
        self._previous = None

    @torch.no_grad()
    def track_step(self, image: Tensor, track_queries: Optional[Tensor]) -> Dict:
        """One tracking step: `image [3, H, W]` (normalised) and `track_queries [T, d + 4]` (embedding and
        cxcywh box, as earlier steps returned them) or None -> `track` and `det` dicts with `scores [n]`
        (sigmoid, 0 unless class 0 is the best), `boxes [n, 4]` (cxcywh relative) and `embeds [n, d + 4]`.
        The previous frame is the last step's, unless `reset_tracking` came between or its size differs."""
        images, mask = as_padded_batch([image])
        current = self.backbone_levels(images, mask)
        previous = self._previous
        if previous is not None and previous[0][0].shape != current[0][0].shape:
            previous = None
        tracks = None
        if track_queries is not None and len(track_queries):
            d = self.transformer.d_model
            tracks = {"embeds": track_queries[None, :, :d].to(images), "boxes": track_queries[None, :, d:].to(images)}
        out = self.decode(current, previous, tracks)
        self._previous = current
        T = out["num_track_slots"]
        scores, labels = out["pred_logits"][0].sigmoid().max(-1)  # [T+Q]
        scores = torch.where(labels == 0, scores, torch.zeros_like(scores))
        boxes = out["pred_boxes"][0]
        if not self.overflow_boxes:
            boxes = box_xyxy_to_cxcywh(box_cxcywh_to_xyxy(boxes).clamp(0, 1))
        embeds = torch.cat([out["hs_embed"][0], boxes], -1)
        return {"track": {"scores": scores[:T], "boxes": boxes[:T], "embeds": embeds[:T]},
                "det": {"scores": scores[T:], "boxes": boxes[T:], "embeds": embeds[T:]}}


def build_deformable_trackformer(num_classes: int = 20, backbone_channels: Sequence[int] = (512, 1024, 2048),
                                 num_feature_levels: int = 4, d_model: int = 288, num_queries: int = 500,
                                 aux_loss: bool = True, dim_feedforward: int = 1024, dropout: float = 0.1,
                                 nheads: int = 8, enc_layers: int = 6, dec_layers: int = 6, n_points: int = 4,
                                 multi_frame: bool = True, offset_normalizer: str = "wh",
                                 memory_order: str = "previous_current", overflow_boxes: bool = False,
                                 prev_matcher=None, fn_prob: float = 0.4, fp_prob: float = 0.1,
                                 backbone: Optional[nn.Module] = None, hook=None) -> DeformableTrackFormer:
    """The released layout by default (less the backbone: its levels' channels are `backbone_channels`)."""
    if backbone is not None:
        backbone_channels = [level.channels for level in backbone.levels.values()]
    transformer = MultiFrameTransformer(d_model, nheads, enc_layers, dec_layers, dim_feedforward, dropout,
                                        num_feature_levels, n_points, offset_normalizer, 2 if multi_frame else 1,
                                        memory_order)
    return DeformableTrackFormer(list(backbone_channels), transformer, num_classes, num_queries, num_feature_levels,
                                 aux_loss, True, backbone, overflow_boxes, prev_matcher, fn_prob, fp_prob, hook)


def build(settings: DeformableTrackFormerConfig, data_info=None, **deps) -> DeformableTrackFormer:
    """The `deformable_trackformer` architecture from its settings."""
    from trackformer.plugins import load_plugins
    from trackformer_detr.detr import num_classes_from

    from .matcher import build as build_matcher

    backbone = build_backbone(settings)
    return build_deformable_trackformer(
        num_classes_from(settings, data_info), num_feature_levels=settings.num_feature_levels,
        d_model=settings.hidden_dim, num_queries=settings.num_queries, aux_loss=settings.aux_loss,
        dim_feedforward=settings.dim_feedforward, dropout=settings.dropout, nheads=settings.nheads,
        enc_layers=settings.enc_layers, dec_layers=settings.dec_layers, n_points=settings.n_points,
        multi_frame=settings.multi_frame, offset_normalizer=settings.offset_normalizer,
        memory_order=settings.memory_order, overflow_boxes=settings.overflow_boxes,
        prev_matcher=build_matcher(settings.prev_matcher), fn_prob=settings.fn_prob, fp_prob=settings.fp_prob,
        backbone=backbone, hook=load_plugins().hook)
