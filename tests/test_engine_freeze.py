"""`train.freeze`: named parameter groups get no gradient and no update (AdamW's weight decay
included), their modules run in eval mode (dropout off) while the rest trains."""
import pytest
import torch
import torch.nn as nn

from trackformer.engine.freeze import freeze, train_mode
from trackformer.errors import ConfigError
from trackformer.schema import TrainConfig


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.detr = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
        self.detr_like = nn.Linear(4, 4)  # a name sharing the prefix's letters is not frozen
        self.head = nn.Sequential(nn.Linear(4, 1), nn.Dropout(0.5))

    def forward(self, x):
        return self.head(self.detr_like(self.detr(x)))


def test_frozen_parameters_do_not_move_and_run_in_eval_mode():
    torch.manual_seed(0)
    net = Net()
    assert freeze(net, ["detr"]) == 20
    train_mode(net, ["detr"])
    assert not net.detr.training and not net.detr[1].training
    assert net.training and net.head.training and net.head[1].training and net.detr_like.training
    before = {k: v.clone() for k, v in net.state_dict().items()}
    optimizer = torch.optim.AdamW(net.parameters(), lr=0.1, weight_decay=0.5)
    x = torch.randn(16, 4)
    a = net.detr(x)
    assert torch.equal(a, net.detr(x))  # dropout off: deterministic
    for _ in range(3):
        optimizer.zero_grad(set_to_none=True)
        net(x).pow(2).mean().backward()
        optimizer.step()
    after = net.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in before if k.startswith("detr."))
    assert not torch.equal(after["head.0.weight"], before["head.0.weight"])
    assert not torch.equal(after["detr_like.weight"], before["detr_like.weight"])


def test_unknown_group_is_a_one_line_error():
    with pytest.raises(ConfigError, match=r"^train.freeze: 'detector' names no module of the model "
                                          r"\(top level: detr, detr_like, head\)$"):
        freeze(Net(), ["detector"])


def test_settings():
    assert TrainConfig().freeze == [] and TrainConfig().freeze_from_epoch == 0
    with pytest.raises(ConfigError, match="freeze_from_epoch: must be >= 0, got -1"):
        TrainConfig(freeze_from_epoch=-1)
