"""The opt-in CPU training pass: the same parameters and state-dict keys, the same outputs and
gradients as the plain torchvision model, and its 1x1 convolution equal to conv2d."""
import copy

import torch
import torchvision

from trackformer.models.backbones import build_resnet
from trackformer.models.cpu_training import (FusedBottleneck, FusedResNetBody, optimize_for_cpu_training,
                                             pointwise_conv)
from trackformer.ops.dropout import Dropout


def randomize_frozen_statistics(model):
    torch.manual_seed(0)
    for name, buf in model.named_buffers():
        if name.endswith("running_var"):
            buf.uniform_(0.5, 2.0)
        elif name.endswith(("running_mean", "bias")):
            buf.uniform_(-0.3, 0.3)
        elif name.endswith("weight"):
            buf.uniform_(0.5, 1.5)


def test_pass_keeps_resnet50_outputs_gradients_and_keys():
    torch.manual_seed(0)
    plain = build_resnet("resnet50", frozen_stages=-1, return_levels=["res3", "res5"])
    randomize_frozen_statistics(plain)
    fast = optimize_for_cpu_training(copy.deepcopy(plain))
    assert type(fast.body) is FusedResNetBody and type(fast.body.layer3[2]) is FusedBottleneck
    assert list(fast.state_dict()) == list(plain.state_dict())
    x = torch.randn(2, 3, 64, 64)
    a, b = plain(x), fast(x)
    for name in ("res3", "res5"):
        assert torch.allclose(a[name], b[name], rtol=1e-4, atol=1e-3), name  # activations reach ~50
    (a["res3"].square().mean() + a["res5"].square().mean()).backward()
    (b["res3"].square().mean() + b["res5"].square().mean()).backward()
    grads = dict(fast.named_parameters())
    for name, p in plain.named_parameters():
        g = grads[name].grad
        assert ((g - p.grad).norm() / p.grad.norm()).item() < 1e-4, name


def test_pass_swaps_dropout_and_keeps_trainable_batchnorm():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.1))
    optimize_for_cpu_training(model)
    assert type(model[1]) is Dropout and model[1].p == 0.1
    bn = build_resnet("resnet18", frozen_bn=False)
    optimize_for_cpu_training(bn)  # blocks with trainable BatchNorm run it as usual
    x = torch.randn(2, 3, 32, 32)
    ref = torchvision.models.resnet18()
    ref.load_state_dict(bn.body.state_dict(), strict=False)
    with torch.no_grad():
        got = bn.eval()(x)["res5"]
        ref = ref.eval()
        want = ref.layer4(ref.layer3(ref.layer2(ref.layer1(ref.maxpool(ref.relu(ref.bn1(ref.conv1(x))))))))
    assert torch.allclose(got, want, atol=1e-4)


def test_pointwise_conv_equals_conv2d_with_gradients_and_under_autocast():
    torch.manual_seed(0)
    x = torch.randn(2, 16, 5, 7).contiguous(memory_format=torch.channels_last).requires_grad_()
    w = torch.randn(8, 16, requires_grad=True)
    b = torch.randn(8, requires_grad=True)
    out = pointwise_conv(x, w, b)
    expected = torch.nn.functional.conv2d(x, w[:, :, None, None], b)
    assert out.is_contiguous(memory_format=torch.channels_last) and out._base is None
    assert torch.allclose(out, expected, atol=1e-5)
    g = torch.randn_like(out)
    grads = torch.autograd.grad(out, (x, w, b), g)
    expected_grads = torch.autograd.grad(expected, (x, w, b), g, retain_graph=True)
    for got, want in zip(grads, expected_grads):
        assert torch.allclose(got, want, atol=1e-4)
    # an in-place residual sum on the result keeps autograd exact
    y = pointwise_conv(x, w, b)
    y += 1.0
    assert torch.allclose(torch.autograd.grad(y.sum(), w)[0], torch.autograd.grad(expected.sum(), w)[0],
                          atol=1e-4)
    # bf16 autocast: the product runs in the activations' dtype, parameter gradients in float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        xb = x.detach().to(torch.bfloat16).requires_grad_()
        yb = pointwise_conv(xb, w, b)
    assert yb.dtype == torch.bfloat16
    gw, gb = torch.autograd.grad(yb.float().sum(), (w, b))
    assert gw.dtype == gb.dtype == torch.float32
    assert torch.allclose(gb, torch.full((8,), 70.0))  # 2 x 5 x 7 pixels, exact in bf16
