"""Image data sets held as uint8 tensors, and batch iterators that augment on the device.

Small images (CIFAR-10, scikit-learn's digits) fit in GPU memory as uint8, so the whole
input pipeline (shuffle, random crop, flip, normalisation) runs batched on the device,
avoiding DataLoader workers and per-sample Python.
"""

from __future__ import annotations

import math
import os
import pickle
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

DATASETS = ("digits", "cifar10")

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR10_DIR = "cifar-10-batches-py"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")

_LAYOUTS = (
    f"accepted layouts: <data_root>/{CIFAR10_DIR}/ with torchvision's CIFAR-10 python batches "
    f"(or data_root being that directory), or an ImageFolder tree "
    f"<data_root>/train/<class>/*.{{jpg,jpeg,png}} plus <data_root>/test/<class>/*"
)


class DataError(ValueError):
    """Bad data input; the message is one line naming the offending path or argument."""


def _data_error(what: str, layouts: bool = True) -> DataError:
    message = f"{what}; {_LAYOUTS}" if layouts else what
    return DataError(" ".join(message.splitlines()))  # one line even if an OS error is not


@dataclass
class ImageData:
    """A labelled image classification data set, images as uint8 N x C x H x W tensors.

    ``mean``/``std`` are per channel in units of ``uint8 / 255``. ``hflip`` says whether
    horizontal flips are a valid augmentation (not for digits, whose mirror images are
    not digits).
    """

    name: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_padding: int
    hflip: bool = True

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train_images.shape[1:]
        return int(c), int(h), int(w)


def load_dataset(
    name: str, data_root: str | os.PathLike | None = None, download: bool = False
) -> ImageData:
    """Load ``"digits"`` (bundled with scikit-learn) or ``"cifar10"`` (from ``data_root``)."""
    if name == "digits":
        return _load_digits()
    if name == "cifar10":
        if data_root is None:
            raise _data_error("cifar10: data_root is required (got None)")
        return _load_cifar10(Path(data_root), download)
    raise DataError(f"name: unknown data set {name!r}; expected one of {', '.join(DATASETS)}")


def _load_digits() -> ImageData:
    from sklearn.datasets import load_digits

    digits = load_digits()
    gray = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)  # 0..16 -> 0..255
    images = torch.from_numpy(gray).unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
    labels = torch.from_numpy(digits.target.astype(np.int64))
    order = torch.from_numpy(np.random.default_rng(0).permutation(len(labels)))
    n_train = int(0.8 * len(labels))
    train, test = order[:n_train], order[n_train:]
    scaled = images[train].double() / 255.0
    mean = tuple(scaled.mean(dim=(0, 2, 3)).tolist())
    std = tuple(scaled.std(dim=(0, 2, 3)).tolist())
    return ImageData(
        "digits", images[train], labels[train], images[test], labels[test],
        [str(d) for d in range(10)], mean, std, crop_padding=0, hflip=False,
    )


def _load_cifar10(root: Path, download: bool) -> ImageData:
    python_dir = _find_python_batches(root)
    if python_dir is None and (root / "train").is_dir() and (root / "test").is_dir():
        return _load_image_folder(root)
    if python_dir is None and download:
        try:
            import torchvision

            torchvision.datasets.CIFAR10(str(root), train=True, download=True)
        except Exception as exc:  # no network, disk full, bad checksum: all end the same way
            raise _data_error(
                f"cifar10: download into {root} failed ({type(exc).__name__}: {exc})"
            ) from exc
        python_dir = _find_python_batches(root)
    if python_dir is None:
        what = "does not exist" if not root.exists() else "holds neither layout"
        raise _data_error(f"cifar10: data_root {root} {what}")
    return _load_python_batches(python_dir)


def _find_python_batches(root: Path) -> Path | None:
    for candidate in (root / CIFAR10_DIR, root):
        if candidate.is_dir() and (
            candidate.name == CIFAR10_DIR or (candidate / "batches.meta").is_file()
        ):
            return candidate
    return None


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            raw = pickle.load(f, encoding="bytes")
        # The real files have bytes keys; files re-pickled under Python 3 may have str keys.
        return {k.decode() if isinstance(k, bytes) else k: v for k, v in raw.items()}
    except Exception as exc:
        raise _data_error(f"cifar10: cannot read {path} ({type(exc).__name__}: {exc})") from exc


def _load_python_batches(directory: Path) -> ImageData:
    def read(names: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = [], []
        for name in names:
            path = directory / name
            batch = _unpickle(path)
            try:
                data = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
                target = np.asarray(batch.get("labels", batch.get("fine_labels")), np.int64)
                if target.shape != (len(data),):
                    raise ValueError(f"{target.shape[0]} labels for {len(data)} images")
            except Exception as exc:
                raise _data_error(
                    f"cifar10: malformed batch {path} ({type(exc).__name__}: {exc})"
                ) from exc
            images.append(torch.from_numpy(data))
            labels.append(torch.from_numpy(target))
        return torch.cat(images), torch.cat(labels)

    meta_path = directory / "batches.meta"
    meta = _unpickle(meta_path)
    if "label_names" not in meta:
        raise _data_error(f"cifar10: {meta_path} has no label_names")
    classes = [c.decode() if isinstance(c, bytes) else str(c) for c in meta["label_names"]]
    train_images, train_labels = read([f"data_batch_{i}" for i in range(1, 6)])
    test_images, test_labels = read(["test_batch"])
    return ImageData(
        "cifar10", train_images, train_labels, test_images, test_labels,
        classes, CIFAR10_MEAN, CIFAR10_STD, crop_padding=4,
    )


def _list_image_folder(split_dir: Path) -> tuple[list[str], list[Path], list[int]]:
    classes = sorted(e.name for e in os.scandir(split_dir) if e.is_dir())
    if not classes:
        raise _data_error(f"cifar10: {split_dir} has no class directories")
    files: list[Path] = []
    labels: list[int] = []
    for index, cls in enumerate(classes):
        found = sorted(
            p for p in (split_dir / cls).iterdir()
            if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
        )
        if not found:
            raise _data_error(f"cifar10: class directory {split_dir / cls} has no images")
        files += found
        labels += [index] * len(found)
    return classes, files, labels


def _decode(path: Path) -> torch.Tensor:
    from torchvision.io import ImageReadMode, decode_image

    try:
        raw = torch.frombuffer(bytearray(path.read_bytes()), dtype=torch.uint8)
        image = decode_image(raw, mode=ImageReadMode.RGB)  # grayscale/alpha -> 3 channels
    except Exception as exc:
        raise _data_error(
            f"cifar10: cannot decode image {path} ({type(exc).__name__}: {exc})"
        ) from exc
    if image.dtype != torch.uint8:
        raise _data_error(f"cifar10: image {path} is {image.dtype}, expected 8-bit")
    return image


def _decode_all(files: list[Path]) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*image decoding.*deprecated")
        # decode_image releases the GIL, so threads give real parallelism on 50k JPEGs.
        with ThreadPoolExecutor(max_workers=min(32, (os.cpu_count() or 1) + 4)) as pool:
            images = list(pool.map(_decode, files))
    shape = images[0].shape
    for path, image in zip(files, images):
        if image.shape != shape:
            raise _data_error(
                f"cifar10: image {path} has shape {tuple(image.shape)}, "
                f"but {files[0]} has {tuple(shape)}; all images must have the same size"
            )
    return torch.stack(images)


def _load_image_folder(root: Path) -> ImageData:
    train_classes, train_files, train_labels = _list_image_folder(root / "train")
    test_classes, test_files, test_labels = _list_image_folder(root / "test")
    if train_classes != test_classes:
        raise _data_error(
            f"cifar10: class directories differ between {root / 'train'} {train_classes} "
            f"and {root / 'test'} {test_classes}"
        )
    train_images = _decode_all(train_files)
    test_images = _decode_all(test_files)
    if train_images.shape[1:] != test_images.shape[1:]:
        raise _data_error(
            f"cifar10: train images in {root / 'train'} are {tuple(train_images.shape[1:])} "
            f"but test images in {root / 'test'} are {tuple(test_images.shape[1:])}"
        )
    return ImageData(
        "cifar10", train_images, torch.tensor(train_labels, dtype=torch.int64),
        test_images, torch.tensor(test_labels, dtype=torch.int64),
        train_classes, CIFAR10_MEAN, CIFAR10_STD, crop_padding=4,
    )


def split_halves(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random halves of ``range(n)``: (indices for the weights, indices for the architecture)."""
    if n < 2:
        raise ValueError(f"n: need at least 2 items to split in halves, got {n}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[: n // 2], order[n // 2 :]


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    # SeedSequence mixes (seed, epoch) so nearby pairs give unrelated streams.
    state = np.random.SeedSequence([seed, epoch]).generate_state(2, np.uint32)
    return torch.Generator().manual_seed((int(state[0]) << 31) ^ int(state[1]))


class DeviceBatches:
    """Epochs of ``(float images, labels)`` batches, augmented and normalised on ``device``.

    Each pass runs epoch ``self.epoch`` and increments it at its first batch; the epoch's order and
    augmentation depend only on ``(seed, epoch)``, so setting ``epoch`` (or
    ``restore_state``) before iterating reproduces that epoch exactly.

    Example:
        >>> x = torch.zeros(10, 3, 4, 4, dtype=torch.uint8)
        >>> batches = DeviceBatches(x, torch.arange(10), 4, mean=(0.5,) * 3, std=(0.5,) * 3)
        >>> len(batches), [tuple(b[0].shape) for b in batches]
        (2, [(4, 3, 4, 4), (4, 3, 4, 4)])
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        *,
        mean: Sequence[float],
        std: Sequence[float],
        device: str | torch.device = "cpu",
        augment: bool = False,
        crop_padding: int = 0,
        flip: bool = True,
        shuffle: bool = True,
        drop_last: bool = True,
        seed: int = 0,
        channels_last: bool = False,
    ) -> None:
        if not isinstance(images, torch.Tensor):
            raise ValueError(f"images: expected a tensor, got {type(images).__name__}")
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(
                "images: expected a uint8 N x C x H x W tensor, "
                f"got {images.dtype} {tuple(images.shape)}"
            )
        n, channels = images.shape[:2]
        if not isinstance(labels, torch.Tensor) or tuple(labels.shape) != (n,):
            got = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
            raise ValueError(f"labels: expected shape ({n},) to match images, got {got}")
        if batch_size < 1:
            raise ValueError(f"batch_size: must be at least 1, got {batch_size}")
        if drop_last and batch_size > n:
            raise ValueError(
                f"batch_size: {batch_size} is larger than the {n} images (drop_last=True)"
            )
        if len(mean) != channels or len(std) != channels or min(std) <= 0:
            raise ValueError(
                f"mean/std: need {channels} values each, std positive; got {mean}, {std}"
            )
        if crop_padding < 0:
            raise ValueError(f"crop_padding: must be >= 0, got {crop_padding}")
        if seed < 0:
            raise ValueError(f"seed: must be >= 0, got {seed}")
        self.device = torch.device(device)
        self.images = images.to(self.device)
        self.labels = labels.to(self.device, torch.int64)
        self.batch_size = batch_size
        self.augment, self.crop_padding, self.flip = augment, crop_padding, flip
        self.shuffle, self.drop_last = shuffle, drop_last
        self.seed, self.epoch = seed, 0
        self._start = 0  # first batch of the next epoch (a search resumed mid-epoch skips the rest)
        self.channels_last = channels_last
        self.rank, self.shards = 0, 1  # see shard()
        # (x / 255 - mean) / std folded into one multiply-add.
        std_t = torch.tensor(std, dtype=torch.float32)
        self._scale = (1.0 / (255.0 * std_t)).view(1, -1, 1, 1).to(self.device)
        shift = -torch.tensor(mean, dtype=torch.float32) / std_t
        self._shift = shift.view(1, -1, 1, 1).to(self.device)

    def shard(self, rank: int, shards: int) -> None:
        """Yield only this process's share of each epoch: positions ``rank, rank + shards, ...`` of its order.

        Every process of a data-parallel search keeps the same seed, so the shards of one epoch are
        disjoint and together cover it, as Lightning's ``DistributedSampler`` does for a ``DataLoader``.
        """
        if not (0 <= rank < shards):
            raise ValueError(f"rank: expected 0 <= rank < shards, got rank {rank} of {shards}")
        if len(self.labels) // shards < (self.batch_size if self.drop_last else 1):
            raise ValueError(f"batch_size: {self.batch_size} is larger than a {shards}-way shard "
                             f"({len(self.labels) // shards} images)")
        self.rank, self.shards = int(rank), int(shards)

    def __len__(self) -> int:
        n = len(self.labels) // self.shards
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        # A generator: the epoch is read at the first next(), not at iter(). Lightning calls iter()
        # once while setting up and again only later, after on_train_epoch_start may have set it.
        epoch, self.epoch = self.epoch, self.epoch + 1
        start, self._start = self._start, 0
        yield from self._batches(epoch, start)

    def _batches(self, epoch: int, start_batch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.labels)
        gen = _epoch_generator(self.seed, epoch)
        order = torch.randperm(n, generator=gen) if self.shuffle else torch.arange(n)
        order = order.to(self.device)
        if self.augment:
            shifts = torch.randint(0, 2 * self.crop_padding + 1, (n, 2), generator=gen)
            flips = torch.rand(n, generator=gen) < 0.5
            if not self.flip:
                flips.zero_()  # drawn anyway, so the crops do not depend on `flip`
            shifts, flips = shifts.to(self.device), flips.to(self.device)
        # This process's positions in the epoch's order (all of them in a single process).
        positions = torch.arange(self.rank, (n // self.shards) * self.shards, self.shards, device=self.device)
        for start in range(start_batch * self.batch_size, len(self) * self.batch_size, self.batch_size):
            pos = positions[start : start + self.batch_size]
            idx = order[pos]
            x = self.images[idx]
            if self.augment:  # augmentation follows the epoch position
                x = self._crop_flip(x, shifts[pos], flips[pos])
            x = x.float().mul_(self._scale).add_(self._shift)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.labels[idx]

    def _crop_flip(
        self, x: torch.Tensor, shifts: torch.Tensor, flips: torch.Tensor
    ) -> torch.Tensor:
        """Window ``(dy, dx)`` of the zero-padded images, mirrored where ``flips``."""
        b, c, h, w = x.shape
        p = self.crop_padding
        if p:
            x = torch.nn.functional.pad(x, (p, p, p, p))
        rows = shifts[:, :1] + torch.arange(h, device=x.device)  # b x h
        cols = shifts[:, 1:] + torch.arange(w, device=x.device)  # b x w
        cols = torch.where(flips[:, None], cols.flip(1), cols)
        return x[
            torch.arange(b, device=x.device)[:, None, None, None],
            torch.arange(c, device=x.device)[None, :, None, None],
            rows[:, None, :, None],
            cols[:, None, None, :],
        ]

    def fixed(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``count`` images (in the order of the data given) and labels, normalised, not augmented.

        The same images every call: for measurements that must compare across epochs.
        """
        x = self.images[:count].float().mul_(self._scale).add_(self._shift)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, self.labels[:count]

    # Named apart from state_dict/load_state_dict on purpose: Lightning would otherwise save and restore
    # the iterator itself, counting the batch it prefetched as consumed.
    def checkpoint_state(self, batches_done: int | None = None) -> dict:
        """Where the data order stands: the next epoch, or ``batches_done`` into the running one."""
        if batches_done is None or batches_done >= len(self):
            return {"epoch": self.epoch, "batch": 0, "seed": self.seed}
        return {"epoch": self.epoch - 1, "batch": int(batches_done), "seed": self.seed}

    def restore_state(self, state: dict) -> None:
        """The next ``iter()`` continues where :meth:`checkpoint_state` was taken."""
        self.epoch, self.seed = int(state["epoch"]), int(state["seed"])
        self._start = int(state.get("batch", 0))


def search_batches(
    data: ImageData,
    batch_size: int,
    *,
    device: str | torch.device = "cpu",
    seed: int = 0,
    channels_last: bool = False,
) -> tuple[DeviceBatches, DeviceBatches]:
    """DARTS-style search data: the training set cut in halves, (weights, architecture).

    Both halves are shuffled and augmented; they use seeds ``2 * seed`` and ``2 * seed + 1``
    so no two (seed, half) pairs share a random stream.
    """
    weights_idx, arch_idx = split_halves(len(data.train_labels), seed)
    half = min(len(weights_idx), len(arch_idx))
    if batch_size > half:
        raise ValueError(f"batch_size: {batch_size} is larger than a search half ({half} images)")
    common = dict(
        mean=data.mean, std=data.std, device=device, augment=True,
        crop_padding=data.crop_padding, flip=data.hflip, shuffle=True, drop_last=True,
        channels_last=channels_last,
    )
    return (
        DeviceBatches(data.train_images[weights_idx], data.train_labels[weights_idx],
                      batch_size, seed=2 * seed, **common),
        DeviceBatches(data.train_images[arch_idx], data.train_labels[arch_idx],
                      batch_size, seed=2 * seed + 1, **common),
    )


def test_batches(
    data: ImageData, batch_size: int, device: str | torch.device = "cpu"
) -> DeviceBatches:
    """The test set in order, without augmentation, keeping the last partial batch."""
    return DeviceBatches(
        data.test_images, data.test_labels, batch_size, mean=data.mean, std=data.std,
        device=device, augment=False, shuffle=False, drop_last=False,
    )


test_batches.__test__ = False  # type: ignore[attr-defined]  # not a pytest test when imported
