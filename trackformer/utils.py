"""Small shared helpers: devices, moving nested batches, progress reporting, seeding."""
import logging
import os
import random
import sys
import time
from typing import Any, Callable, Iterable, Optional

from .errors import ConfigError

log = logging.getLogger("trackformer")


def resolve_device(name: str = "auto"):
    """`auto` picks CUDA when present, else CPU; asking for CUDA without it is a config error."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("device", f"{name!r} requested but CUDA is not available; use device=cpu or auto")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError("device", f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None


def map_tensors(fn: Callable[[Any], Any], obj: Any) -> Any:
    """Apply `fn` to every torch object with a `.to` (tensors, mostly) in a nested structure of
    dicts, lists, tuples and named tuples, keeping the structure."""
    if hasattr(obj, "to") and callable(obj.to) and type(obj).__module__.startswith("torch"):
        return fn(obj)
    if isinstance(obj, dict):
        return {k: map_tensors(fn, v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        mapped = [map_tensors(fn, v) for v in obj]
        return type(obj)(mapped) if not hasattr(obj, "_fields") else type(obj)(*mapped)
    return obj


def to_device(obj: Any, device, non_blocking: bool = False) -> Any:
    """Move every tensor in a nested structure of lists, tuples and dicts to `device`."""
    return map_tensors(lambda t: t.to(device, non_blocking=non_blocking), obj)


def to_float32(obj: Any) -> Any:
    """Cast every float16/bfloat16 tensor in a nested structure to float32 (autograd follows)."""
    import torch

    half = (torch.float16, torch.bfloat16)
    return map_tensors(lambda t: t.float() if getattr(t, "dtype", None) in half else t, obj)


def seed_everything(seed: int):
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def interactive() -> bool:
    """Progress bars only on a real terminal; logs and CI get periodic plain lines instead."""
    return sys.stderr.isatty() and not os.environ.get("CI")


def progress(iterable: Iterable, total: Optional[int] = None, desc: str = "", every: float = 10.0):
    """Iterate with a rich progress bar on a terminal, or a plain line every `every` seconds otherwise."""
    if total is None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    if interactive():
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TimeRemainingColumn()]
        with Progress(*columns, transient=True) as bar:
            task = bar.add_task(desc, total=total)
            for item in iterable:
                yield item
                bar.advance(task)
        return
    start = last = time.monotonic()
    for i, item in enumerate(iterable, 1):
        yield item
        now = time.monotonic()
        if now - last >= every:
            last = now
            of = f"/{total}" if total else ""
            print(f"{desc} {i}{of} ({now - start:.0f}s)", file=sys.stderr, flush=True)
