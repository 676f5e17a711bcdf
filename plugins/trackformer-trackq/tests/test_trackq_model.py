"""Track queries in the model, the matcher and the loss."""
import itertools
import math

import numpy as np
import torch

from trackformer_detr.detr import build_detr
from trackformer_detr.matcher import HungarianMatcher
from trackformer_detr.settings import TransformerStackConfig as Stack
from trackformer_detr.transformer import build_decoder, build_encoder
from trackformer_trackq.criterion import TrackCriterion, TrackMatcher
from trackformer_trackq.small_cnn import SmallCNN
from trackformer_trackq.track_queries import default_augment, default_build, make_track_queries
from trackformer_trackq.trackformer import build_trackformer

D, Q = 32, 6


def tiny(seed=0):
    torch.manual_seed(seed)
    return build_trackformer(SmallCNN((8, 16), 1), build_encoder(Stack(1, 4, 64, 0.0), D), build_decoder(Stack(2, 4, 64, 0.0), D),
                             num_classes=1, num_queries=Q, matcher=HungarianMatcher())


def box_target(boxes, ids):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32), "labels": torch.zeros(len(ids), dtype=torch.int64),
            "track_ids": torch.tensor(ids)}


def test_detr_checkpoint_loads_strictly_and_predicts_the_same():
    model = tiny().eval()
    torch.manual_seed(1)
    detr = build_detr(SmallCNN((8, 16), 1), build_encoder(Stack(1, 4, 64, 0.0), D), build_decoder(Stack(2, 4, 64, 0.0), D),
                      num_classes=1, num_queries=Q).eval()
    assert set(model.state_dict()) == set(detr.state_dict())
    model.load_state_dict(detr.state_dict(), strict=True)
    image = torch.randn(3, 64, 48)
    with torch.no_grad():
        ref = detr([image])
        out = model.track_step(image, None)
    torch.testing.assert_close(out["det"]["boxes"], ref["pred_boxes"][0])
    torch.testing.assert_close(out["det"]["embeds"], ref["hs_embed"][0])


def test_track_queries_go_first_with_zero_position_and_padding_is_masked():
    model = tiny().eval()
    images = [torch.randn(3, 64, 64), torch.randn(3, 64, 64)]
    e0, e1 = torch.randn(3, D), torch.randn(1, D)
    with torch.no_grad():
        out = model(images, [{"track_query_hs_embeds": e0}, {"track_query_hs_embeds": e1}])
        single = model.track_step(images[1], e1)
        # the same by hand: track embeddings as content, zero position, before the object queries
        memory, mask, pos, _, _ = model.encode([images[0]])
        tgt = torch.cat([e0[:, None], torch.zeros(Q, 1, D)])
        qpos = torch.cat([torch.zeros(3, 1, D), model.query_embed.weight[:, None]])
        hs = model.transformer.decode(tgt, memory, mask, pos, qpos)
    assert out["pred_logits"].shape == (2, 3 + Q, 2) and out["num_track_slots"] == 3
    torch.testing.assert_close(out["hs_embed"][0], hs[-1, 0])
    # image 1 has one track query and two padding slots: its outputs equal a batch of one
    torch.testing.assert_close(out["pred_boxes"][1, :1], single["track"]["boxes"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out["pred_boxes"][1, 3:], single["det"]["boxes"], atol=1e-5, rtol=1e-5)
    assert out["track_valid"].tolist() == [[True, True, True], [True, False, False]]


def test_matcher_fixes_track_queries_and_hungarian_matches_the_rest():
    rng = np.random.default_rng(0)
    matcher = TrackMatcher()
    T, n = 3, 4
    logits = torch.tensor(rng.normal(size=(1, T + Q, 2)), dtype=torch.float32)
    boxes = torch.tensor(rng.uniform(0.2, 0.6, size=(1, T + Q, 4)), dtype=torch.float32)
    target = box_target(rng.uniform(0.2, 0.6, size=(n, 4)), [5, 6, 7, 8])
    outputs = {"pred_logits": logits, "pred_boxes": boxes, "num_track_slots": T,
               "track_valid": torch.tensor([[True, True, False]]), "track_match_ids": [torch.tensor([2, -1])]}
    rows, cols = matcher(outputs, [target])[0]
    pairs = dict(zip(rows.tolist(), cols.tolist()))
    assert pairs.get(0) == 2 and 1 not in pairs and 2 not in pairs  # fixed; gone; padding
    cost = HungarianMatcher().cost_matrix(outputs, [target])[0].numpy()
    free = [0, 1, 3]
    best = min(itertools.permutations(range(T, T + Q), len(free)),
               key=lambda p: sum(cost[r, c] for r, c in zip(p, free)))
    got = sum(cost[r, c] for r, c in pairs.items() if r >= T)
    assert abs(got - sum(cost[r, c] for r, c in zip(best, free))) < 1e-5
    assert sorted(c for r, c in pairs.items() if r >= T) == free


def test_unmatched_track_queries_learn_no_object_at_full_weight_padding_not_at_all():
    crit = TrackCriterion(1, TrackMatcher(), eos_coef=0.1)
    T = 3
    outputs = {"pred_logits": torch.zeros(1, T + Q, 2), "pred_boxes": torch.full((1, T + Q, 4), 0.3),
               "num_track_slots": T, "track_valid": torch.tensor([[True, True, False]]),
               "track_match_ids": [torch.tensor([0, -1])]}
    target = box_target([[0.3, 0.3, 0.2, 0.2]], [1])
    indices = crit.match(outputs, [target])
    tc = torch.full((1, T + Q), 1)
    tc[0, indices[0][0]] = 0
    w = crit.class_weights(outputs, [target], indices, tc)[0]
    assert w[0] == 1 and w[1] == 1 and w[2] == 0
    assert torch.allclose(w[T:], torch.full((Q,), 0.1))
    # and the loss equals a hand computation of the weighted CE
    losses = crit(outputs, [target])
    assert abs(losses["loss_ce"].item() - math.log(2)) < 1e-6  # uniform logits: CE = log 2 everywhere


def test_default_build_maps_identities_between_frames():
    prev_target = box_target([[0.1, 0.1, 0.1, 0.1]] * 3, [7, 8, 9])
    target = box_target([[0.1, 0.1, 0.1, 0.1]] * 2, [9, 7])
    match = (torch.tensor([4, 0, 2]), torch.tensor([0, 1, 2]))  # outputs 4, 0, 2 -> ids 7, 8, 9
    q = default_build({}, 0, match, prev_target, target)
    assert q["query_ind"].tolist() == [4, 0, 2] and q["match_ids"].tolist() == [1, -1, 0]
    empty = default_build({}, 0, match, prev_target, box_target(np.zeros((0, 4)), []))
    assert empty["match_ids"].tolist() == [-1, -1, -1]


def test_augmentation_drops_and_adds_false_positives_near_objects():
    g = torch.Generator().manual_seed(0)
    n_prev = 20
    boxes = torch.rand(1, n_prev, 4) * 0.5 + 0.25
    boxes[0, 5] = torch.tensor([0.9, 0.9, 0.1, 0.1])
    q = {"query_ind": torch.tensor([5, 6]), "match_ids": torch.tensor([0, 1]), "matched": torch.ones(2, dtype=torch.bool)}
    prev = {"pred_boxes": boxes}
    match = (torch.tensor([5, 6]), torch.tensor([0, 1]))
    assert len(default_augment(q, prev, 0, match, 1.0, 0.0, g)["query_ind"]) == 0
    kept = default_augment(q, prev, 0, match, 0.0, 0.0, g)
    assert kept["query_ind"].tolist() == [5, 6]
    counts = []
    for _ in range(200):
        a = default_augment(q, prev, 0, match, 0.0, 0.5, g)
        fps = a["query_ind"][~a["matched"]]
        assert (a["match_ids"][~a["matched"]] == -1).all()
        assert not set(fps.tolist()) & {5, 6} and len(set(fps.tolist())) == len(fps)
        counts.append(len(fps))
    assert max(counts) == math.ceil(0.5 * 2) and min(counts) == 0


def test_training_forward_builds_track_queries_from_the_previous_frame():
    model = tiny().train()
    prev_t = box_target([[0.3, 0.3, 0.2, 0.2], [0.7, 0.7, 0.2, 0.2]], [1, 2])
    targets = [dict(box_target([[0.32, 0.3, 0.2, 0.2]], [2]), prev_image=torch.randn(3, 64, 64), prev_target=prev_t)]
    model.fn_prob, model.fp_prob = 0.0, 0.0
    out = model([torch.randn(3, 64, 64)], targets)
    assert out["num_track_slots"] == 2
    assert sorted(targets[0]["track_query_match_ids"].tolist()) == [-1, 0]
    crit = TrackCriterion(1, TrackMatcher())
    losses = crit(out, targets)
    losses["loss"].backward()
    rows, cols = crit.match(out, targets)[0]
    slot = int(torch.nonzero(targets[0]["track_query_match_ids"] == 0))
    assert (slot, 0) in list(zip(rows.tolist(), cols.tolist()))


def test_plugin_hooks_change_matching_and_track_queries():
    from trackformer import hookimpl
    from trackformer.plugins import load_plugins

    pm = load_plugins().pm
    assert hasattr(pm.hook, "trackq_edit_matching_cost")  # published through add_hookspecs

    class Steer:
        @hookimpl
        def trackq_edit_matching_cost(self, cost, outputs, index, target, num_track_slots):
            cost[:] = 10.0
            cost[Q - 1, :] = -10.0  # only the last object query is cheap for the free objects

        @hookimpl
        def trackq_augment_track_queries(self, queries, prev_outputs, index, prev_match, fn_prob, fp_prob,
                                         generator):
            return {k: v[:1] for k, v in queries.items()}  # keep only the first track query

    plugin = Steer()
    pm.register(plugin, name="steer-test")
    try:
        outputs = {"pred_logits": torch.zeros(1, 1 + Q, 2), "pred_boxes": torch.rand(1, 1 + Q, 4) * 0.3 + 0.3,
                   "num_track_slots": 1, "track_valid": torch.tensor([[True]]),
                   "track_match_ids": [torch.tensor([0])]}
        target = box_target([[0.3, 0.3, 0.2, 0.2], [0.6, 0.6, 0.2, 0.2]], [1, 2])
        rows, cols = TrackMatcher(hook=pm.hook)(outputs, [target])[0]
        assert dict(zip(rows.tolist(), cols.tolist())) == {0: 0, Q: 1}
        prev = {"hs_embed": torch.randn(1, 5, D), "pred_boxes": torch.rand(1, 5, 4)}
        prev_t = box_target([[0.3, 0.3, 0.2, 0.2]] * 2, [1, 2])
        t = box_target([[0.3, 0.3, 0.2, 0.2]] * 2, [2, 1])
        [t] = make_track_queries(prev, [(torch.tensor([3, 1]), torch.tensor([0, 1]))], [prev_t], [t], 0.0, 0.0,
                                 hook=pm.hook)
        torch.testing.assert_close(t["track_query_hs_embeds"], prev["hs_embed"][0, [3]])
        assert t["track_query_match_ids"].tolist() == [1]
        [t] = make_track_queries(prev, [(torch.tensor([3, 1]), torch.tensor([0, 1]))], [prev_t], [t], 0.0, 0.0)
        assert t["track_query_match_ids"].tolist() == [1, 0]  # the defaults keep both
    finally:
        pm.unregister(plugin)
