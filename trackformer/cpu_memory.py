"""CPU memory allocation tuned for training, set once when the `trackformer` command starts.

A CPU training step allocates and frees the same large activation buffers every step. With glibc's
defaults, buffers above the mmap threshold (at most 32 MiB) are mapped and unmapped each time and the
heap top is trimmed back to the system, so every step pays again for page faults that zero fresh
pages: on a 2-core host this was a third of the CPU time of `trackformer_pedestrians` (the kernel's
share, `sys`). Two settings remove most of it (figures in docs/engine.md), in the spirit of PyTorch's
CPU performance guide:

* glibc `mallopt`: no mmap for single buffers (every size comes from the heap), no trimming below
  1 GiB and a 512 MiB top pad, so freed buffers are reused (peak memory of that run +15-30 %);
* `THP_MEM_ALLOC_ENABLE=1`: PyTorch backs allocations of 2 MiB and more with transparent huge pages
  (when the kernel allows them with `madvise`): 512 times fewer faults where fresh memory is needed.

Set `TRACKFORMER_CPU_ALLOCATOR=default` to keep the system's behaviour. An explicit
`THP_MEM_ALLOC_ENABLE` in the environment is left as it is. Only Linux with glibc is changed.
"""
import ctypes
import os
import sys

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_MAX = -1, -2, -4  # glibc <malloc.h>
SETTINGS = {M_MMAP_MAX: 0, M_TRIM_THRESHOLD: 1 << 30, M_TOP_PAD: 512 << 20}


def tune_cpu_allocator() -> bool:
    """Apply the settings above; True when glibc accepted them. Must run before torch is imported for
    the huge-page part (PyTorch reads the variable at its first allocation)."""
    if os.environ.get("TRACKFORMER_CPU_ALLOCATOR", "tuned") == "default" or not sys.platform.startswith("linux"):
        return False
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter runs on
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all(mallopt(param, value) == 1 for param, value in SETTINGS.items())
