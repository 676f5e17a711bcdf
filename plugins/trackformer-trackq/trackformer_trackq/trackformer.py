"""TrackFormer (Meinhardt et al., CVPR 2022): DETR whose decoder also receives track queries.

The last decoder layer's output embedding of each object tracked in frame t-1 is a query for frame t,
placed before the learned object queries, with a zero positional part; self-attention runs over all
of them. In training, a target that carries `prev_image` makes the model decode the previous frame
first (without gradients), match it to its ground truth and turn the matched outputs into track
queries (see `track_queries.py`); the state dict is DETR's, so a DETR checkpoint fine-tunes directly.
"""
from typing import Dict, List, Optional

import torch
from torch import Tensor

from trackformer_detr.detr import DETR, Joiner, Queries, build_parts, num_classes_from

from .settings import TrackFormerConfig
from .track_queries import make_track_queries, pad_track_queries


class TrackFormer(DETR):
    def __init__(self, backbone: Joiner, transformer, num_classes: int, num_queries: int,
                 matcher, aux_loss: bool = True, fn_prob: float = 0.4, fp_prob: float = 0.1, hook=None):
        super().__init__(backbone, transformer, num_classes, num_queries, aux_loss)
        self.prev_matcher = matcher  # matches the previous frame's outputs to its ground truth
        self.fn_prob = fn_prob
        self.fp_prob = fp_prob
        self.hook = hook  # the plugin manager's hook caller (track-query hooks); None: the defaults

    def make_queries(self, batch_size: int, targets: Optional[List[Dict]] = None) -> Queries:
        """Track queries [T, B, D] (zero position) before the object queries [Q, B, D]; the layout
        tells the matcher and the criterion which slots are real track queries and whom they follow."""
        queries = super().make_queries(batch_size, targets)
        if not targets or "track_query_hs_embeds" not in targets[0]:
            return queries._replace(layout={"num_track_slots": 0, "track_valid": None, "track_match_ids": None})
        track, valid = pad_track_queries([t["track_query_hs_embeds"] for t in targets],
                                         queries.pos.shape[-1], queries.pos.device, queries.pos.dtype)
        padding = None
        if not bool(valid.all()):  # images with fewer track queries than the batch maximum
            padding = torch.cat([~valid, valid.new_zeros((batch_size, self.num_queries))], dim=1)
        layout = {"num_track_slots": track.shape[0], "track_valid": valid,  # [B, T]
                  "track_match_ids": [t.get("track_query_match_ids") for t in targets]}
        return Queries(torch.cat([track, queries.tgt]), torch.cat([torch.zeros_like(track), queries.pos]),
                       padding, layout)

    @torch.no_grad()
    def _prev_frame_track_queries(self, targets: List[Dict]) -> List[Dict]:
        prev_targets = [t["prev_target"] for t in targets]
        prev_out = super().forward([t["prev_image"] for t in targets])
        prev_indices = self.prev_matcher(prev_out, prev_targets)
        return make_track_queries(prev_out, prev_indices, prev_targets, targets,
                                  self.fn_prob if self.training else 0.0,
                                  self.fp_prob if self.training else 0.0, hook=self.hook)

    def forward(self, inputs, targets: Optional[List[Dict]] = None) -> Dict:
        if targets is not None and len(targets) and "prev_image" in targets[0]:
            targets = self._prev_frame_track_queries(targets)
        return super().forward(inputs, targets)

    @torch.no_grad()
    def track_step(self, image: Tensor, track_queries: Optional[Tensor]) -> Dict:
        """One tracking step: `image [3, H, W]` (normalised), `track_queries [T, D]` or None ->
        `track` and `det` dicts with `scores [n]`, `boxes [n, 4]` (cxcywh relative) and `embeds [n, D]`."""
        targets = None
        if track_queries is not None and len(track_queries):
            targets = [{"track_query_hs_embeds": track_queries}]
        out = super().forward([image], targets)
        T = out["num_track_slots"]
        prob = out["pred_logits"][0].softmax(-1)[:, :-1]  # [T+Q, C]
        scores = prob.max(-1).values
        boxes, embeds = out["pred_boxes"][0], out["hs_embed"][0]
        return {"track": {"scores": scores[:T], "boxes": boxes[:T], "embeds": embeds[:T]},
                "det": {"scores": scores[T:], "boxes": boxes[T:], "embeds": embeds[T:]}}


def build_trackformer(backbone, encoder, decoder, num_classes: int, num_queries: int, matcher,
                      aux_loss: bool = True, fn_prob: float = 0.4, fp_prob: float = 0.1,
                      position_embedding: str = "sine", hook=None) -> TrackFormer:
    from trackformer_detr import position
    from trackformer_detr.transformer import Transformer

    joiner = Joiner(backbone, position.build(position_embedding, decoder.d_model))
    return TrackFormer(joiner, Transformer(encoder, decoder), num_classes, num_queries, matcher,
                       aux_loss, fn_prob, fp_prob, hook)


def build(settings: TrackFormerConfig, data_info=None, **deps) -> TrackFormer:
    """The `trackformer` architecture: DETR's parts and settings, plus the track-query ones."""
    from trackformer.plugins import load_plugins
    from trackformer_detr import matcher

    return build_trackformer(*build_parts(settings), num_classes_from(settings, data_info), settings.num_queries,
                             matcher.build(settings.prev_matcher), settings.aux_loss, settings.fn_prob,
                             settings.fp_prob, settings.position_embedding, hook=load_plugins().hook)
