"""Tests for nas_estimators.data: loaders on small fake trees, and on-device batching."""

from __future__ import annotations

import pickle
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nas_estimators import data as D
from nas_estimators.data import (
    DataError,
    DeviceBatches,
    ImageData,
    load_dataset,
    search_batches,
    split_halves,
)


def _one_line_error(excinfo: pytest.ExceptionInfo, *needles: object) -> str:
    message = str(excinfo.value)
    assert "\n" not in message, message
    for needle in needles:
        assert str(needle) in message, (needle, message)
    return message


# --------------------------------------------------------------------------- digits


@pytest.fixture(scope="module")
def digits() -> ImageData:
    return load_dataset("digits")


def test_digits_shapes_ranges_and_split(digits: ImageData) -> None:
    from sklearn.datasets import load_digits

    assert D.DATASETS == ("digits", "cifar10")
    assert digits.name == "digits" and digits.num_classes == 10 and digits.crop_padding == 0
    assert digits.image_shape == (3, 8, 8)
    assert digits.train_images.shape == (1437, 3, 8, 8) and digits.test_images.shape == (360, 3, 8, 8)
    for images, labels in [(digits.train_images, digits.train_labels),
                           (digits.test_images, digits.test_labels)]:
        assert images.dtype == torch.uint8 and labels.dtype == torch.int64
        assert labels.shape == (len(images),) and set(labels.tolist()) == set(range(10))
        assert torch.equal(images[:, 0], images[:, 1]) and torch.equal(images[:, 0], images[:, 2])
    assert int(digits.train_images.max()) == 255 and int(digits.train_images.min()) == 0
    # The split is the fixed rng(0) permutation, 80/20.
    raw = load_digits()
    order = np.random.default_rng(0).permutation(len(raw.target))
    expected = np.rint(raw.images[order] * 255 / 16).astype(np.uint8)
    got = torch.cat([digits.train_images, digits.test_images])[:, 0].numpy()
    assert np.array_equal(got, expected)
    assert np.array_equal(torch.cat([digits.train_labels, digits.test_labels]).numpy(),
                          raw.target[order])
    scaled = digits.train_images.double() / 255
    assert digits.mean == pytest.approx(scaled.mean(dim=(0, 2, 3)).tolist())
    assert digits.std == pytest.approx(scaled.std(dim=(0, 2, 3)).tolist())
    again = load_dataset("digits")
    assert torch.equal(again.train_images, digits.train_images)
    assert torch.equal(again.test_labels, digits.test_labels)


def test_unknown_name_and_missing_root() -> None:
    with pytest.raises(DataError) as excinfo:
        load_dataset("mnist")
    _one_line_error(excinfo, "mnist", "digits", "cifar10")
    with pytest.raises(DataError) as excinfo:
        load_dataset("cifar10", None)
    _one_line_error(excinfo, "data_root", "cifar-10-batches-py", "train/<class>")


# --------------------------------------------------------------------------- CIFAR-10 batches


def _write_cifar_batches(directory: Path, per_batch: int = 4, n_test: int = 3) -> dict:
    """Pickle fake batches the way the real CIFAR-10 python files are (bytes keys)."""
    rng = np.random.default_rng(1)
    directory.mkdir(parents=True, exist_ok=True)
    out = {"train_x": [], "train_y": [], "test_x": None, "test_y": None}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        n = n_test if name == "test_batch" else per_batch
        x = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        y = rng.integers(0, 10, n).tolist()
        with open(directory / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"labels": y, b"data": x,
                         b"filenames": [b"x.png"] * n}, f)
        if name == "test_batch":
            out["test_x"], out["test_y"] = x, y
        else:
            out["train_x"].append(x)
            out["train_y"] += y
    label_names = [f"class{i}".encode() for i in range(10)]
    with open(directory / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": label_names, b"num_vis": 3072}, f)
    out["train_x"] = np.concatenate(out["train_x"])
    return out


@pytest.mark.parametrize("point_at_dir", [False, True])
def test_cifar_python_batches(tmp_path: Path, point_at_dir: bool) -> None:
    fake = _write_cifar_batches(tmp_path / "cifar-10-batches-py")
    root = tmp_path / "cifar-10-batches-py" if point_at_dir else tmp_path
    ds = load_dataset("cifar10", root)
    assert ds.name == "cifar10" and ds.crop_padding == 4 and ds.image_shape == (3, 32, 32)
    assert ds.classes == [f"class{i}" for i in range(10)]
    assert ds.mean == (0.4914, 0.4822, 0.4465) and ds.std == (0.2470, 0.2435, 0.2616)
    assert ds.train_images.dtype == torch.uint8 and ds.train_labels.dtype == torch.int64
    assert torch.equal(ds.train_images, torch.from_numpy(fake["train_x"]).view(20, 3, 32, 32))
    assert ds.train_labels.tolist() == fake["train_y"]
    assert torch.equal(ds.test_images.flatten(1), torch.from_numpy(fake["test_x"]))
    assert ds.test_labels.tolist() == fake["test_y"]


def test_cifar_python_batches_malformed(tmp_path: Path) -> None:
    directory = tmp_path / "cifar-10-batches-py"
    _write_cifar_batches(directory)
    (directory / "data_batch_3").unlink()
    with pytest.raises(DataError) as excinfo:
        load_dataset("cifar10", tmp_path)
    _one_line_error(excinfo, directory / "data_batch_3", "accepted layouts")
    (directory / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(DataError) as excinfo:
        load_dataset("cifar10", tmp_path)
    _one_line_error(excinfo, directory / "data_batch_3")
    with open(directory / "data_batch_3", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(DataError) as excinfo:
        load_dataset("cifar10", tmp_path)
    _one_line_error(excinfo, directory / "data_batch_3", "malformed")
    with open(directory / "batches.meta", "wb") as f:
        pickle.dump({b"num_vis": 3072}, f)
    with pytest.raises(DataError) as excinfo:
        load_dataset("cifar10", tmp_path)
    _one_line_error(excinfo, directory / "batches.meta", "label_names")


def test_cifar_download_failure_and_success(tmp_path: Path, monkeypatch) -> None:
    import torchvision

    def offline(root, train=True, download=False, **kwargs):
        raise RuntimeError("Error downloading cifar-10-python.tar.gz:\n<urlopen error>")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    root = tmp_path / "nothing"
    with pytest.raises(DataError) as excinfo:
        load_dataset("cifar10", root, download=True)
    _one_line_error(excinfo, root, "download", "failed", "accepted layouts")
    with pytest.raises(DataError) as excinfo:
        load_dataset("cifar10", root)  # no download: just says it is missing
    _one_line_error(excinfo, root, "does not exist", "accepted layouts")

    def fake_download(root, train=True, download=False, **kwargs):
        assert download
        _write_cifar_batches(Path(root) / "cifar-10-batches-py")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", fake_download)
    assert len(load_dataset("cifar10", root, download=True).train_labels) == 20


# --------------------------------------------------------------------------- ImageFolder


def _pixels(seed: int, h: int = 5, w: int = 6) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _make_folder(root: Path) -> dict[str, list[tuple[str, np.ndarray]]]:
    """train/test trees with classes 'b_dog', 'a_cat', 'c_ship' (sorted order differs)."""
    made: dict[str, list[tuple[str, np.ndarray]]] = {}
    seed = 0
    for split, per_class in [("train", 3), ("test", 2)]:
        for cls in ["b_dog", "a_cat", "c_ship"]:
            directory = root / split / cls
            directory.mkdir(parents=True)
            for i in range(per_class):
                seed += 1
                pixels = _pixels(seed)
                Image.fromarray(pixels).save(directory / f"img{i}.png")
                made.setdefault(split, []).append((cls, pixels))
        (root / split / "notes.txt").write_text("ignored: not a directory")
    return made


def test_image_folder_png_exact(tmp_path: Path) -> None:
    made = _make_folder(tmp_path)
    (tmp_path / "train" / "a_cat" / "readme.txt").write_text("not an image")
    ds = load_dataset("cifar10", tmp_path)
    assert ds.classes == ["a_cat", "b_dog", "c_ship"]
    assert ds.image_shape == (3, 5, 6) and ds.crop_padding == 4
    for split, images, labels in [("train", ds.train_images, ds.train_labels),
                                  ("test", ds.test_images, ds.test_labels)]:
        assert images.dtype == torch.uint8 and labels.dtype == torch.int64
        expected = sorted(made[split], key=lambda item: item[0])  # stable: file order kept
        assert labels.tolist() == [ds.classes.index(cls) for cls, _ in expected]
        for image, (_, pixels) in zip(images, expected):
            assert np.array_equal(image.permute(1, 2, 0).numpy(), pixels)


def _smooth(h: int, w: int) -> np.ndarray:
    rows, cols = np.mgrid[0:h, 0:w]
    return np.stack([rows * 20, cols * 20, rows * 10 + cols * 10 + 50], -1).astype(np.uint8)


def test_image_folder_jpeg_and_grayscale(tmp_path: Path) -> None:
    for split in ["train", "test"]:
        for cls in ["x", "y"]:
            (tmp_path / split / cls).mkdir(parents=True)
        Image.fromarray(_smooth(8, 8)).save(tmp_path / split / "x" / "a.jpg", quality=95)
        Image.fromarray(_smooth(8, 8)[::-1].copy()).save(tmp_path / split / "x" / "b.JPEG")
        gray = np.arange(64, dtype=np.uint8).reshape(8, 8) * 3
        Image.fromarray(gray, mode="L").save(tmp_path / split / "y" / "g.png")
    ds = load_dataset("cifar10", tmp_path)
    assert ds.train_images.shape == (3, 3, 8, 8) and ds.train_labels.tolist() == [0, 0, 1]
    for image, name in zip(ds.train_images, ["a.jpg", "b.JPEG"]):
        with Image.open(tmp_path / "train" / "x" / name) as decoded:
            reference = np.asarray(decoded.convert("RGB"), dtype=int)
        # Both decoders are libjpeg(-turbo) but may use different IDCTs: allow off-by-a-few.
        assert np.abs(image.permute(1, 2, 0).int().numpy() - reference).max() <= 3
    for c in range(3):
        assert np.array_equal(ds.train_images[2, c].numpy(), gray)


def _bad_folder(tmp_path: Path, how: str) -> Path:
    root = tmp_path / how
    _make_folder(root)
    if how == "no_classes":
        for cls in ["a_cat", "b_dog", "c_ship"]:
            for f in (root / "test" / cls).iterdir():
                f.unlink()
            (root / "test" / cls).rmdir()
        return root / "test"
    if how == "empty_class":
        for f in (root / "train" / "b_dog").iterdir():
            f.unlink()
        return root / "train" / "b_dog"
    if how == "unreadable":
        bad = root / "train" / "a_cat" / "broken.jpg"
        bad.write_bytes(b"\xff\xd8 definitely not a jpeg")
        return bad
    if how == "classes_differ":
        (root / "test" / "d_extra").mkdir()
        Image.fromarray(_pixels(9)).save(root / "test" / "d_extra" / "x.png")
        return root / "test"
    if how == "shapes_differ":
        bad = root / "train" / "c_ship" / "big.png"
        Image.fromarray(_pixels(9, 7, 7)).save(bad)
        return bad
    raise AssertionError(how)


@pytest.mark.parametrize(
    "how", ["no_classes", "empty_class", "unreadable", "classes_differ", "shapes_differ"]
)
def test_image_folder_errors(tmp_path: Path, how: str) -> None:
    offending = _bad_folder(tmp_path, how)
    with pytest.raises(DataError) as excinfo:
        load_dataset("cifar10", tmp_path / how)
    _one_line_error(excinfo, offending, "cifar-10-batches-py", "train/<class>")


def test_root_with_neither_layout(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()  # no test/ next to it
    with pytest.raises(DataError) as excinfo:
        load_dataset("cifar10", tmp_path)
    _one_line_error(excinfo, tmp_path, "neither layout", "cifar-10-batches-py")
    assert isinstance(excinfo.value, ValueError)


# --------------------------------------------------------------------------- split_halves


def test_split_halves() -> None:
    a, b = split_halves(11, seed=5)
    assert len(a) == 5 and len(b) == 6
    assert sorted(torch.cat([a, b]).tolist()) == list(range(11))
    a2, b2 = split_halves(11, seed=5)
    assert torch.equal(a, a2) and torch.equal(b, b2)
    assert not torch.equal(split_halves(100, 0)[0], split_halves(100, 1)[0])
    with pytest.raises(ValueError, match="^n:"):
        split_halves(1)


# --------------------------------------------------------------------------- DeviceBatches

IDENTITY = dict(mean=(0.0, 0.0, 0.0), std=(1 / 255,) * 3)  # floats equal the uint8 values


def _indexed_images(n: int, h: int = 4, w: int = 4) -> torch.Tensor:
    """Channel 0: row + 1, channel 1: column + 1, channel 2: sample index + 1."""
    rows = torch.arange(1, h + 1).view(h, 1).expand(h, w)
    cols = torch.arange(1, w + 1).view(1, w).expand(h, w)
    images = torch.empty(n, 3, h, w, dtype=torch.uint8)
    images[:, 0], images[:, 1] = rows, cols
    images[:, 2] = torch.arange(1, n + 1).view(n, 1, 1)
    return images


def _raw(x: torch.Tensor) -> torch.Tensor:
    return x.round().to(torch.int64)


def test_len_and_epoch_covers_each_sample_once() -> None:
    images = _indexed_images(23)
    labels = torch.arange(23) % 5
    full = DeviceBatches(images, labels, 5, **IDENTITY, drop_last=False, seed=1)
    assert len(full) == 5
    batches = list(full)
    assert [len(y) for _, y in batches] == [5, 5, 5, 5, 3]
    ids = torch.cat([_raw(x[:, 2, 0, 0]) - 1 for x, _ in batches])
    assert sorted(ids.tolist()) == list(range(23))
    assert ids.tolist() != list(range(23))  # shuffled
    assert torch.equal(torch.cat([y for _, y in batches]), labels[ids])
    dropped = DeviceBatches(images, labels, 5, **IDENTITY, drop_last=True, seed=1)
    assert len(dropped) == 4 and len(list(dropped)) == 4
    ids = torch.cat([_raw(x[:, 2, 0, 0]) for x, _ in dropped])
    assert len(set(ids.tolist())) == 20
    ordered = DeviceBatches(images, labels, 5, **IDENTITY, shuffle=False, drop_last=False)
    ids = torch.cat([_raw(x[:, 2, 0, 0]) - 1 for x, _ in ordered])
    assert ids.tolist() == list(range(23))


def _epoch(batches: DeviceBatches, epochs_before: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    for _ in range(epochs_before):
        list(iter(batches))
    return [(x.clone(), y.clone()) for x, y in batches]


def _same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(torch.equal(x1, x2) and torch.equal(y1, y2)
                                    for (x1, y1), (x2, y2) in zip(a, b))


def test_epochs_reproducible_and_resumable() -> None:
    images = _indexed_images(40, 6, 6)
    labels = torch.arange(40)
    kwargs = dict(**IDENTITY, augment=True, crop_padding=2, seed=7)
    first = DeviceBatches(images, labels, 8, **kwargs)
    assert first.epoch == 0
    it = iter(first)
    assert first.epoch == 0  # read at the first batch, not at iter(): a caller may still set it
    epoch0 = [(x.clone(), y.clone()) for x, y in it]
    assert first.epoch == 1
    epoch1 = _epoch(first)
    assert first.checkpoint_state() == {"epoch": 2, "batch": 0, "seed": 7}
    assert not _same(epoch0, epoch1)

    resumed = DeviceBatches(images, labels, 8, **kwargs)
    resumed.epoch = 1
    assert _same(_epoch(resumed), epoch1)
    again = DeviceBatches(images, labels, 8, **{**kwargs, "seed": 0})
    again.restore_state({"epoch": 0, "seed": 7})
    assert _same(_epoch(again), epoch0)
    # Mid-epoch: two batches of epoch 1 done; the rest of that epoch follows, then epoch 2 as usual.
    midway = DeviceBatches(images, labels, 8, **kwargs)
    list(iter(midway))
    running = iter(midway)
    next(running), next(running), next(running)  # one more than done: a prefetched batch
    state = midway.checkpoint_state(batches_done=2)
    assert state == {"epoch": 1, "batch": 2, "seed": 7}
    restored = DeviceBatches(images, labels, 8, **kwargs)
    restored.restore_state(state)
    assert _same(_epoch(restored), epoch1[2:])
    assert _same(_epoch(restored), _epoch(DeviceBatches(images, labels, 8, **kwargs), epochs_before=2))
    other_seed = DeviceBatches(images, labels, 8, **{**kwargs, "seed": 8})
    assert not _same(_epoch(other_seed), epoch0)


def test_normalisation() -> None:
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (10, 3, 5, 5), generator=gen, dtype=torch.uint8)
    mean, std = (0.1, 0.5, 0.9), (0.2, 0.3, 0.4)
    batches = DeviceBatches(images, torch.zeros(10), 4, mean=mean, std=std,
                            shuffle=False, drop_last=False)
    x = torch.cat([x for x, _ in batches])
    assert x.dtype == torch.float32
    expected = (images.double() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(
        std).view(1, 3, 1, 1)
    assert torch.allclose(x.double(), expected, atol=1e-5)
    labels = torch.cat([y for _, y in batches])
    assert labels.dtype == torch.int64


def _reference_crop(image: torch.Tensor, p: int, dy: int, dx: int, flip: bool) -> torch.Tensor:
    """One sample: the window at (dy, dx) of the zero-padded image, then mirrored."""
    c, h, w = image.shape
    padded = torch.zeros(c, h + 2 * p, w + 2 * p, dtype=image.dtype)
    padded[:, p : p + h, p : p + w] = image
    window = padded[:, dy : dy + h, dx : dx + w]
    return window.flip(-1) if flip else window


@pytest.mark.parametrize("padding,flip", [(2, True), (0, True), (1, False)])
def test_random_crop_matches_per_sample_reference(padding: int, flip: bool) -> None:
    n, h, w = 120, 5, 6
    images = _indexed_images(n, h, w)
    batches = DeviceBatches(images, torch.arange(n), 16, **IDENTITY, augment=True,
                            crop_padding=padding, flip=flip, seed=3)
    seen = Counter()
    for _ in range(2):
        for x, y in batches:
            out = _raw(x).to(torch.uint8)
            for sample, label in zip(out, y):
                original = images[int(label)]
                matches = [
                    (dy, dx, f)
                    for dy in range(2 * padding + 1)
                    for dx in range(2 * padding + 1)
                    for f in (False, True)
                    if torch.equal(sample, _reference_crop(original, padding, dy, dx, f))
                ]
                assert len(matches) == 1, (int(label), matches)
                seen[matches[0]] += 1
    shifts = {(dy, dx) for dy, dx, _ in seen}
    assert shifts == {(dy, dx) for dy in range(2 * padding + 1) for dx in range(2 * padding + 1)}
    flips = {f for _, _, f in seen}
    assert flips == ({False, True} if flip else {False})


def test_channels_last() -> None:
    images = _indexed_images(12, 6, 6)
    kwargs = dict(**IDENTITY, augment=True, crop_padding=1, seed=2)
    plain = _epoch(DeviceBatches(images, torch.arange(12), 4, **kwargs))
    cl = _epoch(DeviceBatches(images, torch.arange(12), 4, channels_last=True, **kwargs))
    for (x1, y1), (x2, y2) in zip(plain, cl):
        assert x2.is_contiguous(memory_format=torch.channels_last)
        assert not x1.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(x1, x2) and torch.equal(y1, y2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    images = _indexed_images(30, 6, 6)
    kwargs = dict(**IDENTITY, augment=True, crop_padding=2, seed=4)
    cpu = _epoch(DeviceBatches(images, torch.arange(30), 8, **kwargs))
    gpu = _epoch(DeviceBatches(images, torch.arange(30), 8, device="cuda", **kwargs))
    for (x1, y1), (x2, y2) in zip(cpu, gpu):
        assert x2.device.type == "cuda"
        assert torch.equal(x1, x2.cpu()) and torch.equal(y1, y2.cpu())


@pytest.mark.parametrize(
    "change,argument",
    [
        (dict(batch_size=0), "batch_size"),
        (dict(batch_size=11), "batch_size"),
        (dict(images=torch.zeros(10, 3, 4, 4)), "images"),
        (dict(images=torch.zeros(10, 4, 4, dtype=torch.uint8)), "images"),
        (dict(labels=torch.zeros(9)), "labels"),
        (dict(mean=(0.5,)), "mean"),
        (dict(std=(0.5, 0.0, 0.5)), "std"),
        (dict(crop_padding=-1), "crop_padding"),
    ],
)
def test_bad_arguments(change: dict, argument: str) -> None:
    kwargs = dict(images=torch.zeros(10, 3, 4, 4, dtype=torch.uint8), labels=torch.zeros(10),
                  batch_size=4, mean=(0.5,) * 3, std=(0.5,) * 3)
    kwargs.update(change)
    with pytest.raises(ValueError) as excinfo:
        DeviceBatches(**kwargs)
    _one_line_error(excinfo, argument)
    assert str(excinfo.value).startswith(argument) or argument in str(excinfo.value).split(":")[0]


def test_batch_size_larger_than_data_ok_without_drop_last() -> None:
    batches = DeviceBatches(torch.zeros(3, 3, 2, 2, dtype=torch.uint8), torch.zeros(3), 10,
                            mean=(0,) * 3, std=(1,) * 3, drop_last=False)
    assert len(batches) == 1 and [len(y) for _, y in batches] == [3]


# --------------------------------------------------------------------------- search/test


def _small_data(n_train: int = 30, n_test: int = 7) -> ImageData:
    return ImageData(
        "small", _indexed_images(n_train, 6, 6), torch.arange(n_train) % 3,
        _indexed_images(n_test, 6, 6), torch.arange(n_test) % 3, ["a", "b", "c"],
        (0.0, 0.0, 0.0), (1 / 255,) * 3, crop_padding=2,
    )


def test_search_batches_halves() -> None:
    ds = _small_data()
    weights, arch = search_batches(ds, 4, seed=3)
    first, second = split_halves(30, 3)
    assert weights.augment and arch.augment and weights.shuffle and weights.drop_last
    assert weights.crop_padding == 2 and weights.seed != arch.seed
    assert len(weights) == 15 // 4 and len(arch) == 15 // 4
    assert torch.equal(weights.images, ds.train_images[first])
    assert torch.equal(arch.labels, ds.train_labels[second])
    assert set(weights.images[:, 2, 0, 0].tolist()).isdisjoint(arch.images[:, 2, 0, 0].tolist())
    x, y = next(iter(weights))
    assert x.shape == (4, 3, 6, 6) and y.shape == (4,)
    with pytest.raises(ValueError) as excinfo:
        search_batches(ds, 16)
    _one_line_error(excinfo, "batch_size", "16", "15")


def test_search_batches_digits_do_not_flip(digits: ImageData) -> None:
    weights, arch = search_batches(digits, 64, seed=0)
    assert not weights.flip and weights.crop_padding == 0
    assert len(weights.labels) + len(arch.labels) == len(digits.train_labels)
    x, _ = next(iter(weights))
    assert x.shape == (64, 3, 8, 8)


def test_test_batches_in_order() -> None:
    ds = _small_data()
    batches = D.test_batches(ds, 3)
    assert len(batches) == 3 and not batches.augment
    x = torch.cat([x for x, _ in batches])
    y = torch.cat([y for _, y in batches])
    assert torch.equal(_raw(x).to(torch.uint8), ds.test_images)
    assert torch.equal(y, ds.test_labels)
