"""The track-query plugin's own extension points, published through the core's historic
`add_hookspecs`. Another plugin implements them with `@trackformer.hookimpl` under the same names.

Shapes: B batch, Q all decoder queries of an image (track queries first), T track queries,
D model width. `prev_outputs` is the model's output dict for the previous frames (batch).
"""
import pluggy

hookspec = pluggy.HookspecMarker("trackformer")


@hookspec(firstresult=True)
def trackq_build_track_queries(prev_outputs, index, prev_match, prev_target, target):
    """Choose the previous-frame outputs of image `index` that become track queries during training.

    `prev_match` is `(out_idx [M], tgt_idx [M])`, the Hungarian match of the previous frame's outputs
    to its ground truth. Return a dict `query_ind [T]` (rows of `prev_outputs["hs_embed"][index]`),
    `match_ids [T]` (the index of the same identity in `target["track_ids"]`, -1 when it left) and
    `matched [T]` (bool: the query stems from a matched previous object, not a false positive).
    The default keeps every matched output (TrackFormer)."""


@hookspec(firstresult=True)
def trackq_augment_track_queries(queries, prev_outputs, index, prev_match, fn_prob, fp_prob, generator):
    """Augment the dict from `trackq_build_track_queries` (same keys) and return it. The default drops
    each query with probability `fn_prob` (false negatives) and adds up to ceil(`fp_prob` x T)
    unmatched previous outputs, drawn favouring those near kept ones (false positives)."""


@hookspec
def trackq_edit_matching_cost(cost, outputs, index, target, num_track_slots):
    """Edit in place the matching cost `cost [Q_obj, T_free]` (a NumPy array) between the object
    queries of image `index` and the ground-truth objects not already fixed to a track query, before
    the Hungarian assignment. Return values are ignored."""
