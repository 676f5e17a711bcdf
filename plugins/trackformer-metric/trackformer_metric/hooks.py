"""trackformer entry point of the metric learning plugin. Import-light: torch is imported inside the
factories only.

Registers the `intra_batch` architecture, the `intra_batch` loss and the command
`trackformer bench retrieval CONFIG [key=value ...]`.
"""
from dataclasses import dataclass
from typing import Any, Optional

from trackformer import hookimpl
from trackformer.schema import component


@dataclass
class IntraBatchConfig:
    backbone: Any = component("backbones")
    num_classes: Optional[int] = None  # default: the training data's num_classes
    embed_dim: int = 512
    pooling: str = "max"  # max | avg: global pooling of the backbone's last feature map
    mpn_layers: int = 1  # 0 disables the message passing network (the no-MPN baseline)
    mpn_heads: int = 2
    mpn_ffn: int = 2048
    mpn_dropout: float = 0.1
    refine_k: int = 0  # test-time refinement over k reciprocal neighbours (the paper's optional step; 0: off)
    weights: Optional[str] = None  # a trained checkpoint to start from / evaluate
    weights_strict: bool = True


@dataclass
class IntraBatchLossConfig:
    temperature: float = 0.2
    label_smoothing: float = 0.1
    backbone_weight: float = 1.0
    mpn_weight: float = 1.0


def _model(cfg, data_info=None, **context):
    from .model import build

    return build(cfg, data_info=data_info)


def _loss(cfg, **context):
    from .losses import build

    return build(cfg)


@hookimpl
def register_architectures(register):
    register("intra_batch", _model, schema=IntraBatchConfig,
             help="backbone + max pool + 512-d embedding + message passing over the batch (Seidenschwarz 2021)")


@hookimpl
def register_losses(register):
    register("intra_batch", _loss, schema=IntraBatchLossConfig,
             help="label-smoothed CE with temperature on the backbone and MPN heads, 1:1")


def _bench_args(parser):
    parser.add_argument("config", help="YAML config of the model and data set")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="dotted overrides, e.g. model.weights=runs/x/best.pt data.root=/data/CUB_200_2011")
    parser.add_argument("--split", default="test", help="data split to evaluate (default: test)")
    parser.add_argument("--out", default=None, help="output folder (default: <output_dir>/bench_retrieval)")
    parser.add_argument("--grid", type=int, default=8, help="query rows in the picture grid (0: none)")
    parser.add_argument("--topk", type=int, default=5, help="results per query in the picture grid")
    parser.add_argument("--device", default=None, help="override the config's device")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON on stdout")


def _bench(args) -> int:
    from .bench import bench_retrieval

    return bench_retrieval(args)


@hookimpl
def register_commands(register):
    register("bench retrieval", _bench, add_arguments=_bench_args,
             help="retrieval table (R@K, NMI, MAP@R), JSON and a picture grid of top-k results")


@hookimpl
def config_dirs():
    from pathlib import Path

    return [Path(__file__).parent / "configs"]
