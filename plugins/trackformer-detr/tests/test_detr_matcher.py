"""The Hungarian matcher against brute force over all assignments, and its cost against DETR's
formula computed the unbatched way."""
import itertools

import pytest
import torch

from trackformer.ops.boxes import box_cxcywh_to_xyxy, generalized_box_iou
from trackformer_detr.matcher import HungarianMatcher


def make_case(seed, B, Q, C, sizes, degenerate=False):
    g = torch.Generator().manual_seed(seed)
    outputs = {"pred_logits": torch.randn(B, Q, C + 1, generator=g),
               "pred_boxes": torch.rand(B, Q, 4, generator=g) * 0.5 + 0.1}
    if degenerate:
        outputs["pred_boxes"][:, ::2, 2] = 0.0  # zero-width predictions
    targets = []
    for n in sizes:
        boxes = torch.rand(n, 4, generator=g) * 0.5 + 0.1
        if degenerate and n:
            boxes[0, 3] = 0.0  # a zero-height target
        targets.append({"labels": torch.randint(0, C, (n,), generator=g), "boxes": boxes})
    return outputs, targets


def reference_cost(outputs, target, b, w_class=1.0, w_bbox=5.0, w_giou=2.0):
    """DETR's cost for one image, written out plainly: [Q, T]."""
    prob = outputs["pred_logits"][b].softmax(-1)
    pred = outputs["pred_boxes"][b]
    c_class = -prob[:, target["labels"]]
    c_bbox = (pred[:, None, :] - target["boxes"][None, :, :]).abs().sum(-1)
    c_giou = -generalized_box_iou(box_cxcywh_to_xyxy(pred), box_cxcywh_to_xyxy(target["boxes"]))
    return w_bbox * c_bbox + w_class * c_class + w_giou * c_giou


def brute_force(cost):
    """Minimum total cost over every injective map targets -> queries (T <= Q)."""
    Q, T = cost.shape
    best = min(itertools.permutations(range(Q), T),
               key=lambda rows: sum(cost[r, c].item() for c, r in enumerate(rows)))
    return sum(cost[r, c].item() for c, r in enumerate(best))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("degenerate", [False, True])
def test_matches_brute_force(seed, degenerate):
    outputs, targets = make_case(seed, B=3, Q=6, C=4, sizes=[0, 3, 5], degenerate=degenerate)
    matcher = HungarianMatcher()
    indices = matcher(outputs, targets)
    for b, ((rows, cols), t) in enumerate(zip(indices, targets)):
        n = len(t["labels"])
        assert len(rows) == len(cols) == n
        assert len(set(rows.tolist())) == n and sorted(cols.tolist()) == list(range(n))
        cost = reference_cost(outputs, t, b)
        got = sum(cost[r, c].item() for r, c in zip(rows.tolist(), cols.tolist()))
        if n:
            assert got == pytest.approx(brute_force(cost), abs=1e-5)


def test_batched_cost_equals_per_image_cost():
    outputs, targets = make_case(7, B=4, Q=10, C=5, sizes=[2, 0, 7, 4])
    matcher = HungarianMatcher(cost_class=2.0, cost_bbox=3.0, cost_giou=1.5)
    flat = matcher.flat_cost(outputs, targets)  # [sum T, Q], targets of each image in turn
    padded = matcher.cost_matrix(outputs, targets)  # [B, Q, T_max]
    assert flat.shape == (13, 10) and padded.shape == (4, 10, 7)
    start = 0
    for b, t in enumerate(targets):
        n = len(t["labels"])
        ref = reference_cost(outputs, t, b, 2.0, 3.0, 1.5)
        assert torch.allclose(flat[start:start + n].T, ref, atol=1e-5)
        assert torch.allclose(padded[b, :, :n], ref, atol=1e-5) and torch.isinf(padded[b, :, n:]).all()
        start += n


def test_no_targets_anywhere():
    outputs, targets = make_case(0, B=2, Q=5, C=3, sizes=[0, 0])
    for rows, cols in HungarianMatcher()(outputs, targets):
        assert rows.numel() == 0 and cols.numel() == 0 and rows.dtype == torch.int64


def test_match_image_override_is_used():
    class FirstQueries(HungarianMatcher):  # what TrackFormer does for track queries, in miniature
        def match_image(self, cost, index, outputs, target):
            n = cost.shape[1]
            return torch.arange(n), torch.arange(n)

    outputs, targets = make_case(1, B=2, Q=6, C=3, sizes=[3, 1])
    indices = FirstQueries()(outputs, targets)
    assert indices[0][0].tolist() == [0, 1, 2] and indices[1][0].tolist() == [0]
