"""The run directory: resolved config, environment record, metric logs and checkpoints."""
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Optional

from omegaconf import DictConfig, OmegaConf

from .checkpoint import save_checkpoint


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json_atomic(path: Path, obj: Any):
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


class Run:
    """One training run's directory. Only the main process writes."""

    def __init__(self, cfg: DictConfig, writer: bool = True):
        self.cfg = cfg
        self.output_dir = Path(cfg.output_dir)
        self.writer = writer
        self.model = None
        self.should_stop = False
        self._tensorboard = None
        if writer:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            (self.output_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
            write_json_atomic(self.output_dir / "env.json", environment_record())
            if not cfg.resume:
                for stale in ("metrics.jsonl", "metrics.json"):
                    (self.output_dir / stale).unlink(missing_ok=True)
            if cfg.tensorboard:
                self._tensorboard = _tensorboard_writer(self.output_dir / "tensorboard")

    @property
    def last_checkpoint(self) -> Path:
        return self.output_dir / "last.pt"

    @property
    def best_checkpoint(self) -> Path:
        return self.output_dir / "best.pt"

    def log(self, record: Dict[str, Any], step: Optional[int] = None):
        """Append one line to metrics.jsonl (and TensorBoard when enabled)."""
        if not self.writer:
            return
        record = {k: _jsonable(v) for k, v in record.items()}
        record.setdefault("time", round(time.time(), 3))
        with open(self.output_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        if self._tensorboard is not None and step is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key not in ("step", "epoch", "time"):
                    self._tensorboard.add_scalar(key, value, step)

    def save_data_info(self, info: Dict[str, Any]):
        if self.writer and info:
            write_json_atomic(self.output_dir / "data_info.json", info)

    def save(self, state: Dict[str, Any], best: bool = False):
        if not self.writer:
            return
        save_checkpoint(state, self.last_checkpoint)
        if best:
            save_checkpoint({"model": state["model"], "epoch": state["epoch"]}, self.best_checkpoint)

    def finish(self, metrics: Dict[str, Any]):
        if not self.writer:
            return
        flat = {k: _jsonable(v) for k, v in sorted(metrics.items())}
        write_json_atomic(self.output_dir / "metrics.json", flat)
        if self._tensorboard is not None:
            self._tensorboard.close()


def _tensorboard_writer(path: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        import warnings

        warnings.warn("tensorboard=true but the tensorboard package is not installed "
                      "(pip install 'trackformer[tensorboard]'); logging to metrics.jsonl only")
        return None
    return SummaryWriter(str(path))


def environment_record() -> Dict[str, Any]:
    import torch

    from .plugins import load_plugins

    record: Dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "device_name": torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.processor(),
        "num_threads": torch.get_num_threads(),
        "argv": sys.argv,
        "plugins": {p.name: p.version or "builtin" for p in load_plugins().info.values()},
    }
    try:
        import torchvision

        record["torchvision"] = torchvision.__version__
    except ImportError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=Path(__file__).resolve().parent)
        if commit.returncode == 0:
            record["git_commit"] = commit.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    return record
