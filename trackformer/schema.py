"""The top-level config schema. Component nodes (`model`, `data`, ...) are validated in a second pass
against the schema their plugin registered (see `trackformer.config`)."""
from dataclasses import dataclass, field
from typing import Any, List, Optional


def component(kind: str, default: Any = None, default_factory=None) -> Any:
    """A field holding a `{name: <registered>, ...}` node of the registry `kind`; plugins use it in
    their schemas for sub-components, e.g. `backbone: Any = component("backbones")`."""
    if default_factory is not None:
        return field(default_factory=default_factory, metadata={"component": kind})
    return field(default=default, metadata={"component": kind})


@dataclass
class TrainConfig:
    epochs: int = 10
    max_steps: Optional[int] = None  # stop early after this many optimizer steps (smoke runs)
    batch_size: int = 2
    eval_batch_size: Optional[int] = None
    num_workers: int = 0
    lr: float = 1e-4
    lr_backbone: float = 1e-5  # parameters whose name contains "backbone"
    weight_decay: float = 1e-4
    optimizer: str = "adamw"  # adamw | radam | sgd
    fused: bool = False  # adamw/sgd as one fused kernel: ~6x faster steps on CPU, other rounding
    schedule: str = "step"  # step | cosine | constant
    lr_drop: int = 200  # epoch of the single 10x drop for `step`
    warmup_steps: int = 0
    clip_max_norm: float = 0.1  # 0 disables clipping
    accumulate: int = 1  # gradient accumulation steps
    amp: Optional[str] = None  # mixed precision: bf16 (CPUs with AVX512-BF16/AMX, CUDA) | fp16 (CUDA)
    eval_every: int = 1  # epochs; 0 evaluates only at the end
    eval_before: bool = False  # evaluate the untrained model on the test split as `untrained/...`
    best_metric: str = "loss"  # validation metric selecting best.pt
    best_mode: str = "min"  # min | max
    log_every: int = 20  # steps between log lines when output is not a terminal
    checkpoint_every: int = 0  # steps between mid-epoch `last.pt` saves; 0 = only at epoch end
    find_unused_parameters: bool = False


@dataclass
class RunConfig:
    output_dir: str = "runs/default"
    seed: int = 42
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    resume: bool = False
    tensorboard: bool = False
    model: Any = component("architectures")
    data: Any = component("datasets")
    matcher: Any = component("matchers")
    loss: Any = component("losses")
    evaluator: Any = component("evaluators")
    train: TrainConfig = field(default_factory=TrainConfig)
    # Variants of this config trained and evaluated after it, metrics merged as `<name>/<metric>`:
    # {no_mpn: ["model.mpn_layers=0"]}. Each is a list of dotted overrides.
    compare: Any = field(default_factory=dict)
    notes: Optional[str] = None
    extends: Optional[List[str]] = None
