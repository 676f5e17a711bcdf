"""Checkpoints: written atomically (temporary file + rename), read with `weights_only=True`, so a run
killed at any moment leaves the previous checkpoint intact and no checkpoint file can run code.

Reading tells apart a damaged file ("corrupt checkpoint") from one that is intact but holds objects
whose unpickling would call code ("refused"), and refuses model weights holding NaN or Inf."""
import argparse
import io
import pickle
import pickletools
import warnings
import zipfile
from pathlib import Path
from typing import Any, Dict, Union

from .atomic import atomic_write
from .errors import DataError

PathLike = Union[str, Path]

CORRUPT = "corrupt checkpoint: truncated, or not a file written by torch.save"
UNSAFE = ("refused: the file holds objects that would run code when unpickled (only tensors and plain "
          "containers are loaded)")


def save_checkpoint(obj: Any, path: PathLike) -> Path:
    import torch

    with atomic_write(path, "wb") as f:
        torch.save(obj, f)
    return Path(path)


def load_checkpoint(path: PathLike, map_location="cpu") -> Any:
    """Load a checkpoint safely; a missing, corrupt or code-carrying file is a one-line `DataError`."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise DataError(path, "checkpoint file not found")
    try:
        with warnings.catch_warnings():  # torch warns about the pickle protocol of foreign files
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            # argparse.Namespace: the `args` of official TrackFormer checkpoints (it only sets attributes)
            with torch.serialization.safe_globals([argparse.Namespace]):
                return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        # the weights-only unpickler refuses both unknown globals and garbage: only an intact
        # pickle stream can be said to carry code
        raise DataError(path, UNSAFE if _intact_pickle(path) else CORRUPT) from None
    except Exception:  # zip reader, EOF, unknown persistent ids...: the file is damaged
        raise DataError(path, CORRUPT) from None


def _intact_pickle(path: Path) -> bool:
    """Whether the pickles of a torch.save file parse to the end (zip format: `data.pkl`; the legacy
    format: magic number, protocol, system info, then the object)."""
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                name = next((n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), None)
                streams, count = io.BytesIO(archive.read(name)) if name else None, 1
        except (zipfile.BadZipFile, OSError, EOFError):
            return False
    else:
        streams, count = io.BytesIO(path.read_bytes()), 4
    if streams is None:
        return False
    try:
        for _ in range(count):
            for _op in pickletools.genops(streams):  # raises on a bad opcode or a missing STOP
                pass
    except Exception:
        return False
    return True


def check_finite(state: Dict[str, Any], path: PathLike):
    """Refuse model weights holding NaN or Inf (a diverged run), naming the first bad tensor."""
    import torch

    for key, value in state.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all():
            what = "NaN" if torch.isnan(value).any() else "Inf"
            raise DataError(path, f"refused: weight {key!r} holds {what} (saved from a diverged run?)")


def model_state_from(obj: Any, path: PathLike) -> Dict[str, Any]:
    """The state dict in a checkpoint: a `model` entry (official DETR, our own runs) or a bare dict;
    its floating-point tensors are checked to be finite."""
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        check_finite(obj["model"], path)
        return obj["model"]
    if isinstance(obj, dict) and obj and all(isinstance(k, str) for k in obj):
        import torch

        if all(isinstance(v, torch.Tensor) for v in obj.values()):
            check_finite(obj, path)
            return obj
    raise DataError(path, "no model weights found: expected a state dict or a dict with a 'model' entry")


def state_dict_mismatch(own: Dict[str, Any], state: Dict[str, Any], prefix: str = "",
                        ignore_missing=()) -> str:
    """What keeps `state` from loading strictly into a module whose state dict is `own` ("" if
    nothing): missing and unexpected keys (counted, one example) and the first wrong shape."""
    missing = sorted(set(own) - set(state) - set(ignore_missing))
    unexpected = sorted(set(state) - set(own))
    wrong = [k for k in state if k in own and state[k].shape != own[k].shape]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {prefix}{missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {prefix}{unexpected[0]})")
    if wrong:
        parts.append(f"shape of {prefix}{wrong[0]} is {tuple(state[wrong[0]].shape)}, "
                     f"expected {tuple(own[wrong[0]].shape)}")
    return "; ".join(parts)


def load_model_weights(model, path: PathLike, strict: bool = True):
    """Load weights into `model`. Non-strict loading keeps what fits and reports what was skipped
    (fine-tuning with another number of classes re-initialises the class head). A model with an
    `upgrade_state_dict(state) -> state` method rewrites legacy keys first."""
    state = model_state_from(load_checkpoint(path), path)
    upgrade = getattr(model, "upgrade_state_dict", None)  # a model's rewrites of legacy key names
    if upgrade is not None:
        state = upgrade(state)
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
