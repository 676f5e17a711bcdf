"""Mask losses: focal and dice against their formulas by hand, on matched queries only."""
import torch

from trackformer_panoptic.criterion import PanopticCriterion, dice_loss, sigmoid_focal_loss


def test_focal_and_dice_formulas():
    torch.manual_seed(0)
    logits, targets = torch.randn(3, 20), (torch.rand(3, 20) > 0.5).float()
    p = torch.sigmoid(logits)
    ce = -(targets * p.log() + (1 - targets) * (1 - p).log())
    p_t = torch.where(targets > 0, p, 1 - p)
    alpha_t = torch.where(targets > 0, 0.25, 0.75)
    focal = (alpha_t * (1 - p_t) ** 2 * ce).mean(1).sum() / 2.0
    assert torch.allclose(sigmoid_focal_loss(logits, targets, 2.0), focal, atol=1e-6)
    dice = (1 - (2 * (p * targets).sum(1) + 1) / (p.sum(1) + targets.sum(1) + 1)).sum() / 2.0
    assert torch.allclose(dice_loss(logits, targets, 2.0), dice, atol=1e-6)


class FixedMatcher:
    def __call__(self, outputs, targets):
        return [(torch.tensor([2]), torch.tensor([0])), (torch.tensor([0, 1]), torch.tensor([1, 0]))]


def test_mask_losses_reach_matched_queries_only():
    torch.manual_seed(0)
    B, Q, C = 2, 4, 3
    masks = torch.randn(B, Q, 4, 4, requires_grad=True)
    outputs = {"pred_logits": torch.randn(B, Q, C + 1), "pred_boxes": torch.rand(B, Q, 4), "pred_masks": masks}
    targets = [{"labels": torch.tensor([0]), "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.2]]),
                "masks": torch.rand(1, 16, 12) > 0.5},
               {"labels": torch.tensor([1, 2]), "boxes": torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.6, 0.6, 0.3, 0.3]]),
                "masks": torch.rand(2, 14, 16) > 0.5}]
    criterion = PanopticCriterion(C, FixedMatcher(), aux_loss=False)
    losses = criterion(outputs, targets)
    losses["loss"].backward()
    touched = masks.grad.flatten(2).abs().sum(-1) > 0  # [B, Q]
    assert touched.tolist() == [[False, False, True, False], [True, True, False, False]]
    assert losses["loss_mask"] > 0 and 0 < losses["loss_dice"] < 3
