"""A faster, exact stand-in for the spaces' average pooling on the CPU.

NNI's spaces pool with ``nn.AvgPool2d(3, stride, padding=1, count_include_pad=False)``. At the CPU proxy's
widths (4-16 channels) PyTorch's pooling kernel costs more than a 3x3 convolution of the same shape (py-spy: 12%
of a weights-only step). The same average is a depthwise convolution with a box of ones, divided by how many
pixels of each window lie inside the image; forward and backward together run about three times faster.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn


_native = False


@contextlib.contextmanager
def native_pooling() -> Iterator[None]:
    """Within it, every :class:`BoxAverage` runs PyTorch's own pooling: what NNI's frozen network runs, so that
    a FLOP count (``FlopCounterMode`` counts no pooling, but would count the convolution) or a latency measured
    on a supernet's path is the frozen network's."""
    global _native
    previous, _native = _native, True
    try:
        yield
    finally:
        _native = previous


class BoxAverage(nn.Module):
    """``nn.AvgPool2d(kernel_size, stride, padding, count_include_pad=False)`` as a depthwise convolution.

    Has no parameters and no state: a checkpoint of a model that holds one equals one of the model with the
    pooling it replaced.

    >>> import torch
    >>> x = torch.randn(2, 3, 8, 8)
    >>> pool = torch.nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    >>> torch.allclose(BoxAverage(3, 1, 1)(x), pool(x), atol=1e-6)
    True
    """

    def __init__(self, kernel_size: int, stride: int = 1, padding: int = 0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self._cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def _box_and_counts(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        key = (x.shape[1], x.shape[-2], x.shape[-1], x.device, x.dtype)
        if key not in self._cache:
            k = self.kernel_size
            # Made outside inference mode, so that a step with autograd may reuse them after an evaluation.
            with torch.inference_mode(False):
                box = torch.ones(x.shape[1], 1, k, k, device=x.device, dtype=x.dtype)
                inside = torch.ones(1, 1, x.shape[-2], x.shape[-1], device=x.device, dtype=x.dtype)
                counts = F.conv2d(inside, box[:1], stride=self.stride, padding=self.padding)
                self._cache = {key: (box, counts.reciprocal())}
        return self._cache[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _native:
            return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, count_include_pad=False)
        box, reciprocal_counts = self._box_and_counts(x)
        sums = F.conv2d(x, box, stride=self.stride, padding=self.padding, groups=x.shape[1])
        return sums * reciprocal_counts

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


def _replaceable(module: nn.Module) -> bool:
    return (isinstance(module, nn.AvgPool2d) and not module.count_include_pad and not module.ceil_mode
            and module.divisor_override is None
            and all(isinstance(v, int) or len(set(v)) == 1
                    for v in (module.kernel_size, module.stride, module.padding)))


def _single(value) -> int:
    return value if isinstance(value, int) else value[0]


def box_average_pools(model: nn.Module) -> nn.Module:
    """Replace each square ``count_include_pad=False`` average pooling in ``model`` by a :class:`BoxAverage`.

    Returns ``model``, changed in place.
    """
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if _replaceable(child):
                setattr(parent, name, BoxAverage(_single(child.kernel_size), _single(child.stride),
                                                 _single(child.padding)))
    return model
