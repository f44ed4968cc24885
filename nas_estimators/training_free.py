"""Scores of a network at initialisation that need no training (zero-cost proxies), higher is better.

Each function takes a network (a fixed one, or a supernet already set to one path: only the modules
that run count) and a batch, and returns a float. They never change the network's weights.

* :func:`synflow`: SynFlow (Tanaka et al., 2020; as a NAS proxy, Abdelfattah et al., 2021), the
  log of ``sum |theta * d R / d theta|`` where ``R`` is the summed output of the network with every
  weight replaced by its absolute value, on an all-ones input, batch norm in evaluation mode.
* :func:`naswot`: NASWOT (Mellor et al., 2021), the log-determinant of the Hamming-similarity kernel
  of the ReLUs' binary activation codes over the batch.
* :func:`parameter_count`: the parameters of the modules that run, in millions.
* :func:`ntk_condition`: minus the log condition number of the empirical neural tangent kernel (TE-NAS).
* :func:`flops`: floating-point operations of one input, as :class:`torch.utils.flop_counter.FlopCounterMode`
  counts them (two per multiply-add), in millions.

Example:
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(2, 2, bias=False), nn.ReLU(), nn.Linear(2, 1, bias=False))
    >>> with torch.no_grad():
    ...     _ = net[0].weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    ...     _ = net[2].weight.fill_(1.0)
    >>> round(synflow(net, torch.zeros(1, 2)), 4) == round(math.log(20.0), 4)  # 2 layers x R = 10
    True
    >>> parameter_count(net, torch.zeros(1, 2)) * 1e6
    6.0
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterator

import torch
from torch import nn

__all__ = ["synflow", "naswot", "parameter_count", "flops", "ntk_condition", "modules_run"]


@contextlib.contextmanager
def modules_run(network: nn.Module) -> Iterator[dict[int, nn.Module]]:
    """Collect the modules that run inside the block, each once (the sampled path of a supernet): id -> module."""
    seen: dict[int, nn.Module] = {}
    members = {id(module) for module in network.modules()}

    def record(module, args):
        if id(module) in members:
            seen.setdefault(id(module), module)

    # One global hook, not one per module: a supernet has thousands, and each architecture scored adds them anew.
    handle = nn.modules.module.register_module_forward_pre_hook(record)
    try:
        yield seen
    finally:
        handle.remove()


@contextlib.contextmanager
def _preserved(network: nn.Module, parameters: bool = False) -> Iterator[None]:
    """Restore the network's buffers (batch-norm statistics), train/eval modes and, with ``parameters``,
    its weights, gradients and ``requires_grad`` flags afterwards (only SynFlow changes those).

    One walk over the modules, each restored by itself: a supernet has thousands of modules, and
    ``state_dict`` or ``train()`` walk them again for every architecture scored.
    """
    modules = list(network.modules())
    modes = [(module, module.training) for module in modules]
    kinds = ("_buffers", "_parameters") if parameters else ("_buffers",)
    slots = [(getattr(module, kind), name, id(value)) for module in modules for kind in kinds
             for name, value in getattr(module, kind).items() if value is not None]
    tensors = {key: mapping[name] for mapping, name, key in slots}  # a tensor shared by two modules once
    saved = {key: tensor.detach().clone() for key, tensor in tensors.items()}
    grads = {key: (tensor.grad, tensor.requires_grad) for key, tensor in tensors.items()
             if isinstance(tensor, nn.Parameter)}
    try:
        yield
    finally:
        with torch.no_grad():
            for mapping, name, key in slots:  # through the module: a forward may have put a new tensor there
                mapping[name].data = saved[key]
        for module, training in modes:
            module.training = training
        for key, (grad, flag) in grads.items():
            tensors[key].grad = grad
            tensors[key].requires_grad_(flag)


def synflow(network: nn.Module, inputs: torch.Tensor) -> float:
    """Log SynFlow score of ``network`` (``inputs`` gives the shape and device; its values are not used)."""
    with _preserved(network, parameters=True):
        network.eval()  # batch statistics of an all-ones input are constant: they would zero every channel
        parameters = list(network.parameters())
        with torch.no_grad():
            for parameter in parameters:
                parameter.data = parameter.data.double().abs()
            for buffer in network.buffers():
                if buffer.is_floating_point():
                    buffer.data = buffer.data.double()
        for parameter in parameters:
            parameter.requires_grad_(True)
            parameter.grad = None
        ones = torch.ones((1, *inputs.shape[1:]), dtype=torch.float64, device=inputs.device)
        with torch.enable_grad():
            output = network(ones)
            torch.sum(output).backward()
        total = sum(float((p.data * p.grad).abs().sum()) for p in parameters if p.grad is not None)
    return math.log(total) if total > 0 else float("-inf")


def naswot(network: nn.Module, inputs: torch.Tensor) -> float:
    """NASWOT score: ``log |det K|``, ``K[i, j]`` the number of ReLUs on which inputs i and j agree."""
    codes: list[torch.Tensor] = []

    def record(module, args):
        codes.append((args[0].detach().reshape(len(args[0]), -1) > 0).double())

    handles = [module.register_forward_pre_hook(record) for module in network.modules() if isinstance(module, nn.ReLU)]
    try:
        with _preserved(network), torch.no_grad():
            network.train()
            network(inputs)
    finally:
        for handle in handles:
            handle.remove()
    if not codes:
        return float("-inf")
    binary = torch.cat(codes, dim=1)
    kernel = binary @ binary.t() + (1.0 - binary) @ (1.0 - binary).t()
    sign, logdet = torch.linalg.slogdet(kernel)
    return float(logdet) if float(sign) != 0.0 else float("-inf")


def parameter_count(network: nn.Module, inputs: torch.Tensor) -> float:
    """Millions of parameters in the modules that run on ``inputs`` (each module's own, counted once)."""
    with modules_run(network) as modules, _preserved(network), torch.no_grad():
        network.eval()
        network(inputs[:1])
    unique = {id(p): p for module in modules.values() for p in module.parameters(recurse=False)}
    return sum(p.numel() for p in unique.values()) / 1e6


def flops(network: nn.Module, inputs: torch.Tensor) -> float:
    """Millions of FLOPs of one input as PyTorch's ``FlopCounterMode`` counts them."""
    from torch.utils.flop_counter import FlopCounterMode

    from .pooling import native_pooling

    counter = FlopCounterMode(display=False)
    with _preserved(network), torch.no_grad(), native_pooling(), counter:
        network.eval()
        network(inputs[:1])
    return counter.get_total_flops() / 1e6


def ntk_condition(network: nn.Module, inputs: torch.Tensor, samples: int = 32) -> float:
    """Minus the log condition number of the empirical neural tangent kernel on ``samples`` inputs.

    TE-NAS (Chen et al., 2021): a well-conditioned kernel trains fast, so a smaller condition number
    ``lambda_max / lambda_min`` of ``J J^T`` (``J`` the per-input gradients of the summed logits with
    respect to the weight tensors) scores better. Batch norm uses the batch's statistics, as in training.
    """
    inputs = inputs[:samples]
    with _preserved(network, parameters=True):
        network.train()
        weights = [p for p in network.parameters() if p.dim() > 1]
        for parameter in network.parameters():
            parameter.requires_grad_(False)
        for parameter in weights:
            parameter.requires_grad_(True)
        with modules_run(network) as modules, torch.enable_grad():
            output = network(inputs)
            used = {id(p) for module in modules.values() for p in module.parameters(recurse=False)}
            weights = [p for p in weights if id(p) in used]
            rows = []
            for i in range(len(inputs)):
                grads = torch.autograd.grad(output[i].sum(), weights, retain_graph=i + 1 < len(inputs),
                                            allow_unused=True)
                rows.append(torch.cat([g.reshape(-1) for g in grads if g is not None]))
    jacobian = torch.stack(rows).double()
    eigenvalues = torch.linalg.eigvalsh(jacobian @ jacobian.t())
    smallest, largest = float(eigenvalues[0]), float(eigenvalues[-1])
    if not (smallest > 0 and largest > 0):
        return float("-inf")
    return -math.log(largest / smallest)
