"""Learning rates per parameter group: the backbone's, `lr_mult` by name, the rest."""
import pytest
import torch

from trackformer.engine.optim import build_optimizer
from trackformer.errors import ConfigError
from trackformer.schema import TrainConfig


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = torch.nn.Linear(2, 2)
        self.sampling_offsets = torch.nn.Linear(2, 2)
        self.reference_points = torch.nn.Linear(2, 1)
        self.head = torch.nn.Linear(2, 1)


def lrs(optimizer, net):
    names = {id(p): n for n, p in net.named_parameters()}
    return {names[id(p)]: g["lr"] for g in optimizer.param_groups for p in g["params"]}


def test_lr_mult_scales_the_named_parameters():
    net = Net()
    cfg = TrainConfig(lr=2e-4, lr_backbone=2e-5, lr_mult={"sampling_offsets": 0.1, "reference_points": 0.1})
    got = lrs(build_optimizer(net, cfg), net)
    assert got == pytest.approx({
        "backbone.weight": 2e-5, "backbone.bias": 2e-5, "head.weight": 2e-4, "head.bias": 2e-4,
        "sampling_offsets.weight": 2e-5, "sampling_offsets.bias": 2e-5,
        "reference_points.weight": 2e-5, "reference_points.bias": 2e-5})
    assert set(lrs(build_optimizer(net, TrainConfig(lr=1.0, lr_backbone=0.5)), net).values()) == {1.0, 0.5}


def test_lr_mult_must_be_positive():
    with pytest.raises(ConfigError) as error:
        TrainConfig(lr_mult={"sampling_offsets": 0.0})
    assert str(error.value) == "lr_mult.sampling_offsets: must be > 0, got 0.0"
