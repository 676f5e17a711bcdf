"""The CPU allocator settings of `trackformer`: freed activation buffers are reused instead of being
unmapped and faulted in again every step (counted as minor page faults of a training-like loop)."""
import os
import subprocess
import sys

import pytest

LOOP = """
import resource, sys
from trackformer.cpu_memory import tune_cpu_allocator
tuned = tune_cpu_allocator()
import torch
sizes = [5, 60, 12, 33, 8, 45, 20]  # MiB: the buffers of one "step", allocated, written, freed
def step():
    buffers = [torch.empty(s << 18).fill_(1.0) for s in sizes]
    del buffers
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print(int(tuned), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(**env):
    base = {k: v for k, v in os.environ.items() if k != "TRACKFORMER_CPU_ALLOCATOR"}
    env = {**base, "OMP_NUM_THREADS": "1", "THP_MEM_ALLOC_ENABLE": "0", **env}  # the glibc part alone
    out = subprocess.run([sys.executable, "-c", LOOP], env=env, capture_output=True, text=True, check=True)
    tuned, faults = out.stdout.split()
    return tuned == "1", int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt is Linux-only")
def test_tuned_allocator_reuses_freed_buffers():
    default_tuned, default = _faults(TRACKFORMER_CPU_ALLOCATOR="default")
    tuned, faults = _faults()
    assert not default_tuned and tuned
    # 10 steps of 183 MiB, about 470,000 4-KiB pages: glibc's defaults faulted 219,000-374,000 of them
    # again here, the tuned heap 0-19,200 (a run-to-run difference in which chunks stay in the heap)
    assert default > 100_000
    assert faults < default / 5


def test_opt_out_leaves_the_environment_alone(monkeypatch):
    from trackformer.cpu_memory import tune_cpu_allocator

    monkeypatch.setenv("TRACKFORMER_CPU_ALLOCATOR", "default")
    monkeypatch.delenv("THP_MEM_ALLOC_ENABLE", raising=False)
    assert tune_cpu_allocator() is False
    assert "THP_MEM_ALLOC_ENABLE" not in os.environ
