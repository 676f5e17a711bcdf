"""Torchvision backbones: outputs equal torchvision's own networks with the same weights, the
multi-scale level contract, frozen BatchNorm layout, freezing, dilation, and one-line errors for bad
weight files and level names."""
import pytest
import torch
import torchvision
from omegaconf import OmegaConf

from trackformer.errors import ConfigError, DataError
from trackformer.models.backbones import FrozenBatchNorm2d, build_mobilenet_v2, build_resnet
from trackformer.models.levels import Level, level_masks


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


def torchvision_levels(net, x):  # {"res2": layer1's output, ..., "res5": layer4's}
    x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    out = {}
    for k in range(1, 5):
        x = out[f"res{k + 1}"] = getattr(net, f"layer{k}")(x)
    return out


def torchvision_features(net, x):
    return torchvision_levels(net, x)["res5"]


@pytest.mark.parametrize("frozen_bn", [True, False])
def test_resnet_equals_torchvision_with_same_weights(resnet18_file, frozen_bn):
    net, path = resnet18_file
    backbone = build_resnet("resnet18", weights=str(path), frozen_bn=frozen_bn).eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        out = backbone(x)
        assert list(out) == ["res5"] and backbone.levels == {"res5": Level(512, 32)}
        assert out["res5"].shape == (2, 512, 2, 3)
        assert torch.allclose(out["res5"], torchvision_features(net, x), atol=1e-4)


def test_resnet_returns_the_levels_asked_for_as_declared(resnet18_file):
    net, path = resnet18_file
    backbone = build_resnet("resnet18", weights=str(path), return_levels=["res4", "res2", "res3"]).eval()
    assert backbone.levels == {"res2": Level(64, 4), "res3": Level(128, 8), "res4": Level(256, 16)}
    assert not any(k.startswith("body.layer4") for k in backbone.state_dict())  # res5 never runs
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        out, expected = backbone(x), torchvision_levels(net, x)
    assert list(out) == ["res2", "res3", "res4"]  # fine to coarse, as declared
    for name, level in backbone.levels.items():
        assert out[name].shape == (1, level.channels, 64 // level.stride, 96 // level.stride)
        assert torch.allclose(out[name], expected[name], atol=1e-4), name
    r50 = build_resnet("resnet50", return_levels=["res2", "res3", "res4", "res5"], dilation=True)
    assert r50.levels == {"res2": Level(256, 4), "res3": Level(512, 8), "res4": Level(1024, 16),
                          "res5": Level(2048, 16)}


def test_level_errors_are_one_line():
    with pytest.raises(ConfigError) as error:
        build_resnet("resnet50", return_levels=["res6"])
    assert str(error.value) == "return_levels: unknown level 'res6'; this backbone has res2, res3, res4, res5"
    with pytest.raises(ConfigError) as error:
        build_mobilenet_v2(return_levels=[])
    assert str(error.value) == "return_levels: is empty; give level names or null (the last level)"
    with pytest.raises(ConfigError) as error:
        build_resnet("resnet50", return_levels=["res4"], dilation=True)
    assert str(error.value) == "dilation: only applies to the last stage (res5)"


def test_level_masks_nearest_per_level():
    mask = torch.zeros(2, 64, 96, dtype=torch.bool)
    mask[1, :, 40:] = True  # image 1 is 64 x 40
    features = {"res3": torch.zeros(2, 8, 8, 12), "res5": torch.zeros(2, 8, 2, 3)}
    masks = level_masks(mask, features)
    assert masks["res3"].shape == (2, 8, 12) and masks["res5"].shape == (2, 2, 3)
    assert not masks["res3"][0].any() and masks["res3"][1, :, 5:].all() and not masks["res3"][1, :, :5].any()
    assert masks["res5"][1].tolist() == [[False, False, True]] * 2  # columns 0, 32, 64


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
    assert backbone.levels == {"res5": Level(2048, 16)}
    with torch.no_grad():
        assert backbone(torch.randn(1, 3, 64, 64))["res5"].shape == (1, 2048, 4, 4)


def test_mobilenet_v2_real_weights_equal_torchvision(shared_dir):
    path = shared_dir / "weights" / "mobilenet_v2-b0353104.pth"
    net = torchvision.models.mobilenet_v2()
    net.load_state_dict(torch.load(path, weights_only=True))
    backbone = build_mobilenet_v2(weights=str(path)).eval()
    x = torch.randn(1, 3, 96, 64)
    with torch.no_grad():
        assert torch.allclose(backbone(x)["stride32"], net.eval().features(x), atol=1e-4)
    assert backbone.levels == {"stride32": Level(1280, 32)}
    several = build_mobilenet_v2(weights=str(path), return_levels=["stride8", "stride16"]).eval()
    assert several.levels == {"stride8": Level(32, 8), "stride16": Level(96, 16)}
    with torch.no_grad():
        out = several(x)
        assert torch.allclose(out["stride8"], net.features[:7](x), atol=1e-4)
        assert torch.allclose(out["stride16"], net.features[:14](x), atol=1e-4)


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
        (name, level), = backbone.levels.items()
        assert level == Level(channels, 32)
        with torch.no_grad():
            out = backbone.eval()(torch.randn(2, 3, 64, 64))
        assert list(out) == [name] and out[name].shape == (2, channels, 2, 2)


def test_return_levels_truncate():
    r = build_resnet("resnet18", return_levels=["res4"])
    m = build_mobilenet_v2(return_levels=["stride16"])
    assert (r.levels, m.levels) == ({"res4": Level(256, 16)}, {"stride16": Level(96, 16)})
    assert not any(k.startswith("body.layer4") for k in r.state_dict())
    assert not any(k.startswith("body.14.") for k in m.state_dict())
    with torch.no_grad():
        assert r.eval()(torch.randn(1, 3, 64, 64))["res4"].shape == (1, 256, 4, 4)
        assert m.eval()(torch.randn(1, 3, 64, 64))["stride16"].shape == (1, 96, 4, 4)
