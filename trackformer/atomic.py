"""Files that appear complete or not at all: write a temporary file beside the target, flush it to
disk, then rename it over the target (`os.replace` is atomic on one file system).

A process killed mid-write leaves the target as it was, plus its temporary `.<name>.<random>.tmp`;
`remove_stale_temporaries(folder)` deletes those (the run directory calls it on start and resume).
"""
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator, List, Union

PathLike = Union[str, Path]
TEMPORARY_GLOB = ".*.tmp"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give; mkstemp alone makes files private (0600)


@contextmanager
def atomic_write(path: PathLike, mode: str = "w") -> Iterator[IO]:
    """`with atomic_write(path, "wb") as f: ...` writes `path` atomically; an exception inside the
    block leaves `path` untouched and removes the temporary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_text_atomic(path: PathLike, text: str) -> Path:
    with atomic_write(path) as f:
        f.write(text)
    return Path(path)


def write_json_atomic(path: PathLike, obj: Any, sort_keys: bool = True) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=sort_keys) + "\n")


def remove_stale_temporaries(folder: PathLike) -> List[Path]:
    """Delete the temporary files that killed writers left in `folder` (not recursive); returns them."""
    stale = sorted(p for p in Path(folder).glob(TEMPORARY_GLOB) if p.is_file())
    for p in stale:
        p.unlink(missing_ok=True)
    return stale
