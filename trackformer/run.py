"""The run directory: resolved config, environment record, metric logs and checkpoints."""
import json
import math
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Optional

from omegaconf import DictConfig, OmegaConf

from .atomic import remove_stale_temporaries, write_json_atomic, write_text_atomic
from .checkpoint import save_checkpoint
from .errors import ConfigError


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_metrics(output_dir, metrics: Dict[str, Any]):
    """`metrics.json`: the run's final metrics, keys sorted, non-finite values as null."""
    write_json_atomic(Path(output_dir) / "metrics.json", {k: _jsonable(v) for k, v in sorted(metrics.items())})


class Run:
    """One training run's directory. Only the main process writes."""

    def __init__(self, cfg: DictConfig, writer: bool = True):
        self.cfg = cfg
        self.output_dir = Path(cfg.output_dir)
        self.writer = writer
        self.model = None
        self.should_stop = False
        self._tensorboard = None
        self.log_lines = 0  # lines of metrics.jsonl written so far (a checkpoint records it)
        self.created = writer and not self.output_dir.exists()  # `abandon` removes only a directory made here
        if writer:
            self._make_directory(OmegaConf.to_yaml(cfg))
            write_json_atomic(self.output_dir / "env.json", environment_record())
            remove_stale_temporaries(self.output_dir)  # left by a process killed while writing
            if not cfg.resume:
                for stale in ("metrics.jsonl", "metrics.json"):
                    (self.output_dir / stale).unlink(missing_ok=True)
            if cfg.tensorboard:
                self._tensorboard = _tensorboard_writer(self.output_dir / "tensorboard")

    def abandon(self):
        """The run failed before training (a bad input found while building): remove the directory if
        this run created it, so nothing half-written is left."""
        if self.created:
            if self._tensorboard is not None:
                self._tensorboard.close()
            shutil.rmtree(self.output_dir, ignore_errors=True)

    def _make_directory(self, config_yaml: str):
        where = self.output_dir
        try:
            where.mkdir(parents=True, exist_ok=True)
            write_text_atomic(where / "config.yaml", config_yaml)
        except FileExistsError:
            raise ConfigError("output_dir", f"{where} is a file, not a directory") from None
        except NotADirectoryError:
            raise ConfigError("output_dir", f"cannot create {where}: a parent is a file") from None
        except OSError as error:
            raise ConfigError("output_dir", f"cannot write to {where}: {error.strerror or error}") from None

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
        self.log_lines += 1
        if self._tensorboard is not None and step is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key not in ("step", "epoch", "time"):
                    self._tensorboard.add_scalar(key, value, step)

    def truncate_log(self, lines: int):
        """Keep the first `lines` lines of metrics.jsonl: on resume, what was logged after the
        checkpoint (and is about to be replayed) goes, as does a line cut by the kill."""
        self.log_lines = lines
        path = self.output_dir / "metrics.jsonl"
        if not self.writer or not path.is_file():
            return
        kept = path.read_text().splitlines(keepends=True)[:lines]
        write_text_atomic(path, "".join(kept))

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
        write_metrics(self.output_dir, metrics)
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
