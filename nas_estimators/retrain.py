"""Retrain a found DARTS-space cell from scratch (the DARTS evaluation protocol) and tabulate results.

The fixed network is NNI's own, built as ``DARTS(...).freeze(sample)`` does (:func:`_nni.build_fixed`), so any
NNI-exported DARTS sample dict works. Training is a plain PyTorch loop on :class:`DeviceBatches`
(data, crops, flips and cutout on the device), checkpointed every epoch.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn

from . import _nni
from .checkpoints import read_checkpoint, write_checkpoint
from .checks import integer
from .files import atomic_write_text
from .run_folder import RunFolder
from .estimators import host_values

REFERENCE_NAMES = ("darts-v2", "random:SEED")
CHECKPOINT_KEYS = ("model", "optimizer", "scheduler", "epoch", "rows", "rng")


class RetrainError(ValueError):
    """Bad retraining input; the message is one line naming the input and what is allowed."""


class RetrainDiverged(RuntimeError):
    """Every step of an epoch had a non-finite loss or gradient; the last good epoch's checkpoint stays."""


@dataclasses.dataclass
class RetrainConfig:
    """The DARTS evaluation protocol (the defaults) and where to read and write."""

    architecture: str
    output: str
    dataset: str = "cifar10"
    data_root: str | None = None
    download: bool = False
    cells: int = 20
    width: int = 36
    batch_size: int = 96
    learning_rate: float = 0.025
    momentum: float = 0.9
    weight_decay: float = 3e-4
    epochs: int = 600
    cutout: int = 16
    drop_path: float = 0.2
    auxiliary_weight: float = 0.4
    grad_clip: float = 5.0
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    resume: bool = False

    def check(self) -> None:
        """Raise :class:`RetrainError` for the first bad number."""
        positive = ("cells", "width", "batch_size", "epochs")
        for name in positive:
            try:
                integer(f"--{name.replace('_', '-')}", getattr(self, name))
            except ValueError as error:
                raise RetrainError(str(error)) from None
        if self.cells < 3:
            raise RetrainError(f"--cells: the DARTS network needs at least 3 cells (two are reduction cells), got {self.cells}")
        for name in ("learning_rate", "weight_decay", "auxiliary_weight", "grad_clip", "momentum"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise RetrainError(f"--{name.replace('_', '-')}: expected a finite number >= 0, got {value!r}")
        if not 0 <= self.drop_path < 1:
            raise RetrainError(f"--drop-path: expected a probability in [0, 1), got {self.drop_path!r}")
        if self.cutout < 0:
            raise RetrainError(f"--cutout: expected a side length >= 0 (0: none), got {self.cutout!r}")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise RetrainError(f"--precision: expected auto, bf16 or fp32, got {self.precision!r}")


# ------------------------------------------------------------------------------------ architectures


def resolve_architecture(spec: str) -> dict[str, Any]:
    """An NNI DARTS-space sample from ``darts-v2``, ``random:SEED``, a JSON file or a search directory."""
    from .architectures import ArchitectureError, DARTS_V2_GENOTYPE, from_genotype, load_search, parse_genotype

    if spec == "darts-v2":
        return from_genotype(parse_genotype(DARTS_V2_GENOTYPE))
    if spec.startswith("random:"):
        seed_text = spec.removeprefix("random:")
        if not seed_text.isdigit():
            raise RetrainError(f"--architecture: {spec!r}: expected random:SEED with SEED a non-negative integer")
        return random_architecture(int(seed_text))
    try:
        architecture = load_search(spec, space="darts").architectures[0]  # checked against the darts space
    except ArchitectureError as error:
        text = str(error)
        if "no such file" in text and "/" not in spec and not spec.endswith(".json"):
            text += f" (nor a reference cell: {', '.join(REFERENCE_NAMES)})"
        raise RetrainError(f"--architecture: {text}") from None
    return dict(architecture)


def random_architecture(seed: int) -> dict[str, Any]:
    """A uniformly random cell of NNI's DARTS space, the same for the same ``seed``."""
    from .distribution import ArchitectureDistribution
    from .spaces import build_space

    space = build_space("darts", width=4, cells=3)
    distribution = ArchitectureDistribution.from_model_space(space)
    return dict(distribution.sample(generator=torch.Generator().manual_seed(seed)))


def build_network(architecture: Mapping[str, Any], width: int, cells: int, auxiliary: bool,
                  drop_path: float) -> nn.Module:
    """NNI's fixed DARTS network of ``architecture`` at the given size (CIFAR stem, 10 classes)."""
    from nni.nas.hub.pytorch import DARTS

    from .architectures import DARTS_SHAPE_LABELS

    cells_only = {label: value for label, value in architecture.items() if label not in DARTS_SHAPE_LABELS}
    # Built inside NNI's model_context (what DARTS.freeze does), which the auxiliary head requires.
    return _nni.build_fixed(lambda: DARTS(width=width, num_cells=cells, dataset="cifar", auxiliary_loss=auxiliary,
                                          drop_path_prob=drop_path), cells_only)


def parameters_millions(model: nn.Module) -> float:
    """Parameters in millions, without the auxiliary head (as DARTS reports them)."""
    return sum(p.numel() for name, p in model.named_parameters() if not name.startswith("auxiliary_head.")) / 1e6


# ------------------------------------------------------------------------------------------- data


def cutout(images: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Zero one ``size`` x ``size`` square per image (centre uniform, clipped at borders), batched."""
    if size <= 0:
        return images
    b, _, h, w = images.shape
    centres = torch.rand(b, 2, generator=generator)
    cy = (centres[:, 0] * h).long().to(images.device)
    cx = (centres[:, 1] * w).long().to(images.device)
    rows = torch.arange(h, device=images.device)[None, :]
    cols = torch.arange(w, device=images.device)[None, :]
    inside_rows = (rows >= (cy - size // 2)[:, None]) & (rows < (cy - size // 2 + size)[:, None])
    inside_cols = (cols >= (cx - size // 2)[:, None]) & (cols < (cx - size // 2 + size)[:, None])
    mask = inside_rows[:, :, None] & inside_cols[:, None, :]  # b x h x w
    return images.masked_fill(mask[:, None], 0.0)


# ---------------------------------------------------------------------------------------- training


def _device(name: str) -> torch.device:
    from .search import resolve_device  # one definition of what --device accepts

    try:
        return resolve_device(name)
    except ValueError as error:
        raise RetrainError(f"--{error}") from None


def retrain(config: RetrainConfig, data: Any = None, progress: Callable[[str], None] = print,
            stop_after: int | None = None) -> dict[str, Any]:
    """Train the fixed network of ``config.architecture``; write its run folder (history, result, checkpoint).

    ``data`` (an :class:`ImageData`) replaces loading ``config.dataset``; ``stop_after`` ends the run after
    that many epochs of this call (tests use it to interrupt and resume). Returns the result it writes.
    """
    from .architectures import darts_shape
    from .data import DeviceBatches, load_dataset, test_batches

    config.check()
    output = Path(config.output)
    run = RunFolder(output)
    checkpoint_path = run.checkpoint
    architecture = resolve_architecture(config.architecture)
    if config.resume and not checkpoint_path.is_file():
        raise RetrainError(f"--resume: no checkpoint to resume in {output} (no {checkpoint_path.name})")
    if not config.resume and checkpoint_path.is_file():
        raise RetrainError(f"--output: {output} already holds a retraining; pass --resume to continue it "
                           f"or choose another directory")
    device = _device(config.device)
    data = data if data is not None else load_dataset(config.dataset, config.data_root, config.download)
    if data.num_classes != 10:
        raise RetrainError(f"--dataset: NNI's DARTS network has a 10-class head, {data.name} has {data.num_classes}")
    if config.auxiliary_weight > 0 and data.image_shape[1] < 32:
        raise RetrainError(f"--auxiliary-weight: the auxiliary head needs 32x32 images, {data.name} has "
                           f"{data.image_shape[1]}x{data.image_shape[2]}; pass --auxiliary-weight 0")
    shape = darts_shape(architecture)
    if shape:  # searched in NNI's DARTS space with a width or depth range
        progress(f"the searched {' and '.join(f'{label} {value}' for label, value in shape.items())} are not used: "
                 f"the DARTS protocol retrains the cells at --width {config.width} --cells {config.cells}")
    torch.manual_seed(config.seed)
    model = build_network(architecture, config.width, config.cells, config.auxiliary_weight > 0,
                          config.drop_path).to(device)
    train = DeviceBatches(data.train_images, data.train_labels, min(config.batch_size, len(data.train_labels)),
                          mean=data.mean, std=data.std, device=device, augment=True,
                          crop_padding=data.crop_padding, flip=data.hflip, seed=config.seed)
    test = test_batches(data, max(config.batch_size, 256), device)
    # Fused: it skips a step with a non-finite loss or gradient on the device (found_inf), with no
    # host synchronisation a step.
    optimizer = torch.optim.SGD(model.parameters(), lr=config.learning_rate, momentum=config.momentum,
                                weight_decay=config.weight_decay, fused=True)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.epochs, eta_min=0.0)
    bf16 = device.type == "cuda" and config.precision in ("auto", "bf16")
    rows: list[dict[str, Any]] = []
    start = 0
    if config.resume:
        _check_same_protocol(config, run.config)
        state = read_checkpoint(checkpoint_path, required=CHECKPOINT_KEYS)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        for group in optimizer.param_groups:
            group.update(fused=True, foreach=None)  # a checkpoint of an earlier version holds unfused SGD
        scheduler.load_state_dict(state["scheduler"])
        rows, start = list(state["rows"]), int(state["epoch"])
        torch.set_rng_state(state["rng"])
    output.mkdir(parents=True, exist_ok=True)
    run.write_architecture(architecture)
    run.write_config(dataclasses.asdict(config))
    for epoch in range(start, config.epochs):
        if stop_after is not None and epoch - start >= stop_after:
            break
        began = time.perf_counter()
        model.set_drop_path_prob(config.drop_path * epoch / config.epochs)  # linear ramp, as DARTS does
        train.epoch = epoch  # the epoch's order and augmentation follow (seed, epoch): resumable
        cut_generator = torch.Generator().manual_seed(config.seed * 100003 + epoch)
        loss, correct, seen, skipped = _train_epoch(model, train, optimizer, config, cut_generator, bf16)
        if skipped == len(train):
            raise RetrainDiverged(f"epoch {epoch + 1}: every one of its {skipped} steps had a non-finite loss or "
                                  f"gradient and was skipped; {checkpoint_path} still holds epoch {epoch}")
        scheduler.step()
        test_accuracy = evaluate(model, test, bf16)
        rows.append(dict(epoch=epoch + 1, train_loss=loss / max(seen, 1), train_acc=correct / max(seen, 1),
                         test_acc=test_accuracy, skipped_steps=skipped, seconds=time.perf_counter() - began))
        write_checkpoint(dict(model=model.state_dict(), optimizer=optimizer.state_dict(),
                              scheduler=scheduler.state_dict(), epoch=epoch + 1, rows=rows,
                              rng=torch.get_rng_state()), checkpoint_path)
        run.write_retrain_history(rows)
        last = rows[-1]
        progress(f"epoch {epoch + 1}/{config.epochs}: train loss {last['train_loss']:.4f} "
                 f"acc {last['train_acc']:.4f}  test acc {test_accuracy:.4f}  {last['seconds']:.1f} s")
    result = dict(architecture=config.architecture, test_error=100.0 * (1.0 - rows[-1]["test_acc"]) if rows else None,
                  parameters_m=parameters_millions(model), epochs=len(rows), gpu_seconds=sum(r["seconds"] for r in rows),
                  device_name=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                  complete=len(rows) == config.epochs)
    run.write_retrain_result(result)
    return result


#: Options that may differ between a retraining and its resumption (where and how it runs, not what).
RESUMABLE_CHANGES = ("output", "resume", "device", "precision", "data_root", "download")


def _check_same_protocol(config: RetrainConfig, saved_path: Path) -> None:
    try:
        saved = json.loads(saved_path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise RetrainError(f"--resume: cannot read {saved_path} ({str(error).splitlines()[0]})") from None
    for name, value in dataclasses.asdict(config).items():
        if name not in RESUMABLE_CHANGES and name in saved and saved[name] != value:
            raise RetrainError(f"--resume: --{name.replace('_', '-')} is {value!r} but the retraining in "
                               f"{saved_path.parent} used {saved[name]!r}; resume with the same protocol")


def _train_epoch(model: nn.Module, batches: Any, optimizer: torch.optim.Optimizer, config: RetrainConfig,
                 cut_generator: torch.Generator, bf16: bool) -> tuple[float, int, int, int]:
    """One epoch; returns the finite steps' summed loss, correct count and images, and the skipped steps.

    The sums stay on the device and are read once, at the end of the epoch.
    """
    model.train()
    parameters = [p for p in model.parameters() if p.requires_grad]
    device = parameters[0].device
    total_loss = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    seen = torch.zeros((), device=device, dtype=torch.int64)
    skipped = torch.zeros((), device=device, dtype=torch.int64)
    for images, labels in batches:
        images = cutout(images, config.cutout, cut_generator)
        with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=bf16):
            outputs = model(images)
            logits, auxiliary = outputs if isinstance(outputs, tuple) else (outputs, None)
            loss = nn.functional.cross_entropy(logits.float(), labels)
            if auxiliary is not None:
                loss = loss + config.auxiliary_weight * nn.functional.cross_entropy(auxiliary.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = nn.utils.clip_grad_norm_(parameters, config.grad_clip if config.grad_clip > 0 else float("inf"))
        bad = ~(torch.isfinite(loss.detach()) & torch.isfinite(norm))
        optimizer.found_inf = bad.float()  # fused SGD leaves weights and momentum untouched where set
        optimizer.step()
        good = ~bad
        total_loss += torch.where(good, loss.detach().double() * len(labels), 0.0)
        correct += torch.where(good, (logits.argmax(1) == labels).sum(), 0)
        seen += torch.where(good, len(labels), 0)
        skipped += bad.long()
    del optimizer.found_inf
    loss_sum, correct_count, seen_count, skipped_count = host_values([total_loss, correct, seen, skipped])
    return loss_sum, int(correct_count), int(seen_count), int(skipped_count)


@torch.no_grad()
def evaluate(model: nn.Module, batches: Any, bf16: bool = False) -> float:
    """Accuracy of ``model`` over ``batches`` (eval mode: no auxiliary head, no drop-path)."""
    model.eval()
    correct, seen = None, 0
    for images, labels in batches:
        with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(images)
        hits = (logits.argmax(1) == labels).sum()  # summed on the device, read once
        correct = hits if correct is None else correct + hits
        seen += len(labels)
    return (0 if correct is None else int(correct)) / max(seen, 1)


# ------------------------------------------------------------------------------------------- table

#: Search cost and method of the reference cells (DARTS paper, Table 1: second order, 4 GPU-days on a 1080Ti).
REFERENCE_SEARCH = {"darts-v2": (96.0, "GTX 1080 Ti (published)", "DARTS (second order), published"),
                    "random": (0.0, "", "random sampling")}
TABLE_COLUMNS = ("method", "test_error", "parameters_m", "search_gpu_hours", "search_device", "search_method",
                 "retrain_epochs", "directory")


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RetrainError(f"{path}: cannot be read as JSON ({str(error).splitlines()[0]})") from None


def _search_row(directory: Path) -> dict[str, Any]:
    """Method, search cost (GPU-hours from the history's seconds) and device of a search directory."""
    import pandas as pd

    run = RunFolder(directory)
    config = _json(run.config)
    try:
        seconds = float(run.read_history()["seconds"].sum())
    except (OSError, KeyError, ValueError, pd.errors.ParserError) as error:
        raise RetrainError(f"{run.history}: no seconds column to sum ({str(error).splitlines()[0]})") from None
    estimator = str(config.get("estimator", "?")).upper()
    return dict(method=estimator, search_gpu_hours=seconds / 3600.0, search_device=config.get("device_name", "?"),
                search_method=f"{estimator} estimator ({config.get('space', '?')} space)")


def table_rows(directories: list[str]) -> "pd.DataFrame":  # noqa: F821
    """One row per retraining (its result) and per search directory no listed retraining came from."""
    import pandas as pd

    rows, searches_used = [], set()
    for name in directories:
        directory = Path(name)
        run = RunFolder(directory)
        if run.retrain_result.is_file():
            result = _json(run.retrain_result)
            spec = str(result.get("architecture", ""))
            row = dict(method=spec, test_error=result.get("test_error"), parameters_m=result.get("parameters_m"),
                       retrain_epochs=result.get("epochs"), directory=str(directory))
            source = Path(spec)
            if source.is_dir() and RunFolder(source).history.is_file():
                row.update(_search_row(source))
                searches_used.add(source.resolve())
            else:
                kind = "random" if spec.startswith("random:") else spec
                hours, device, method = REFERENCE_SEARCH.get(kind, (None, "", "unknown (architecture file)"))
                row.update(search_gpu_hours=hours, search_device=device, search_method=method)
            rows.append(row)
        elif run.is_search():
            rows.append(dict(_search_row(directory), directory=str(directory)))
        else:
            raise RetrainError(f"{directory}: neither a retraining ({run.retrain_result.name}) nor a search "
                               f"({run.config.name} and {run.history.name}) directory")
    table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    # A search listed as well as its retraining appears once, as the retraining.
    keep = [not (pd.isna(r.test_error) and Path(r.directory).resolve() in searches_used) for r in table.itertuples()]
    return table[keep].reset_index(drop=True)


def write_table(table: "pd.DataFrame", output: Path) -> list[Path]:  # noqa: F821
    """table.csv, table.md and table.html (plotly: test error against search cost) in ``output``."""
    import plotly.express as px

    output.mkdir(parents=True, exist_ok=True)
    atomic_write_text(output / "table.csv", table.to_csv(index=False))
    header = ["Method", "Test error (%)", "Params (M)", "Search cost (GPU-hours)", "Search method"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in table.itertuples():
        cells = [r.method, _fmt(r.test_error, 2), _fmt(r.parameters_m, 3), _fmt(r.search_gpu_hours, 3),
                 r.search_method + (f" on {r.search_device}" if isinstance(r.search_device, str) and r.search_device else "")]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    atomic_write_text(output / "table.md", "\n".join(lines) + "\n")
    figure = px.scatter(table.dropna(subset=["test_error"]), x="search_gpu_hours", y="test_error", text="method",
                        hover_data=["parameters_m", "search_method", "directory"],
                        labels=dict(search_gpu_hours="search cost (GPU-hours)", test_error="test error (%)"),
                        title="Test error against search cost")
    figure.update_traces(textposition="top center")
    atomic_write_text(output / "table.html", figure.to_html(include_plotlyjs=True))  # opens offline
    return [output / name for name in ("table.csv", "table.md", "table.html")]


def _fmt(value: Any, digits: int) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{float(value):.{digits}f}"
