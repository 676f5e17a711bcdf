"""trackformer entry point of the metric learning plugin: registration only. Settings live in
`settings.py`, the factories at the bottom of `model.py` and `losses.py`, imported when first used.

Registers the `intra_batch` architecture, the `intra_batch` loss and the command
`trackformer bench retrieval CONFIG [key=value ...]`.
"""
from trackformer import hookimpl

from .settings import IntraBatchConfig, IntraBatchLossConfig


@hookimpl
def register_architectures(register):
    register("intra_batch", "trackformer_metric.model:build", schema=IntraBatchConfig, losses=["intra_batch"],
             help="backbone + max pool + 512-d embedding + message passing over the batch (Seidenschwarz 2021)")


@hookimpl
def register_losses(register):
    register("intra_batch", "trackformer_metric.losses:build", schema=IntraBatchLossConfig,
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
