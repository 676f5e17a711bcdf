"""Box conversions, IoU and GIoU against torchvision.ops, and GIoU's properties on degenerate boxes."""
import torch
import torchvision.ops as tvo

from trackformer.ops.boxes import (box_cxcywh_to_xyxy, box_iou, box_xywh_to_xyxy, box_xyxy_to_cxcywh,
                                   box_xyxy_to_xywh, elementwise_generalized_box_iou,
                                   generalized_box_iou)


def random_boxes(n, seed=0, degenerate=False):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 10
    wh = torch.rand(n, 2, generator=g) * 5 + 0.1
    if degenerate:  # a third zero width, a third zero height, some points
        wh[0::3, 0] = 0
        wh[1::3, 1] = 0
        wh[2::6] = 0
    return torch.cat([xy, xy + wh], dim=1)


def test_conversions_match_torchvision_and_round_trip():
    b = random_boxes(50)
    for fmt, to_xyxy, from_xyxy in [("cxcywh", box_cxcywh_to_xyxy, box_xyxy_to_cxcywh),
                                    ("xywh", box_xywh_to_xyxy, box_xyxy_to_xywh)]:
        converted = from_xyxy(b)
        assert torch.allclose(converted, tvo.box_convert(b, "xyxy", fmt), atol=1e-6)
        assert torch.allclose(to_xyxy(converted), b, atol=1e-5)


def test_iou_and_giou_match_torchvision_on_regular_boxes():
    a, b = random_boxes(30, 1), random_boxes(20, 2)
    assert torch.allclose(box_iou(a, b), tvo.box_iou(a, b), atol=1e-6)
    assert torch.allclose(generalized_box_iou(a, b), tvo.generalized_box_iou(a, b), atol=1e-6)


def test_giou_identity_is_one_including_degenerate_boxes():
    b = random_boxes(24, 3, degenerate=True)
    assert torch.allclose(torch.diagonal(generalized_box_iou(b, b)), torch.ones(24))
    assert torch.allclose(elementwise_generalized_box_iou(b, b), torch.ones(24))


def test_giou_bounds_and_symmetry_with_degenerate_boxes():
    a, b = random_boxes(40, 4, degenerate=True), random_boxes(35, 5, degenerate=True)
    g = generalized_box_iou(a, b)
    assert torch.isfinite(g).all()
    assert (g >= -1).all() and (g <= 1).all()
    assert torch.allclose(g, generalized_box_iou(b, a).T, atol=1e-6)
    # GIoU <= IoU always, with equality when one box encloses the union
    assert (g <= box_iou(a, b) + 1e-6).all()


def test_giou_known_values():
    unit = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    half = torch.tensor([[0.5, 0.0, 1.5, 1.0]])  # IoU 1/3, enclosing = union -> GIoU 1/3
    far = torch.tensor([[100.0, 100.0, 101.0, 101.0]])  # nearly -1
    line = torch.tensor([[0.5, 0.0, 0.5, 1.0]])  # zero width, inside `unit`
    assert torch.allclose(generalized_box_iou(unit, half), torch.tensor([[1 / 3]]))
    assert generalized_box_iou(unit, far).item() < -0.99
    # a zero-area box inside another: IoU 0 and no empty enclosing space -> GIoU 0
    assert abs(generalized_box_iou(unit, line).item()) < 1e-6


def test_batched_and_elementwise_agree_with_pairwise():
    a = torch.stack([random_boxes(7, s, degenerate=True) for s in range(3)])  # [3, 7, 4]
    b = torch.stack([random_boxes(5, 10 + s) for s in range(3)])
    batched = generalized_box_iou(a, b)
    assert batched.shape == (3, 7, 5)
    for i in range(3):
        assert torch.allclose(batched[i], generalized_box_iou(a[i], b[i]))
    c = random_boxes(7, 20, degenerate=True)
    assert torch.allclose(elementwise_generalized_box_iou(a[0], c),
                          torch.diagonal(generalized_box_iou(a[0], c)), atol=1e-6)


def test_giou_gradient_is_finite_for_degenerate_predictions():
    pred = torch.tensor([[0.5, 0.5, 0.0, 0.2], [0.3, 0.3, 0.0, 0.0]], requires_grad=True)  # cxcywh
    tgt = torch.tensor([[0.5, 0.5, 0.2, 0.2], [0.3, 0.3, 0.0, 0.0]])
    loss = (1 - elementwise_generalized_box_iou(box_cxcywh_to_xyxy(pred), box_cxcywh_to_xyxy(tgt))).sum()
    loss.backward()
    assert torch.isfinite(pred.grad).all()
