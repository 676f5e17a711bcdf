"""The top-level config schema. Component nodes (`model`, `data`, ...) are validated in a second pass
against the schema their plugin registered (see `trackformer.config`)."""
from dataclasses import dataclass, field
from typing import Any, Dict, List, Literal, Optional

from .errors import ConfigError


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
    lr_backbone: float = 1e-5  # parameters whose name contains "backbone"; 0 freezes them
    # parameters whose name contains a key learn at lr x value, e.g. Deformable DETR's
    # {sampling_offsets: 0.1, reference_points: 0.1} (its official `lr_linear_proj_mult`)
    lr_mult: Dict[str, float] = field(default_factory=dict)
    # module path prefixes that do not train (e.g. [detr] for DETR panoptic's mask stage), in eval
    # mode, from epoch `freeze_from_epoch` (0: from the start); see trackformer/engine/freeze.py
    freeze: List[str] = field(default_factory=list)
    freeze_from_epoch: int = 0
    weight_decay: float = 1e-4
    optimizer: Literal["adamw", "radam", "sgd"] = "adamw"
    fused: bool = False  # adamw/sgd as one fused kernel: ~6x faster steps on CPU, other rounding
    schedule: Literal["step", "cosine", "constant"] = "step"
    lr_drop: int = 200  # epoch of the single 10x drop for `step`
    warmup_steps: int = 0
    clip_max_norm: float = 0.1  # 0 disables clipping
    accumulate: int = 1  # gradient accumulation steps
    # mixed precision: null (float32) | bf16 (CPUs with AVX512-BF16/AMX, CUDA) | fp16 (CUDA)
    amp: Optional[Literal["bf16", "fp16"]] = None
    eval_every: int = 1  # epochs; 0 evaluates only at the end
    eval_before: bool = False  # evaluate the untrained model on the test split as `untrained/...`
    best_metric: str = "loss"  # validation metric selecting best.pt
    best_mode: Literal["min", "max"] = "min"
    log_every: int = 20  # steps between log lines when output is not a terminal
    checkpoint_every: int = 0  # steps between mid-epoch `last.pt` saves; 0 = only at epoch end
    find_unused_parameters: bool = False

    def __post_init__(self):
        at_least = {"epochs": 0, "max_steps": 1, "batch_size": 1, "eval_batch_size": 1, "num_workers": 0,
                    "lr": 0, "lr_backbone": 0, "weight_decay": 0, "lr_drop": 0, "warmup_steps": 0,
                    "clip_max_norm": 0, "accumulate": 1, "eval_every": 0, "log_every": 1,
                    "checkpoint_every": 0, "freeze_from_epoch": 0}
        for key, low in at_least.items():
            value = getattr(self, key)
            if value is not None and not value >= low:  # `not >=` also catches NaN
                raise ConfigError(key, f"must be >= {low}, got {value}")
        for key, value in self.lr_mult.items():
            if not value > 0:
                raise ConfigError(f"lr_mult.{key}", f"must be > 0, got {value}")
        if self.fused and self.optimizer not in ("adamw", "sgd"):
            raise ConfigError("fused", f"only adamw and sgd have a fused kernel, not {self.optimizer}")


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
