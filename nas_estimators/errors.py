"""Errors the commands show as one line, without a traceback."""

from __future__ import annotations


class InputError(ValueError):
    """Bad input to a run of ``compare`` or ``bench`` (an option, the table, the data, the output directory)."""
