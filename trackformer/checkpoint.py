"""Checkpoints: written atomically (temporary file + rename), read with `weights_only=True`, so a run
killed at any moment leaves the previous checkpoint intact and no checkpoint file can run code."""
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Union

from .errors import DataError

PathLike = Union[str, Path]


def save_checkpoint(obj: Any, path: PathLike) -> Path:
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_checkpoint(path: PathLike, map_location="cpu") -> Any:
    """Load a checkpoint safely; a missing, corrupt or code-carrying file is a one-line `DataError`."""
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise DataError(path, "checkpoint file not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else "unsafe content"
        if "Weights only load failed" in str(error) or "Unsupported" in str(error) or "global" in str(error):
            raise DataError(path, "refused: the file holds objects that would run code when unpickled "
                                  "(only tensors and plain containers are loaded)") from None
        raise DataError(path, f"not a valid checkpoint ({reason})") from None
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(path, f"corrupt or truncated checkpoint ({reason})") from None


def model_state_from(obj: Any, path: PathLike) -> Dict[str, Any]:
    """The state dict in a checkpoint: a `model` entry (official DETR, our own runs) or a bare dict."""
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        return obj["model"]
    if isinstance(obj, dict) and obj and all(isinstance(k, str) for k in obj):
        import torch

        if all(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj
    raise DataError(path, "no model weights found: expected a state dict or a dict with a 'model' entry")


def load_model_weights(model, path: PathLike, strict: bool = True):
    """Load weights into `model`. Non-strict loading keeps what fits and reports what was skipped
    (fine-tuning with another number of classes re-initialises the class head)."""
    state = model_state_from(load_checkpoint(path), path)
    if strict:
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as error:
            lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
            detail = "; ".join(lines[1:3]) if len(lines) > 1 else lines[0]
            raise DataError(path, f"weights do not fit the model: {detail[:400]} "
                                  "(use model.weights_strict=false to fine-tune)") from None
        return [], []
    own = model.state_dict()
    fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    skipped = sorted(set(state) - set(fitting))
    missing = sorted(set(own) - set(fitting))
    model.load_state_dict(fitting, strict=False)
    return skipped, missing
