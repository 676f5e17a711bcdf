"""What a run must save to continue exactly where it stopped, and how it saves and restores itself.

A checkpoint (`last.pt`) is `TrainState.state_dict()`: tensors, numbers and plain containers only, so
it loads with `weights_only=True`. Resuming from it replays nothing and skips nothing: the model,
optimizer, scheduler and loss-scaler states, the position (epoch, batch within it, optimizer step),
the best validation value and the metrics gathered so far, the random generators, and how many
lines of `metrics.jsonl` had been written.
"""
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import torch

from ..checkpoint import check_finite, load_checkpoint
from ..errors import DataError


@dataclass
class TrainState:
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any  # torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    epoch: int = 0  # epochs completed
    batch_in_epoch: int = 0  # batches of epoch `epoch + 1` already trained (mid-epoch checkpoint)
    global_step: int = 0  # optimizer steps taken
    best: Optional[float] = None  # best value of train.best_metric so far
    # what metrics.json will hold besides the test metrics: untrained/*, and the best epoch's
    # val/* with best_epoch
    metrics: Dict[str, float] = field(default_factory=dict)
    loss_sums: Dict[str, float] = field(default_factory=dict)  # this epoch's loss terms, summed
    log_lines: int = 0  # lines of metrics.jsonl at the time of the checkpoint

    def state_dict(self) -> Dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch, "global_step": self.global_step,
                "best": self.best, "metrics": dict(self.metrics), "loss_sums": dict(self.loss_sums),
                "log_lines": self.log_lines,
                "rng": get_rng_state()}

    def load_state_dict(self, state: Dict[str, Any]):
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.batch_in_epoch = state["epoch"], state["batch_in_epoch"]
        self.global_step, self.best = state["global_step"], state["best"]
        # checkpoints of earlier versions kept only the untrained/* metrics, and no log length
        self.metrics = dict(state.get("metrics", state.get("untrained", {})))
        self.loss_sums = dict(state.get("loss_sums", {}))
        self.log_lines = state.get("log_lines", 0)
        set_rng_state(state["rng"])

    def load(self, path: Path):
        """Restore from checkpoint `path`; corrupt, unsafe or non-finite files are one-line errors."""
        state = load_checkpoint(path)
        missing = [k for k in ("model", "optimizer", "scheduler", "scaler", "epoch", "batch_in_epoch",
                               "global_step", "best", "rng") if not isinstance(state, dict) or k not in state]
        if missing:
            raise DataError(path, f"not a training checkpoint: no {missing[0]!r} entry")
        check_finite(state["model"], path)
        try:
            self.load_state_dict(state)
        except (RuntimeError, ValueError, KeyError) as error:
            detail = str(error).strip().splitlines()[-1].strip()
            raise DataError(path, f"does not fit this run's model or optimizer ({detail[:200]}); resume "
                                  "with the config the run was started with") from None


def get_rng_state() -> Dict[str, Any]:
    np_state = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
             "numpy": torch.from_numpy(np_state[1].astype(np.int64)), "numpy_pos": int(np_state[2])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]):
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), None))
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
