"""The model spaces the command line searches: NNI's hub DARTS and NAS-Bench-201 spaces."""

from __future__ import annotations

from .checks import integer
from .pooling import box_average_pools

SPACES = ("darts", "nb201")
#: How the search supernet normalises: NNI's layers as built (affine parameters, running averages), or
#: batch statistics alone without affine parameters (NAS-Bench-201's own one-shot search setting).
BATCH_NORMS = ("nni", "no-affine")

# (width, cells) per space when the command line is not told: the standard search settings.
DEFAULT_SIZE = {"darts": (16, 8), "nb201": (16, 5)}
# Width and cells for the digits default (8x8 images): small enough for a 2-core CPU.
DIGITS_SIZE = {"darts": (8, 5), "nb201": (8, 1)}


def resolve_size(space: str, dataset: str, width: int | None = None, cells: int | None = None,
                 concrete: bool = False) -> tuple[int | None, int | None]:
    """The (width, cells) a search of ``space`` on ``dataset`` builds: the given ones win; on digits the
    small defaults; otherwise the standard ones when ``concrete``, else None (``build_space`` fills them in,
    and a search records None: its checkpoints stay comparable with those written before)."""
    defaults = DIGITS_SIZE if dataset == "digits" else DEFAULT_SIZE if concrete else {}
    default_width, default_cells = defaults.get(space, (None, None))
    return (default_width if width is None else width, default_cells if cells is None else cells)


def build_space(name: str, width: int | None = None, cells: int | None = None, num_classes: int = 10,
                batch_norm: str = "nni"):
    """A fresh NNI model space.

    ``darts``: ``DARTS(width, num_cells=cells, dataset='cifar')`` (cells in the whole network).
    ``nb201``: ``NasBench201(stem_out_channels=width, num_modules_per_stack=cells)`` (cells per stage).
    ``batch_norm``: one of :data:`BATCH_NORMS` (see :func:`batch_statistics_only`).
    """
    if batch_norm not in BATCH_NORMS:
        raise ValueError(f"batch_norm: expected one of {', '.join(BATCH_NORMS)}, got {batch_norm!r}")
    if name not in SPACES:
        raise ValueError(f"space: expected one of {', '.join(SPACES)}, got {name!r}")
    default_width, default_cells = DEFAULT_SIZE[name]
    width = default_width if width is None else width
    cells = default_cells if cells is None else cells
    for option, value in (("width", width), ("cells", cells)):
        integer(option, value)
    from . import _nni  # noqa: F401  (silences NNI's import-time warning before the hub imports it)

    if name == "darts":
        from nni.nas.hub.pytorch import DARTS

        if num_classes != 10:
            raise ValueError(f"space darts: NNI's DARTS space has a 10-class head, the data has {num_classes} classes")
        if cells < 3:
            raise ValueError(f"cells: the DARTS space needs at least 3 cells (two are reduction cells), got {cells}")
        space = DARTS(width=int(width), num_cells=int(cells), dataset="cifar")
    else:
        from nni.nas.hub.pytorch import NasBench201

        space = NasBench201(stem_out_channels=int(width), num_modules_per_stack=int(cells), num_labels=num_classes)
    box_average_pools(space)  # the same average, about three times faster on the CPU
    return batch_statistics_only(space) if batch_norm == "no-affine" else space


def batch_statistics_only(model):
    """Make every batch norm of ``model`` normalise by batch statistics alone, without affine parameters.

    Shared weights then carry no per-operation scale and shift, and no running averages mixed over
    different sampled paths (in training and evaluation mode alike). Returns ``model``, changed in place.
    """
    from torch import nn

    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.affine = module.track_running_stats = False
            for name in ("weight", "bias"):
                module.register_parameter(name, None)
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                module.register_buffer(name, None)
    return model
