"""DETR's set criterion against its formulas written out by hand, with empty images and
degenerate boxes; post-processing to pixels; the BN-folding inference copy."""
import pytest
import torch
import torch.nn.functional as F

from trackformer.ops.boxes import box_cxcywh_to_xyxy, generalized_box_iou
from trackformer_detr.criterion import SetCriterion
from trackformer_detr.matcher import HungarianMatcher
from trackformer_detr.postprocess import PostProcess


class FixedMatcher:
    def __init__(self, indices):
        self.indices = indices

    def __call__(self, outputs, targets):
        return [(torch.tensor(r, dtype=torch.int64), torch.tensor(c, dtype=torch.int64))
                for r, c in self.indices]


def case(seed=0):
    g = torch.Generator().manual_seed(seed)
    outputs = {"pred_logits": torch.randn(2, 5, 4, generator=g, requires_grad=True),
               "pred_boxes": (torch.rand(2, 5, 4, generator=g) * 0.4 + 0.2).requires_grad_()}
    outputs["aux_outputs"] = [{"pred_logits": torch.randn(2, 5, 4, generator=g),
                               "pred_boxes": torch.rand(2, 5, 4, generator=g) * 0.4 + 0.2}]
    targets = [{"labels": torch.tensor([2, 0]), "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.0],
                                                                       [0.3, 0.4, 0.1, 0.2]])},
               {"labels": torch.zeros(0, dtype=torch.int64), "boxes": torch.zeros(0, 4)}]
    return outputs, targets


def test_losses_equal_the_formulas():
    outputs, targets = case()
    crit = SetCriterion(3, FixedMatcher([([3, 1], [0, 1]), ([], [])]), eos_coef=0.1)
    losses = crit(outputs, targets)
    # CE over all queries, no-object (index 3) weighted 0.1: F.cross_entropy with class weights
    target_classes = torch.full((2, 5), 3)
    target_classes[0, 3], target_classes[0, 1] = 2, 0
    weight = torch.tensor([1, 1, 1, 0.1])
    expected_ce = F.cross_entropy(outputs["pred_logits"].transpose(1, 2), target_classes, weight=weight)
    assert losses["loss_ce"].item() == pytest.approx(expected_ce.item(), rel=1e-5)
    src = outputs["pred_boxes"][0, [3, 1]]
    tgt = targets[0]["boxes"]
    num_boxes = 2
    assert losses["loss_bbox"].item() == pytest.approx((src - tgt).abs().sum().item() / num_boxes, rel=1e-5)
    giou = torch.diagonal(generalized_box_iou(box_cxcywh_to_xyxy(src), box_cxcywh_to_xyxy(tgt)))
    assert losses["loss_giou"].item() == pytest.approx((1 - giou).sum().item() / num_boxes, rel=1e-5)
    total = sum(w * (losses[k] + losses[f"{k}_0"]) for k, w in
                {"loss_ce": 1, "loss_bbox": 5, "loss_giou": 2}.items())
    assert losses["loss"].item() == pytest.approx(total.item(), rel=1e-5)
    # cardinality: predicted non-no-object queries vs target count, L1 over the batch
    pred_count = (outputs["pred_logits"].argmax(-1) != 3).sum(1).float()
    assert losses["cardinality_error"].item() == pytest.approx(
        (pred_count - torch.tensor([2.0, 0.0])).abs().mean().item())
    losses["loss"].backward()
    assert torch.isfinite(outputs["pred_boxes"].grad).all()


def test_empty_batch_and_degenerate_predictions_are_finite():
    outputs, targets = case(1)
    targets[0] = {"labels": torch.zeros(0, dtype=torch.int64), "boxes": torch.zeros(0, 4)}
    with torch.no_grad():
        outputs["pred_boxes"][:, :, 2] = 0.0  # zero-width predictions everywhere
    losses = SetCriterion(3, HungarianMatcher())(outputs, targets)
    assert all(torch.isfinite(v).all() for v in losses.values())
    assert losses["loss_bbox"].item() == 0 and losses["loss_giou"].item() == 0
    losses["loss"].backward()


def test_class_weights_override():
    class NoDownWeight(SetCriterion):  # e.g. TrackFormer's unmatched track queries
        def class_weights(self, outputs, targets, indices, target_classes):
            return torch.ones_like(target_classes, dtype=torch.float32)

    outputs, targets = case(2)
    crit = NoDownWeight(3, FixedMatcher([([0, 4], [1, 0]), ([], [])]))
    target_classes = torch.full((2, 5), 3)
    target_classes[0, 0], target_classes[0, 4] = 0, 2
    expected = F.cross_entropy(outputs["pred_logits"].transpose(1, 2), target_classes)
    assert crit(outputs, targets)["loss_ce"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_postprocess_to_pixels():
    logits = torch.tensor([[[0.0, 5.0, 1.0], [3.0, 0.0, 9.0]]])  # 2 classes + no-object
    boxes = torch.tensor([[[0.5, 0.5, 0.5, 0.25], [0.1, 0.1, 0.2, 0.2]]])
    out = PostProcess()({"pred_logits": logits, "pred_boxes": boxes}, torch.tensor([[200, 400]]))[0]
    assert out["labels"].tolist() == [1, 0]  # no-object column never wins
    assert out["scores"][0].item() == pytest.approx(torch.softmax(logits[0, 0], -1)[1].item())
    assert out["boxes"][0].tolist() == pytest.approx([100, 75, 300, 125])


def test_inference_copy_matches_plain_forward():
    from trackformer.models.backbones import build_resnet
    from trackformer_detr.detr import build_detr
    from trackformer_detr.inference import fold_frozen_batchnorm, optimize_for_inference
    from trackformer_detr.settings import TransformerStackConfig as Stack
    from trackformer_detr.transformer import build_decoder, build_encoder

    torch.manual_seed(0)
    model = build_detr(build_resnet("resnet18"), build_encoder(Stack(1, 4, 128), 64),
                       build_decoder(Stack(2, 4, 128), 64), 3, 6).eval()
    for name, buf in model.named_buffers():  # non-trivial frozen statistics
        if name.endswith("running_var"):
            buf.uniform_(0.5, 2)
        elif name.endswith(("running_mean", "bn1.bias", "bn2.bias")):
            buf.uniform_(-0.3, 0.3)
    keys = list(model.state_dict())
    fast = optimize_for_inference(model)
    assert list(model.state_dict()) == keys  # the original keeps the official layout
    assert fold_frozen_batchnorm(fast) == 0  # everything already folded
    x = [torch.randn(3, 96, 128), torch.randn(3, 64, 80)]
    with torch.no_grad():
        a, b = model(x), fast(x)
        bf = optimize_for_inference(model, dtype=torch.bfloat16)(x)
    assert torch.allclose(a["pred_logits"], b["pred_logits"], atol=1e-4)
    assert torch.allclose(a["pred_boxes"], b["pred_boxes"], atol=1e-5)
    assert (bf["pred_boxes"] - a["pred_boxes"]).abs().max() < 2e-2
