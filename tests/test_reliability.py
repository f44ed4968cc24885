"""Searches survive kills and bad numbers, and give the same answer twice (on the CPU, exactly)."""

import hashlib
import math
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from nas_estimators import search as search_module
from nas_estimators.checkpoints import SEARCH_KEY, read_checkpoint
from nas_estimators.cli import main
from nas_estimators.lightning import LOGIT_RANGE
from nas_estimators.search import SearchConfig, SearchDiverged, run_search

TINY = dict(dataset="digits", space="nb201", width=4, cells=1, batch_size=32, progress=False)
# Long enough to be killed mid-way on a busy 2-core machine: ~22 steps an epoch.
# Every epoch searches (no weights-only epochs), so an interruption lands in an architecture epoch.
KILLABLE = ["--space", "nb201", "--width", "8", "--cells", "1", "--batch-size", "32", "--epochs", "6",
            "--warmup-epochs", "0", "--no-progress"]


def tables(output):
    history = pd.read_csv(output / "history.csv")
    history = history.drop(columns=[c for c in history.columns if c == "seconds" or c.startswith("seconds/")])  # timings
    probabilities = pd.read_csv(output / "probabilities.csv")
    return history, probabilities, (output / "architecture.json").read_text()


def assert_same_search(a, b):
    history_a, probabilities_a, architecture_a = tables(a)
    history_b, probabilities_b, architecture_b = tables(b)
    pd.testing.assert_frame_equal(history_a, history_b, check_exact=True)
    pd.testing.assert_frame_equal(probabilities_a, probabilities_b, check_exact=True)
    assert architecture_a == architecture_b


def cli(*args):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.Popen([sys.executable, "-m", "nas_estimators", "search", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def finished_epochs(output):
    try:
        return len(pd.read_csv(output / "history.csv"))
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return 0


def wait_for_epochs(process, output, epochs, timeout=300):
    deadline = time.monotonic() + timeout
    while finished_epochs(output) < epochs:
        assert process.poll() is None, process.communicate()[1][-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    output = tmp_path_factory.mktemp("uninterrupted") / "run"
    process = cli(*KILLABLE, "--output", str(output))
    _, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-2000:]
    return output


def test_same_seed_gives_the_same_search_twice(tmp_path):
    for name in ("a", "b"):
        run_search(SearchConfig(estimator="relax", epochs=2, seed=3, output=str(tmp_path / name), **TINY))
    assert_same_search(tmp_path / "a", tmp_path / "b")
    run_search(SearchConfig(estimator="relax", epochs=2, seed=4, output=str(tmp_path / "c"), **TINY))
    with pytest.raises(AssertionError):
        assert_same_search(tmp_path / "a", tmp_path / "c")


def test_sigkill_mid_search_then_resume_reproduces_the_uninterrupted_search(tmp_path, uninterrupted):
    output = tmp_path / "run"
    process = cli(*KILLABLE, "--output", str(output))
    wait_for_epochs(process, output, 2)
    time.sleep(0.2)  # into the third epoch (or its checkpoint write: either must be survivable)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert finished_epochs(output) < 6 and not (output / "architecture.json").exists()
    read_checkpoint(output / "checkpoint.ckpt")  # the last epoch's checkpoint is whole

    resumed = cli("--resume", "--output", str(output), "--no-progress")
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-2000:]
    assert_same_search(output, uninterrupted)


def test_sigterm_saves_a_mid_epoch_checkpoint_that_resumes_exactly(tmp_path, uninterrupted):
    output = tmp_path / "run"
    # The signal arrives at the end of step 30, the ninth of the second epoch (22 an epoch): driven by the
    # step, not by a sleep, so a loaded machine cannot move it.
    worker = os.path.join(os.path.dirname(__file__), "distributed_worker.py")
    process = subprocess.Popen([sys.executable, worker, "signal", "30", "0", "search", *KILLABLE, "--output", str(output)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=dict(os.environ, PYTHONWARNINGS="ignore"))
    _, err = process.communicate(timeout=600)
    assert process.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "stopped by SIGTERM" in err and "--resume" in err and "Traceback" not in err
    state = read_checkpoint(output / "checkpoint.ckpt")[SEARCH_KEY]
    assert state["partial_epoch"]["batches_done"] == 30 - 22

    resumed = cli("--resume", "--output", str(output), "--no-progress")
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-2000:]
    assert_same_search(output, uninterrupted)
    # The epoch aggregates handed to Lightning resume too: the interrupted epoch's mean covers all of it.
    pd.testing.assert_frame_equal(logged_epochs(output), logged_epochs(uninterrupted), check_exact=False, rtol=1e-9)


def logged_epochs(output):
    """Lightning's per-epoch logs over every logger version (a resumed search adds one), last row per epoch."""
    frames = [pd.read_csv(path) for path in sorted((output / "logs").glob("version_*/metrics.csv"))]
    logged = pd.concat(frames).dropna(subset=["val_acc"]).groupby("epoch").last()
    return logged[["val_acc", "val_loss", "entropy", "skipped_steps", "estimator/baseline"]]


def _poison(monkeypatch, bad_step):
    """Make the training loss NaN on the steps where bad_step(epoch, batch_idx) is true."""
    original = search_module.SearchClassifier.training_step

    def training_step(self, batch, batch_idx):
        loss = original(self, batch, batch_idx)
        return loss * math.nan if bad_step(self.trainer.current_epoch, batch_idx) else loss

    monkeypatch.setattr(search_module.SearchClassifier, "training_step", training_step)


def test_nan_losses_are_skipped_and_never_reach_the_weights(tmp_path, monkeypatch):
    _poison(monkeypatch, lambda epoch, batch: batch % 3 == 1)
    # weights trained in both epochs (the recipe's second stage would keep them fixed)
    result = run_search(SearchConfig(epochs=2, output=str(tmp_path / "o"), freeze_weights=False, **TINY))
    history = result["history"]
    assert history["skipped_steps"].iloc[-1] == 14  # batches 1, 4, ..., 19 of both 22-batch epochs
    assert history["train_loss"].notna().all()
    module = result["strategy"]._search_module
    assert all(torch.isfinite(p).all() for p in module.parameters())
    assert all(torch.isfinite(p).all() for p in result["strategy"].distribution.parameters())


def test_consecutive_bad_steps_stop_the_search_and_keep_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    _poison(monkeypatch, lambda epoch, batch: epoch >= 1)
    output = tmp_path / "o"
    with pytest.raises(SearchDiverged, match="5 consecutive steps had a non-finite"):
        run_search(SearchConfig(epochs=3, output=str(output), max_bad_steps=5, **TINY))
    checkpoint = read_checkpoint(output / "checkpoint.ckpt")
    assert checkpoint["epoch"] == 0 and len(checkpoint[SEARCH_KEY]["rows"]) == 1
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values() if v.is_floating_point())

    code = main(["search", "--space", "nb201", "--width", "4", "--cells", "1", "--batch-size", "32",
                 "--epochs", "3", "--max-bad-steps", "5", "--no-progress", "--output", str(tmp_path / "cli")])
    err = capsys.readouterr().err
    assert code == 1 and "non-finite" in err and "last good checkpoint" in err and "Traceback" not in err


@pytest.mark.parametrize("estimator", ["sf", "relax", "ram"])
def test_logits_stay_finite_under_extreme_learning_rates(tmp_path, estimator):
    result = run_search(SearchConfig(estimator=estimator, epochs=1, arc_learning_rate=1e12,
                                     output=str(tmp_path / "o"), **TINY))
    distribution = result["strategy"].distribution
    for logit in distribution.parameters():
        assert torch.isfinite(logit).all()
        assert float(logit.max() - logit.min()) <= LOGIT_RANGE + 1e-3
    assert math.isfinite(float(distribution.entropy()))
    assert all(math.isclose(float(p.sum()), 1.0, rel_tol=1e-5) for p in distribution.probs().values())


def _digests(directory):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished_search(tmp_path_factory):
    output = tmp_path_factory.mktemp("finished") / "sf"
    run_search(SearchConfig(epochs=1, output=str(output), **TINY))
    return output


def _resume_fails(capsys, output):
    before = _digests(output)
    with pytest.raises(SystemExit) as excinfo:
        main(["search", "--resume", "--output", str(output), "--no-progress"])
    err = capsys.readouterr().err
    assert excinfo.value.code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert str(output / "checkpoint.ckpt") in err
    assert _digests(output) == before  # nothing overwritten
    return err


def _copy(source, target):
    target.mkdir()
    for path in source.iterdir():
        if path.is_file():
            (target / path.name).write_bytes(path.read_bytes())
    return target


@pytest.mark.parametrize("damage, message", [
    (lambda data: data[:len(data) // 2], "corrupted or truncated"),
    (lambda data: data[:-300] + bytes([data[-300] ^ 0xFF]) + data[-299:], "corrupted or truncated"),
    (lambda data: data[:len(data) // 3] + bytes([data[len(data) // 3] ^ 0x01]) + data[len(data) // 3 + 1:],
     "corrupted or truncated"),
    (lambda data: b"", "no header"),
])
def test_damaged_checkpoints_are_one_line_errors(tmp_path, capsys, finished_search, damage, message):
    output = _copy(finished_search, tmp_path / "damaged")
    checkpoint = output / "checkpoint.ckpt"
    checkpoint.write_bytes(damage(checkpoint.read_bytes()))
    assert message in _resume_fails(capsys, output)


def test_a_foreign_file_is_not_a_search_checkpoint(tmp_path, capsys, finished_search):
    output = _copy(finished_search, tmp_path / "foreign")
    torch.save({"state_dict": {}}, output / "checkpoint.ckpt")
    assert "not a nas-estimators search checkpoint" in _resume_fails(capsys, output)


def test_a_checkpoint_of_another_estimator_or_space_is_refused(tmp_path, capsys, finished_search):
    other = tmp_path / "relax"
    run_search(SearchConfig(estimator="relax", epochs=1, output=str(other), **TINY))
    output = _copy(finished_search, tmp_path / "mixed")
    (output / "checkpoint.ckpt").write_bytes((other / "checkpoint.ckpt").read_bytes())
    assert "estimator='relax'" in _resume_fails(capsys, output)

    darts = tmp_path / "darts"
    run_search(SearchConfig(**{**TINY, "space": "darts", "cells": 3, "epochs": 1, "output": str(darts)}))
    output = _copy(finished_search, tmp_path / "mixed-space")
    (output / "checkpoint.ckpt").write_bytes((darts / "checkpoint.ckpt").read_bytes())
    assert "space='darts'" in _resume_fails(capsys, output)


def test_resume_without_a_search_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as excinfo:
        main(["search", "--resume", "--output", str(tmp_path / "none")])
    assert excinfo.value.code == 2 and "no search in" in capsys.readouterr().err
