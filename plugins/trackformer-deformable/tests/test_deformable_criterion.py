"""Deformable DETR's focal matcher and criterion: the matching cost equals the official formula
(fundamentalvision/Deformable-DETR models/matcher.py) on random inputs, the class loss equals the focal
loss written out per logit, the total is the weighted sum of its parts (two-stage proposals included),
and the top-100 post-processing picks the best (query, class) pairs."""
import math

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from torchvision.ops import box_convert, generalized_box_iou

from trackformer_deformable.criterion import DeformableCriterion
from trackformer_deformable.matcher import FocalHungarianMatcher
from trackformer_deformable.postprocess import top_k_detections


def random_batch(g, B=3, Q=12, C=5, sizes=(3, 0, 5)):
    outputs = {"pred_logits": torch.randn(B, Q, C, generator=g) * 2,
               "pred_boxes": torch.rand(B, Q, 4, generator=g) * 0.5 + 0.1}
    targets = [{"labels": torch.randint(0, C, (n,), generator=g),
                "boxes": torch.rand(n, 4, generator=g) * 0.5 + 0.1} for n in sizes]
    return outputs, targets


def official_cost(outputs, targets, alpha=0.25, gamma=2.0):
    """The official matcher's C [B, Q, sum T]: focal class cost 2, L1 5, GIoU 2."""
    B, Q = outputs["pred_logits"].shape[:2]
    out_prob = outputs["pred_logits"].flatten(0, 1).sigmoid()
    out_bbox = outputs["pred_boxes"].flatten(0, 1)
    tgt_ids = torch.cat([t["labels"] for t in targets])
    tgt_bbox = torch.cat([t["boxes"] for t in targets])
    neg = (1 - alpha) * (out_prob ** gamma) * (-(1 - out_prob + 1e-8).log())
    pos = alpha * ((1 - out_prob) ** gamma) * (-(out_prob + 1e-8).log())
    cost_class = pos[:, tgt_ids] - neg[:, tgt_ids]
    cost_bbox = torch.cdist(out_bbox, tgt_bbox, p=1)
    cost_giou = -generalized_box_iou(box_convert(out_bbox, "cxcywh", "xyxy"), box_convert(tgt_bbox, "cxcywh", "xyxy"))
    return (5 * cost_bbox + 2 * cost_class + 2 * cost_giou).view(B, Q, -1)


def test_matching_cost_and_assignment_equal_the_official_matcher():
    g = torch.Generator().manual_seed(0)
    outputs, targets = random_batch(g)
    matcher = FocalHungarianMatcher()
    ours = matcher.cost_matrix(outputs, targets)  # [B, Q, T_max]
    official = official_cost(outputs, targets)
    sizes = [len(t["labels"]) for t in targets]
    for i, block in enumerate(official.split(sizes, -1)):
        assert torch.allclose(ours[i, :, :sizes[i]], block[i], atol=1e-5)
    for (rows, cols), block, i in zip(matcher(outputs, targets), official.split(sizes, -1), range(3)):
        expected_rows, expected_cols = linear_sum_assignment(block[i].numpy())
        assert np.array_equal(rows.numpy(), expected_rows) and np.array_equal(cols.numpy(), expected_cols)


def test_class_loss_is_the_focal_loss_summed_over_every_logit_per_target_box():
    g = torch.Generator().manual_seed(1)
    outputs, targets = random_batch(g)
    criterion = DeformableCriterion(5, FocalHungarianMatcher(), aux_loss=False)
    indices = criterion.match(outputs, targets)
    num_boxes = 8.0
    got = criterion.loss_labels(outputs, targets, indices, num_boxes)["loss_ce"]
    expected = 0.0
    logits = outputs["pred_logits"]
    positives = {(b, int(q), int(targets[b]["labels"][t])) for b, (qs, ts) in enumerate(indices) for q, t in zip(qs, ts)}
    for b, q, c in np.ndindex(*logits.shape):
        p = torch.sigmoid(logits[b, q, c]).item()
        if (b, q, c) in positives:
            expected += -0.25 * (1 - p) ** 2 * math.log(p)
        else:
            expected += -0.75 * p ** 2 * math.log(1 - p)
    assert len(positives) == 8
    assert got.item() == pytest.approx(expected / num_boxes, rel=1e-5)


def test_total_is_the_weighted_sum_of_main_auxiliary_and_two_stage_parts():
    g = torch.Generator().manual_seed(2)
    outputs, targets = random_batch(g)
    aux, _ = random_batch(g)
    enc = {"pred_logits": torch.randn(3, 40, 5, generator=g), "pred_boxes": torch.rand(3, 40, 4, generator=g) * 0.5 + 0.1}
    outputs.update(aux_outputs=[aux], enc_outputs=enc)
    losses = DeformableCriterion(5, FocalHungarianMatcher())(outputs, targets)
    weights = {"loss_ce": 2.0, "loss_bbox": 5.0, "loss_giou": 2.0}
    expected = sum(w * losses[k + suffix] for k, w in weights.items() for suffix in ("", "_0", "_enc"))
    assert losses["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    # the proposals are matched as one class: class 0 of the encoder's logits, whatever the labels
    one_class = [{"labels": torch.zeros_like(t["labels"]), "boxes": t["boxes"]} for t in targets]
    criterion = DeformableCriterion(5, FocalHungarianMatcher())
    indices = criterion.match(enc, one_class)
    assert losses["loss_ce_enc"].item() == pytest.approx(
        criterion.loss_labels(enc, one_class, indices, 8.0)["loss_ce"].item(), rel=1e-6)


def test_top_100_over_queries_and_classes_in_original_pixels():
    g = torch.Generator().manual_seed(3)
    outputs = {"pred_logits": torch.randn(2, 30, 7, generator=g), "pred_boxes": torch.rand(2, 30, 4, generator=g)}
    sizes = torch.tensor([[480, 640], [100, 200]])
    results = top_k_detections(outputs, sizes)
    for b, r in enumerate(results):
        prob = outputs["pred_logits"][b].sigmoid()
        order = sorted(((prob[q, c].item(), q, c) for q in range(30) for c in range(7)), reverse=True)[:100]
        assert r["scores"].tolist() == pytest.approx([s for s, _, _ in order])
        assert r["labels"].tolist() == [c for _, _, c in order]
        cx, cy, w, h = outputs["pred_boxes"][b, order[0][1]].tolist()
        H, W = sizes[b].tolist()
        assert r["boxes"][0].tolist() == pytest.approx([(cx - w / 2) * W, (cy - h / 2) * H,
                                                        (cx + w / 2) * W, (cy + h / 2) * H], rel=1e-5)
    few = {"pred_logits": outputs["pred_logits"][:, :5, :3], "pred_boxes": outputs["pred_boxes"][:, :5]}
    assert len(top_k_detections(few, sizes)[0]["scores"]) == 15  # fewer than 100 pairs: all of them
