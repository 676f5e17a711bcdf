"""Torchvision backbones: outputs equal torchvision's own networks with the same weights, frozen
BatchNorm layout, freezing, dilation, and one-line errors for bad weight files."""
import pytest
import torch
import torchvision
from omegaconf import OmegaConf

from trackformer.errors import DataError
from trackformer.models.backbones import FrozenBatchNorm2d, build_mobilenet_v2, build_resnet


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
    torch.manual_seed(0)
    net = torchvision.models.resnet18()
    for m in net.modules():  # non-trivial statistics so frozen BN is really exercised
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    path = tmp_path_factory.mktemp("w") / "resnet18.pth"
    torch.save(net.state_dict(), path)
    return net.eval(), path


def torchvision_features(net, x):
    x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    return net.layer4(net.layer3(net.layer2(net.layer1(x))))


@pytest.mark.parametrize("frozen_bn", [True, False])
def test_resnet_equals_torchvision_with_same_weights(resnet18_file, frozen_bn):
    net, path = resnet18_file
    backbone = build_resnet("resnet18", weights=str(path), frozen_bn=frozen_bn).eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        out = backbone(x)
        assert out.shape == (2, backbone.num_channels, 2, 3)
        assert torch.allclose(out, torchvision_features(net, x), atol=1e-4)


def test_frozen_batchnorm_layout_and_freezing():
    backbone = build_resnet("resnet50")
    state = backbone.state_dict()
    assert not any(k.endswith("num_batches_tracked") for k in state)
    assert {"body.bn1.weight", "body.bn1.bias", "body.bn1.running_mean", "body.bn1.running_var"} <= set(state)
    assert isinstance(backbone.body.bn1, FrozenBatchNorm2d) and backbone.body.bn1.eps == 1e-5
    trainable = {k for k, p in backbone.named_parameters() if p.requires_grad}
    assert not any(k.startswith(("body.conv1", "body.layer1")) for k in trainable)  # DETR: stem + layer1
    assert any(k.startswith("body.layer2") for k in trainable)
    assert not any("bn" in k for k, _ in backbone.named_parameters())  # BN holds buffers only
    everything = build_resnet("resnet50", frozen_stages=-1, frozen_bn=False)
    assert all(p.requires_grad for p in everything.parameters())


def test_dilation_gives_stride_16():
    backbone = build_resnet("resnet50", dilation=True).eval()
    with torch.no_grad():
        assert backbone(torch.randn(1, 3, 64, 64)).shape == (1, 2048, 4, 4)


def test_mobilenet_v2_real_weights_equal_torchvision(shared_dir):
    path = shared_dir / "weights" / "mobilenet_v2-b0353104.pth"
    net = torchvision.models.mobilenet_v2()
    net.load_state_dict(torch.load(path, weights_only=True))
    backbone = build_mobilenet_v2(weights=str(path)).eval()
    x = torch.randn(1, 3, 96, 64)
    with torch.no_grad():
        assert torch.allclose(backbone(x), net.eval().features(x), atol=1e-4)
    assert backbone.num_channels == 1280


def test_weight_file_errors(resnet18_file, tmp_path):
    with pytest.raises(DataError, match="not found"):
        build_resnet("resnet50", weights=str(tmp_path / "nope.pth"))
    _, r18 = resnet18_file
    with pytest.raises(DataError, match="not torchvision resnet50 weights"):
        build_resnet("resnet50", weights=str(r18))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="cannot read"):
        build_resnet("resnet18", weights=str(garbage))


def test_registered_backbones_follow_the_contract():
    from trackformer import build
    from trackformer.config import validate_component

    for name, channels in [("resnet18", 512), ("resnet34", 512), ("mobilenet_v2", 1280)]:
        node = validate_component(OmegaConf.create({"name": name, "frozen_stages": 1}), "backbones", "backbone")
        backbone = build("backbones", node)
        assert backbone.num_channels == channels
        with torch.no_grad():
            assert backbone.eval()(torch.randn(2, 3, 64, 64)).shape == (2, channels, 2, 2)


def test_fused_frozen_bn_resnet50_forward_and_gradients_equal_torchvision(tmp_path):
    """ResNet-50 folds frozen BN into its convs and runs 1x1 convs as matrix products on
    channels-last memory: outputs and weight gradients must equal torchvision's eval-mode net."""
    torch.manual_seed(0)
    net = torchvision.models.resnet50()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
    torch.save(net.state_dict(), tmp_path / "r50.pth")
    net.eval()  # BatchNorm with fixed statistics = frozen
    ours = build_resnet("resnet50", weights=str(tmp_path / "r50.pth"), frozen_stages=-1)
    x = torch.randn(2, 3, 64, 64)
    a, b = ours(x), torchvision_features(net, x)
    assert torch.allclose(a, b, rtol=1e-4, atol=1e-3)  # activations reach ~50: float rounding
    (a.square().mean()).backward()
    (b.square().mean()).backward()
    for name in ("layer2.0.conv1.weight", "layer3.1.conv3.weight", "layer4.0.downsample.0.weight"):
        ga = ours.body.get_submodule(name.rsplit(".", 1)[0]).weight.grad
        gb = net.get_submodule(name.rsplit(".", 1)[0]).weight.grad
        assert ((ga - gb).norm() / gb.norm()).item() < 1e-4, name


def test_out_stage_truncates():
    r = build_resnet("resnet18", out_stage=3)
    m = build_mobilenet_v2(out_stage=4)
    assert (r.num_channels, m.num_channels) == (256, 96)
    assert not any(k.startswith("body.layer4") for k in r.state_dict())
    with torch.no_grad():
        assert r.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 256, 4, 4)
        assert m.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 96, 4, 4)


def test_pointwise_conv_equals_conv2d_with_gradients_and_under_autocast():
    from trackformer.models.backbones import pointwise_conv

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
