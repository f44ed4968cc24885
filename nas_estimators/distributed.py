"""The few collective operations a data-parallel search needs, over ``torch.distributed``.

Lightning's DDP strategy starts the processes and the process group (gloo on CPUs, NCCL on GPUs) and
averages the shared weights' gradients. What it does not know about is the architecture distribution:
each process scores its own sampled architectures, and these functions make every process apply the
same update to the logits. With one process every function is the identity, and nothing here is
imported from Lightning or NNI.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.distributed as dist


def world() -> tuple[int, int]:
    """``(rank, processes)`` of the running process group; ``(0, 1)`` without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _device() -> torch.device:
    # NCCL moves CUDA tensors only; gloo moves CPU tensors.
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _flat(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """The tensors as one float64 vector on the backend's device: one collective moves all of them."""
    return torch.cat([t.detach().reshape(-1).to(_device(), torch.float64) for t in tensors])


def _unflat_(flat: torch.Tensor, tensors: Sequence[torch.Tensor]) -> None:
    offset = 0
    with torch.no_grad():
        for tensor in tensors:
            size = tensor.numel()
            tensor.copy_(flat[offset:offset + size].view_as(tensor).to(tensor.device, tensor.dtype))
            offset += size


def mean_(tensors: Sequence[torch.Tensor]) -> None:
    """Replace each tensor, in place, by its mean over the processes (one collective for all of them).

    Every process ends with the same values, bit for bit: the reduction's result is sent to all.
    """
    if world()[1] == 1 or not tensors:
        return
    flat = _flat(tensors)
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    _unflat_(flat / world()[1], tensors)


def broadcast_(tensors: Sequence[torch.Tensor]) -> None:
    """Overwrite each tensor, in place, with rank 0's (one collective for all of them)."""
    if world()[1] == 1 or not tensors:
        return
    flat = _flat(tensors)
    dist.broadcast(flat, src=0)
    _unflat_(flat, tensors)


def gather_floats(values: Sequence[float]) -> list[float]:
    """Every process's ``values`` (the same count in each), concatenated in rank order."""
    _, processes = world()
    if processes == 1:
        return [float(v) for v in values]
    local = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_device())
    gathered = [torch.empty_like(local) for _ in range(processes)]
    dist.all_gather(gathered, local)
    return torch.cat(gathered).tolist()


def largest(value: int) -> int:
    """The largest ``value`` over the processes (a stop request seen by any of them)."""
    _, processes = world()
    if processes == 1:
        return int(value)
    flag = torch.tensor([int(value)], dtype=torch.int64, device=_device())
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return int(flag.item())


def gather_bytes(state: torch.Tensor) -> list[torch.Tensor]:
    """Every process's ``uint8`` tensor (a random generator's state), in rank order; ``[state]`` alone."""
    _, processes = world()
    if processes == 1:
        return [state]
    local = state.to(_device())
    sizes = gather_floats([local.numel()])
    if len(set(sizes)) != 1:
        raise RuntimeError("the processes' generator states differ in size")
    gathered = [torch.empty_like(local) for _ in range(processes)]
    dist.all_gather(gathered, local)
    return [t.cpu() for t in gathered]
