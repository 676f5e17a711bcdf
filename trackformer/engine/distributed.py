"""torch.distributed glue for `torchrun`: nothing home-made, just the process group and helpers.

`torchrun --nproc_per_node N -m trackformer run CONFIG` sets RANK/WORLD_SIZE/LOCAL_RANK; we start a
process group (nccl on CUDA, gloo on CPU) and wrap the model in DistributedDataParallel.
"""
import os

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    return rank() == 0


def init_from_env(device_name: str) -> bool:
    """Start the process group when launched by torchrun; returns whether this run is distributed."""
    if is_distributed() or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return is_distributed()
    use_cuda = device_name != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return True


def local_device(device: torch.device) -> torch.device:
    if device.type == "cuda" and is_distributed():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def barrier():
    if is_distributed():
        dist.barrier()


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    """Mean of `value` over processes (a copy); identity when not distributed."""
    if not is_distributed():
        return value
    value = value.clone()
    dist.all_reduce(value)
    return value / world_size()


def cleanup():
    if is_distributed():
        dist.destroy_process_group()
