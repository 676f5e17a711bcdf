"""The opt-in CPU training pass swaps module classes only: same parameters and state-dict keys,
the lane-packed dropout in place of nn.Dropout, and modules that name a variant become it."""
import copy

import torch

from trackformer.models.backbones import build_resnet
from trackformer.models.cpu_training import optimize_for_cpu_training
from trackformer.ops.dropout import Dropout


class Plain(torch.nn.Linear):
    pass


class Variant(Plain):
    def forward(self, x):
        return super().forward(x) * 1.0


Plain.cpu_training_variant = Variant


def test_pass_swaps_classes_and_keeps_parameters_keys_and_outputs():
    torch.manual_seed(0)
    model = torch.nn.Sequential(build_resnet("resnet18", return_levels=["res4"]).body.layer1,
                                torch.nn.Dropout(0.1), torch.nn.Dropout(0.0))
    head = torch.nn.Sequential(Plain(4, 4), torch.nn.Dropout(0.25))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fast = optimize_for_cpu_training(copy.deepcopy(model))
    assert list(fast.state_dict()) == list(before)
    assert all(torch.equal(fast.state_dict()[k], v) for k, v in before.items())
    assert type(fast[1]) is Dropout and fast[1].p == 0.1 and type(fast[2]) is Dropout
    assert type(fast[0][0]) is type(model[0][0])  # torchvision blocks stay as they are
    x = torch.randn(2, 64, 16, 16)
    with torch.no_grad():
        assert torch.equal(fast.eval()(x), model.eval()(x))
    optimize_for_cpu_training(head)
    assert type(head[0]) is Variant and type(head[1]) is Dropout and head[1].p == 0.25
    assert optimize_for_cpu_training(head) is head and type(head[0]) is Variant  # idempotent
