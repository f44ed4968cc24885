"""The model spaces the command line searches: NNI's hub DARTS and NAS-Bench-201 spaces."""

from __future__ import annotations

from . import _nni  # noqa: F401  (silences NNI's import-time warning before the hub imports it)

SPACES = ("darts", "nb201")

# (width, cells) per space when the command line is not told: the standard search settings.
DEFAULT_SIZE = {"darts": (16, 8), "nb201": (16, 5)}


def build_space(name: str, width: int | None = None, cells: int | None = None, num_classes: int = 10):
    """A fresh NNI model space.

    ``darts``: ``DARTS(width, num_cells=cells, dataset='cifar')`` (cells in the whole network).
    ``nb201``: ``NasBench201(stem_out_channels=width, num_modules_per_stack=cells)`` (cells per stage).
    """
    if name not in SPACES:
        raise ValueError(f"space: expected one of {', '.join(SPACES)}, got {name!r}")
    default_width, default_cells = DEFAULT_SIZE[name]
    width = default_width if width is None else width
    cells = default_cells if cells is None else cells
    for option, value in (("width", width), ("cells", cells)):
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ValueError(f"{option}: expected a positive integer, got {value!r}")
    if name == "darts":
        from nni.nas.hub.pytorch import DARTS

        if num_classes != 10:
            raise ValueError(f"space darts: NNI's DARTS space has a 10-class head, the data has {num_classes} classes")
        if cells < 3:
            raise ValueError(f"cells: the DARTS space needs at least 3 cells (two are reduction cells), got {cells}")
        return DARTS(width=int(width), num_cells=int(cells), dataset="cifar")
    from nni.nas.hub.pytorch import NasBench201

    return NasBench201(stem_out_channels=int(width), num_modules_per_stack=int(cells), num_labels=num_classes)
