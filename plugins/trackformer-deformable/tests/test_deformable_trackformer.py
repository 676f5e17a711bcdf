"""TrackFormer on Deformable DETR: multi-frame attention, track queries, the two quirks of the released models,
and tracking through the track-query plugin's online loop. Small random models, every parameter
re-randomised so no path (sampling offsets, attention weights, last box layers) is silently zero."""
import math

import pytest
import torch

from trackformer_deformable.deformable_trackformer import build_deformable_trackformer
from trackformer_deformable.matcher import FocalHungarianMatcher
from trackformer_deformable.multi_frame import sine_position_3d
from trackformer_trackq.small_cnn import SmallCNN

D, Q = 96, 6


def tiny(seed=0, **kwargs):
    torch.manual_seed(seed)
    model = build_deformable_trackformer(num_classes=2, d_model=D, num_queries=Q, nheads=4, enc_layers=1,
                                         dec_layers=2, n_points=2, dim_feedforward=64, dropout=0.0,
                                         num_feature_levels=3, prev_matcher=FocalHungarianMatcher(),
                                         backbone=SmallCNN((8, 16, 32), 1, ["stride4", "stride8"]), **kwargs)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
    return model.eval()


def levels(model, image):
    from trackformer_detr.detr import as_padded_batch

    return model.backbone_levels(*as_padded_batch([image]))


def test_three_d_positions_equal_trackformers_formula_over_two_frames():
    # TrackFormer's PositionEmbeddingSine3D: the mask repeated for 2 frames, cumsum over frames, rows and
    # columns, each normalised by its last value (+1e-6) times 2pi, channels (z, y, x)
    mask = torch.zeros(2, 5, 7, dtype=torch.bool)
    mask[0, 3:] = True
    mask[1, :, 4:] = True
    F = 6
    not_mask = ~mask[:, None].expand(2, 2, 5, 7)
    z, y, x = (not_mask.cumsum(dim, dtype=torch.float64) for dim in (1, 2, 3))
    z = z / (z[:, -1:] + 1e-6) * 2 * math.pi
    y = y / (y[:, :, -1:] + 1e-6) * 2 * math.pi
    x = x / (x[:, :, :, -1:] + 1e-6) * 2 * math.pi
    dim_t = 10000 ** (2 * (torch.arange(F, dtype=torch.float64) // 2) / F)
    expected = []
    for frame in range(2):
        feats = []
        for embed in (z, y, x):
            pos = embed[:, frame, :, :, None] / dim_t
            feats.append(torch.stack([pos[..., 0::2].sin(), pos[..., 1::2].cos()], -1).flatten(3))
        expected.append(torch.cat(feats, -1).permute(0, 3, 1, 2))
    for frame in range(2):
        ours = sine_position_3d(mask, F, frame, 2, dtype=torch.float64)
        assert ours.shape == (2, 3 * F, 5, 7)
        torch.testing.assert_close(ours, expected[frame], rtol=0, atol=1e-12)


def test_first_frame_is_its_own_previous_frame_and_the_next_step_uses_it():
    model = tiny()
    first, second = torch.randn(3, 64, 80), torch.randn(3, 64, 80)
    with torch.no_grad():
        alone = model.decode(levels(model, first))
        itself = model.decode(levels(model, first), levels(model, first))
        other = model.decode(levels(model, first), levels(model, second))
    assert torch.equal(alone["pred_logits"], itself["pred_logits"])
    assert (alone["hs_embed"] - other["hs_embed"]).abs().max() > 1e-3
    model.reset_tracking()
    step1 = model.track_step(first, None)
    assert torch.equal(step1["det"]["embeds"][:, :D], alone["hs_embed"][0])
    step2 = model.track_step(second, None)
    with torch.no_grad():
        expected = model.decode(levels(model, second), levels(model, first))
    assert torch.equal(step2["det"]["embeds"][:, :D], expected["hs_embed"][0])
    model.reset_tracking()  # a new sequence: the previous frame is forgotten
    again = model.track_step(second, None)
    with torch.no_grad():
        own = model.decode(levels(model, second))
    assert torch.equal(again["det"]["embeds"][:, :D], own["hs_embed"][0])


def test_track_queries_go_first_with_zero_position_and_previous_box_centres_as_references():
    model = tiny()
    seen = {}
    decoder = model.transformer.decoder

    def grab(module, args):
        seen["tgt"], seen["reference"], seen["query_pos"] = args[0], args[1], args[5]

    handle = decoder.register_forward_pre_hook(grab)
    embeds, boxes = torch.randn(1, 3, D), torch.tensor([[[0.2, 0.3, 0.1, 0.2], [0.7, 0.6, 0.3, 0.1],
                                                          [0.5, 0.5, 0.9, 0.9]]])
    image = torch.randn(3, 64, 80)
    with torch.no_grad():
        out = model.decode(levels(model, image), None, {"embeds": embeds, "boxes": boxes})
    handle.remove()
    assert out["num_track_slots"] == 3 and out["pred_logits"].shape == (1, 3 + Q, 2)
    assert torch.equal(seen["reference"][:, :3], boxes[..., :2])
    assert torch.equal(seen["tgt"][:, :3], embeds)
    assert not seen["query_pos"][:, :3].any() and seen["query_pos"][:, 3:].abs().sum() > 0
    query_pos, tgt = model.query_embed.weight.split(D, 1)
    assert torch.equal(seen["tgt"][0, 3:], tgt)
    torch.testing.assert_close(seen["reference"][0, 3:], model.transformer.reference_points(query_pos).sigmoid())


def test_track_step_carries_each_tracks_embedding_and_box_as_its_query():
    model = tiny()
    frames = [torch.randn(3, 64, 80) for _ in range(2)]
    model.reset_tracking()
    first = model.track_step(frames[0], None)
    queries = first["det"]["embeds"][:2]  # [2, D + 4]: what the tracker stores per track
    assert queries.shape == (2, D + 4)
    torch.testing.assert_close(queries[:, D:], first["det"]["boxes"][:2])
    seen = {}
    handle = model.transformer.decoder.register_forward_pre_hook(lambda m, a: seen.update(reference=a[1]))
    second = model.track_step(frames[1], queries)
    handle.remove()
    assert second["track"]["scores"].shape == (2,) and second["det"]["scores"].shape == (Q,)
    assert torch.equal(seen["reference"][0, :2], queries[:, D:D + 2])


def memory_order_reference(model, current, previous):
    """Quirk (b) by hand: the encoded frames concatenated [current, previous] into the decoder, while
    shapes, masks and valid ratios stay [previous, current]."""
    t = model.transformer
    frames = [model.frame_levels(*previous, 0), model.frame_levels(*current, 1)]
    (m0, s0, k0, r0), (m1, s1, k1, r1) = (t.encode_frame(f, i) for i, f in enumerate(frames))
    query_pos, tgt = model.query_embed.weight.split(D, 1)
    reference = t.reference_points(query_pos).sigmoid()[None]
    hs, _ = t.decoder(tgt[None], reference, torch.cat([m1, m0], 1), s0 + s1, torch.cat([r0, r1], 1),
                      query_pos[None], torch.cat([k0, k1], 1))
    return hs[-1]


def test_quirk_b_reads_memory_as_current_then_previous_and_changes_the_outputs():
    fixed, quirk = tiny(), tiny(memory_order="current_previous")
    quirk.load_state_dict(fixed.state_dict())
    current, previous = levels(fixed, torch.randn(3, 64, 80)), levels(fixed, torch.randn(3, 64, 80))
    with torch.no_grad():
        a = fixed.decode(current, previous)
        b = quirk.decode(current, previous)
        expected = memory_order_reference(quirk, current, previous)
    torch.testing.assert_close(b["hs_embed"], expected, rtol=1e-5, atol=1e-5)
    assert (a["hs_embed"] - b["hs_embed"]).abs().max() > 1e-2


def test_quirk_a_reaches_every_attention_module_and_changes_the_outputs():
    from trackformer_deformable.ms_deform_attn import MSDeformAttn

    fixed, quirk = tiny(), tiny(offset_normalizer="hw")
    quirk.load_state_dict(fixed.state_dict())
    assert {m.offset_normalizer for m in quirk.modules() if isinstance(m, MSDeformAttn)} == {"hw"}
    current = levels(fixed, torch.randn(3, 64, 96))  # non-square levels: (H, W) differs from (W, H)
    with torch.no_grad():
        a, b = fixed.decode(current), quirk.decode(current)
    assert (a["hs_embed"] - b["hs_embed"]).abs().max() > 1e-2


def pair_target(boxes, ids, image):
    return {"boxes": torch.tensor(boxes), "labels": torch.zeros(len(ids), dtype=torch.int64),
            "track_ids": torch.tensor(ids), "image": image}


def test_training_pair_turns_matched_previous_objects_into_track_queries_fixed_to_their_identity():
    from trackformer_deformable.track_criterion import DeformableTrackCriterion, FocalTrackMatcher

    model = tiny()
    prev = [pair_target([[0.3, 0.3, 0.2, 0.2], [0.7, 0.6, 0.2, 0.3]], [4, 9], None),
            pair_target([[0.5, 0.5, 0.3, 0.3]], [2], None)]
    cur = [pair_target([[0.72, 0.6, 0.2, 0.3], [0.2, 0.2, 0.1, 0.1]], [9, 5], None),
           pair_target([[0.5, 0.52, 0.3, 0.3]], [2], None)]
    targets = []
    for p, c in zip(prev, cur):
        t = {k: v for k, v in c.items() if k != "image"}
        t["prev_image"] = torch.randn(3, 64, 80)
        t["prev_target"] = {k: v for k, v in p.items() if k != "image"}
        targets.append(t)
    out = model([torch.randn(3, 64, 72), torch.randn(3, 56, 80)], targets)  # eval: no FN/FP augmentation
    assert out["num_track_slots"] == 2
    assert out["track_valid"].tolist() == [[True, True], [True, False]]
    # previous ids 4, 9 -> current indices -1 (left), 0; previous 2 -> current 0
    assert [m.tolist() for m in out["track_match_ids"]] == [[-1, 0], [0]]
    matcher = FocalTrackMatcher()
    (rows0, cols0), (rows1, cols1) = matcher(out, targets)
    assert dict(zip(rows0.tolist(), cols0.tolist()))[1] == 0 and 0 not in rows0.tolist()
    assert rows1.tolist() == [0] and cols1.tolist() == [0]
    criterion = DeformableTrackCriterion(2, matcher)
    weights = criterion.query_weights(out)
    assert weights[1, 1] == 0 and weights.sum() == 2 * (2 + Q) - 1
    losses = criterion(out, targets)
    model.train()
    losses["loss"].backward()
    assert model.transformer.encoder.layers[0].self_attn.sampling_offsets.weight.grad.abs().sum() > 0


def test_settings_refuse_widths_the_three_d_encoding_cannot_split_and_two_stage():
    from trackformer.errors import ConfigError
    from trackformer_deformable.settings import DeformableTrackFormerConfig

    with pytest.raises(ConfigError, match=r"multi_frame needs a multiple of 6 \(3-D sine: d/3 even features per "
                                          r"axis\), got 256"):
        DeformableTrackFormerConfig(hidden_dim=256)
    with pytest.raises(ConfigError, match=r"is not supported with track queries"):
        DeformableTrackFormerConfig(hidden_dim=288, two_stage=True)
    assert DeformableTrackFormerConfig(hidden_dim=256, multi_frame=False).memory_order == "previous_current"
