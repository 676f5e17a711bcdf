"""trackformer.ops.dropout: torch's dropout semantics with a mask drawn four elements per 64-bit
draw (CPU)."""
import math

import pytest
import torch
import torch.nn.functional as F

from trackformer.ops.dropout import Dropout, dropout, keep_mask


def test_drop_rate_and_unchanged_expectation():
    torch.manual_seed(0)
    n = 2_000_003  # not a multiple of the four lanes per draw
    keep, keep_prob = keep_mask((n,), 0.1)
    assert keep_prob == (65536 - 6554) / 65536
    # within 5 standard deviations of the quantised drop probability
    assert abs((~keep).float().mean().item() - (1 - keep_prob)) < 5 * math.sqrt(0.09 / n)
    out = dropout(torch.ones(n), 0.1)
    values = out.unique()
    assert values.tolist() == pytest.approx([0.0, 1 / keep_prob])
    assert abs(out.mean().item() - 1.0) < 5 * math.sqrt(0.1 / 0.9 / n)


def test_lanes_are_independent_of_their_position():
    torch.manual_seed(1)
    keep, _ = keep_mask((4, 250_000), 0.5)
    lanes = keep.view(-1, 4).float()  # the four 16-bit lanes of each 64-bit draw
    rates = lanes.mean(0)
    assert (rates - 0.5).abs().max() < 5 * math.sqrt(0.25 / 250_000)
    corr = torch.corrcoef(lanes.T)
    assert (corr - torch.eye(4)).abs().max() < 0.02


def test_gradient_is_the_mask_scaled_and_seeds_repeat():
    x = torch.randn(3, 17, 11, requires_grad=True)
    torch.manual_seed(5)
    out = dropout(x, 0.3)
    torch.manual_seed(5)
    keep, keep_prob = keep_mask(x.shape, 0.3)
    assert torch.equal(out, torch.where(keep, x, 0.0) * (1 / keep_prob))
    (grad,) = torch.autograd.grad(out, x, torch.ones_like(out))
    assert torch.equal(grad, keep.float() * (1 / keep_prob))


def test_identity_when_evaluating_and_zeros_at_p_one():
    x = torch.randn(4, 5)
    assert dropout(x, 0.1, training=False) is x and dropout(x, 0.0) is x
    assert torch.equal(dropout(x, 1.0), torch.zeros_like(x))
    module = Dropout(0.2)
    assert isinstance(module, torch.nn.Dropout) and not module.state_dict()
    assert torch.equal(module.eval()(x), x)
    assert torch.equal(Dropout(0.5, inplace=True).train()(torch.zeros(3)), torch.zeros(3))


def test_same_statistics_as_torch_dropout():
    torch.manual_seed(0)
    x = torch.randn(400, 500)
    ours, theirs = dropout(x, 0.25), F.dropout(x, 0.25)
    assert abs((ours == 0).float().mean() - (theirs == 0).float().mean()) < 0.005
    assert abs(ours.std() - theirs.std()) < 0.01
