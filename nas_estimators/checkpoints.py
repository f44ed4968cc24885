"""Search checkpoints on disk: atomic, self-verifying writes, and reading one back with one-line errors.

A checkpoint file is a short header (magic line and the SHA-256 of the rest) followed by the bytes
``torch.save`` writes: a flipped byte or a truncation is detected on load, which the zip container
alone does not do. Files are written to a temporary name and renamed, so a kill at any moment
leaves the previous checkpoint whole.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any, Mapping

import torch
from lightning_fabric.plugins import TorchCheckpointIO

from .files import atomic_write_bytes


SEARCH_KEY = "nas_estimators_search"  # the recorder's part: history, data order, random states, config
# What must match between a checkpoint and the search resuming it.
IDENTITY = ("estimator", "space", "dataset", "width", "cells", "batch_size", "seed", "batch_norm", "processes")
MAGIC = b"nas-estimators checkpoint v1\n"


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed; the message names the file and what is wrong."""


def write_checkpoint(checkpoint: Mapping[str, Any], path: Path) -> None:
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    payload = buffer.getvalue()
    atomic_write_bytes(Path(path), MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)


def read_checkpoint(path: Path, required: tuple[str, ...] = ("state_dict", SEARCH_KEY)) -> dict[str, Any]:
    """Load a checkpoint on the CPU, or raise :class:`CheckpointError` saying why not.

    ``required``: the keys it must hold (by default those of a search checkpoint).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        raise CheckpointError(f"checkpoint {path}: not a nas-estimators search checkpoint (no header)")
    digest, _, payload = data[len(MAGIC):].partition(b"\n")
    if hashlib.sha256(payload).hexdigest().encode() != digest:
        raise CheckpointError(f"checkpoint {path}: corrupted or truncated (its checksum does not match)")
    try:
        checkpoint = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=False)
    except Exception as error:  # torch raises many types for damaged data; all mean the same here
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"checkpoint {path}: unreadable: {reason}") from None
    missing = [key for key in required
               if not isinstance(checkpoint, dict) or key not in checkpoint]
    if missing:
        raise CheckpointError(f"checkpoint {path}: not a nas-estimators search checkpoint (missing {', '.join(missing)})")
    return checkpoint


def check_belongs(path: Path, checkpoint: Mapping[str, Any], config: Mapping[str, Any]) -> None:
    """The checkpoint was written by a search with the same estimator, space, data and sizes."""
    saved = checkpoint[SEARCH_KEY].get("config", {})
    for key in IDENTITY:
        if key in saved and saved[key] != config.get(key):
            if key == "processes":  # each process's random generators are in it: another count cannot continue them
                raise CheckpointError(
                    f"checkpoint {path}: written by a search on {saved[key]} processes; resume it with "
                    f"--devices x --num-nodes = {saved[key]} (this one has {config.get(key)})")
            raise CheckpointError(
                f"checkpoint {path}: written by a search with {key}={saved[key]!r}, this one has {key}={config.get(key)!r}")


class VerifiedCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint I/O in this module's format (give it to the Trainer's ``plugins``)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        write_checkpoint(checkpoint, Path(path))

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: Any = None) -> dict[str, Any]:
        return read_checkpoint(Path(path))
