"""A tiny plugin for the core's tests: linear regression data, a two-layer model, MSE loss.

Loaded with `-p toy_plugin` (tests/ on PYTHONPATH), the path a third-party module takes on the
command line. Set TOY_KILL_AT_FORWARD=N to SIGKILL the process at the N-th training forward.
"""
import os
import signal
from dataclasses import dataclass
from typing import Any, Optional

from omegaconf import MISSING

from trackformer import hookimpl
from trackformer.schema import component


@dataclass
class ToyDataConfig:
    root: Optional[str] = None  # when set it must exist (exercises the missing-path error)
    size: int = 64
    dim: int = 8
    noise: float = 0.1


@dataclass
class ToyModelConfig:
    hidden: int = 16
    dropout: float = 0.0
    weights: Optional[str] = None
    weights_strict: bool = True

    def __post_init__(self):
        from trackformer.errors import ConfigError

        if self.hidden < 1:
            raise ConfigError("hidden", f"must be >= 1, got {self.hidden}")


@dataclass
class ToyLossConfig:
    scale: float = 1.0


@dataclass
class ToyRequiredConfig:
    width: int = MISSING


def build_data(cfg, split, **deps):
    import torch

    from trackformer.errors import ConfigError

    if cfg.root is not None and not os.path.isdir(cfg.root):
        raise ConfigError("root", f"directory not found: {cfg.root}")  # reported as data.root
    g = torch.Generator().manual_seed({"train": 0, "val": 1, "test": 2}[split])
    w = torch.arange(1, cfg.dim + 1, dtype=torch.float32) / cfg.dim
    x = torch.randn(cfg.size, cfg.dim, generator=g)
    y = x @ w + cfg.noise * torch.randn(cfg.size, generator=g)
    data = torch.utils.data.TensorDataset(x, y)
    data.info = {"dim": cfg.dim}
    return data



def build_model(cfg, data_info, **deps):
    import torch

    class Toy(torch.nn.Module):
        def __init__(self, dim, hidden, dropout):
            super().__init__()
            self.backbone = torch.nn.Linear(dim, hidden)
            self.head = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Dropout(dropout), torch.nn.Linear(hidden, 1))
            self.forwards = 0

        def forward(self, x, targets=None):
            if self.training:
                self.forwards += 1
                if self.forwards == int(os.environ.get("TOY_KILL_AT_FORWARD", "0")):
                    os.kill(os.getpid(), signal.SIGKILL)
            return self.head(self.backbone(x)).squeeze(-1)

    model = Toy(data_info["dim"], cfg.hidden, cfg.dropout)
    model.settings = cfg  # what the factory received, for the tests
    return model


def build_loss(cfg, **deps):
    import torch

    class MSE(torch.nn.Module):
        def forward(self, outputs, targets):
            loss = cfg.scale * torch.nn.functional.mse_loss(outputs, targets)
            return {"loss": loss, "mae": (outputs - targets).abs().mean().detach()}

    return MSE()


class ToyEvaluator:
    def evaluate(self, model, dataset, device, output_dir):
        import torch

        x, y = dataset.tensors
        with torch.no_grad():
            return {"mse": float(torch.nn.functional.mse_loss(model(x.to(device)), y.to(device)))}


@hookimpl
def register_datasets(register):
    register("toy_regression", build_data, schema=ToyDataConfig, help="random linear regression")
    register("toy_images", build_images, schema=ToyImagesConfig, help="random images, regress their mean")


@hookimpl
def register_architectures(register):
    register("toy_mlp", build_model, schema=ToyModelConfig, help="two-layer MLP")
    register("toy_required", build_model, schema=ToyRequiredConfig, help="has a required setting")
    register("toy_cnn", build_cnn, schema=ToyCNNConfig, help="backbone + linear head")


@hookimpl
def register_losses(register):
    register("toy_mse", build_loss, schema=ToyLossConfig)


@hookimpl
def register_evaluators(register):
    register("toy_mse", lambda cfg, **deps: ToyEvaluator())


@dataclass
class ToyImagesConfig:
    size: int = 32
    image_size: int = 16


@dataclass
class ToyCNNConfig:
    backbone: Any = component("backbones", default_factory=lambda: {"name": "resnet18"})
    weights: Optional[str] = None


def build_images(cfg, split, **deps):
    import torch

    g = torch.Generator().manual_seed({"train": 0, "val": 1, "test": 2}[split])
    x = torch.rand(cfg.size, 3, cfg.image_size, cfg.image_size, generator=g)
    data = torch.utils.data.TensorDataset(x, x.mean(dim=(1, 2, 3)))
    data.info = {}
    return data


def build_cnn(cfg, **deps):
    import torch

    from trackformer import build
    from trackformer.models.levels import last_level

    class CNNRegressor(torch.nn.Module):
        def __init__(self, backbone):
            super().__init__()
            self.backbone = backbone
            self.level = last_level(backbone)
            self.head = torch.nn.Linear(backbone.levels[self.level].channels, 1)

        def forward(self, images, targets=None):
            features = self.backbone(images)[self.level]  # [B, C, h, w]
            return self.head(features.mean(dim=(2, 3))).squeeze(-1)

    return CNNRegressor(build("backbones", cfg.backbone))

