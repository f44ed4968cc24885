"""Data-parallel search: K processes (gloo on the CPU), K sampled architectures a step, one search."""

import itertools
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from helpers import one_line_error
from nas_estimators import distributed
from nas_estimators.checkpoints import SEARCH_KEY, read_checkpoint
from nas_estimators.estimators import Relax, ScoreFunction

WORKER = Path(__file__).with_name("distributed_worker.py")
TINY = dict(dataset="digits", space="nb201", width=4, cells=1, batch_size=32, progress=False, warmup_epochs=0,
            device="cpu")
SEARCH_ARGS = ["search", "--space", "nb201", "--width", "4", "--cells", "1", "--batch-size", "32", "--epochs", "3",
               "--warmup-epochs", "0", "--device", "cpu", "--no-progress"]


def run(*args, timeout=600):
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout)


def worker_search(output, **config):
    completed = run(WORKER, "search", json.dumps({**TINY, "output": str(output), **config}))
    assert completed.returncode == 0, completed.stderr[-3000:]
    return [json.loads((output / f"rank{rank}.json").read_text()) for rank in range(config.get("devices", 1))]


@pytest.mark.parametrize("estimator", ["sf", "relax"])
def test_two_processes_hold_the_same_distribution_and_sample_their_own_architectures(tmp_path, estimator):
    first, second = worker_search(tmp_path / "run", estimator=estimator, epochs=2, devices=2)
    assert first["logits"] == second["logits"]  # bit for bit, after every step's averaged update
    assert first["mode"] == second["mode"]
    assert first["scored"] != second["scored"]  # each process scored its own draws
    if estimator == "sf":
        assert first["diagnostics"]["samples"] == second["diagnostics"]["samples"] == 2
        # One moving-average baseline for both, following both processes' losses.
        assert first["diagnostics"]["baseline"] == second["diagnostics"]["baseline"]
        assert first["diagnostics"]["loss"] != second["diagnostics"]["loss"]
    # One search's outputs: one history, one architecture (rank 0's, the same as rank 1's).
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert list(history["epoch"]) == [0, 1]
    # The recipe re-scores the top 5 on the same held-out images in every process: the same pick everywhere.
    assert first["exported"] == second["exported"]
    assert json.loads((tmp_path / "run" / "architecture.json").read_text()) == first["exported"]
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (config["devices"], config["num_nodes"]) == (2, 1)
    # Each process read its own half of every epoch: 11 of digits' 22 steps, one scored draw a step.
    assert len(first["scored"]) == len(second["scored"]) == 2 * 11


def test_sigterm_to_one_of_two_processes_stops_both_with_one_checkpoint_that_resumes_exactly(tmp_path):
    uninterrupted = tmp_path / "uninterrupted"
    completed = run("-m", "nas_estimators", *SEARCH_ARGS, "--devices", "2", "--output", uninterrupted)
    assert completed.returncode == 0, completed.stderr[-3000:]

    output = tmp_path / "run"
    # Process 1 (not the one that writes) is signalled at its 15th step: the second epoch's fourth (11 an epoch).
    stopped = run(WORKER, "signal", 15, 1, *SEARCH_ARGS, "--devices", "2", "--output", output)
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr[-3000:]
    assert stopped.stderr.count("stopped by SIGTERM") == 1 and "Traceback" not in stopped.stderr
    assert_no_process_left(output)  # the other process exited too
    state = read_checkpoint(output / "checkpoint.ckpt")[SEARCH_KEY]
    assert state["partial_epoch"]["batches_done"] == 15 - 11  # both stopped at the same step
    assert len(state["torch_rng"]) == 2  # each process's generator, to continue its own draws
    assert not (output / "architecture.json").exists()

    resumed = run("-m", "nas_estimators", "search", "--resume", "--output", output, "--no-progress")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for name in ("history.csv", "probabilities.csv"):
        a, b = pd.read_csv(output / name), pd.read_csv(uninterrupted / name)
        timings = [c for c in a.columns if c == "seconds" or c.startswith("seconds/")]
        a, b = a.drop(columns=timings), b.drop(columns=timings)
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert (output / "architecture.json").read_text() == (uninterrupted / "architecture.json").read_text()


def assert_no_process_left(output, timeout=120.0):
    """No process whose command line names ``output`` is still running (polled, within ``timeout``)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                if str(output).encode() in cmdline.read_bytes():
                    alive.append(cmdline.parent.name)
            except OSError:  # it ended meanwhile
                pass
        if not alive:
            return
        assert time.monotonic() < deadline, f"processes still running: {alive}"
        time.sleep(0.1)


def test_resuming_on_another_number_of_processes_is_one_line(tmp_path, capsys):
    output = tmp_path / "run"
    completed = run("-m", "nas_estimators", *SEARCH_ARGS[:-5], "--epochs", "1", "--warmup-epochs", "0",
                    "--device", "cpu", "--no-progress", "--output", output)
    assert completed.returncode == 0, completed.stderr[-3000:]
    before = (output / "checkpoint.ckpt").read_bytes()
    error = one_line_error(capsys, ["search", "--resume", "--output", str(output), "--devices", "2", "--epochs", "2"])
    assert "written by a search on 1 processes" in error and "--devices" in error
    assert (output / "checkpoint.ckpt").read_bytes() == before  # nothing written is lost


@pytest.mark.parametrize("devices, message", [("0", "devices: expected a positive integer"),
                                              ("999", "devices: 999 processes asked for, this machine has"),
                                              ("-1", "devices: expected a positive integer")])
def test_bad_devices_are_one_line(tmp_path, capsys, devices, message):
    error = one_line_error(capsys, [*SEARCH_ARGS, "--devices", devices, "--output", str(tmp_path / "o")])
    assert message in error
    assert not (tmp_path / "o").exists()


def test_bad_num_nodes_are_one_line(tmp_path, capsys):
    error = one_line_error(capsys, [*SEARCH_ARGS, "--num-nodes", "0", "--output", str(tmp_path / "o")])
    assert "num_nodes: expected a positive integer" in error


# ---------------------------------------------------------------- the averaged estimate is unbiased

SIZES = {"a": 3, "b": 4, "c": 2}
STEPS = 2500


def _problem():
    from nas_estimators import ArchitectureDistribution

    generator = torch.Generator().manual_seed(0)
    distribution = ArchitectureDistribution({label: list(range(size)) for label, size in SIZES.items()})
    with torch.no_grad():
        for label in distribution.labels:
            distribution.logits[label].copy_(torch.randn(SIZES[label], generator=generator))
    table = torch.rand(tuple(SIZES.values()), generator=generator, dtype=torch.float64) * 2.0 + 1.0
    return distribution, table


def _estimates_in_process(rank, processes, store, name, output):
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=processes)
    try:
        torch.manual_seed(100 + rank)  # each process its own draws, as the search module arranges
        distribution, table = _problem()
        estimator = ScoreFunction(baseline_decay=0.9) if name == "sf" else Relax(surrogate_width=16,
                                                                                   surrogate_lr=1e-2)
        estimator.collectives = distributed
        rows = []
        for _ in range(STEPS):
            gradients = estimator.estimate(distribution, lambda a: float(table[a["a"], a["b"], a["c"]]))
            distributed.mean_(list(gradients.values()))
            rows.append(torch.cat([gradients[label] for label in SIZES]).double())
        if rank == 0:
            torch.save({"estimates": torch.stack(rows), "samples": estimator.diagnostics.get("samples")}, output)
        if name == "relax":  # one surrogate for all processes
            flat = torch.cat([p.detach().reshape(-1) for p in estimator.surrogate.parameters()])
            gathered = [torch.empty_like(flat) for _ in range(processes)]
            dist.all_gather(gathered, flat)
            if rank == 0:
                torch.save({"surrogates_equal": all(torch.equal(g, gathered[0]) for g in gathered)},
                           str(output) + ".surrogate")
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("name", ["sf", "relax"])
def test_the_two_process_estimate_is_unbiased(tmp_path, name):
    distribution, table = _problem()
    expectation = 0.0
    for values in itertools.product(*(range(size) for size in SIZES.values())):
        expectation = expectation + distribution.log_prob(dict(zip(SIZES, values))).exp() * float(table[values])
    exact = torch.cat(torch.autograd.grad(expectation, [distribution.logits[label] for label in SIZES])).double()

    output = tmp_path / "estimates.pt"
    mp.start_processes(_estimates_in_process, args=(2, tmp_path / "store", name, output), nprocs=2,
                       start_method="spawn")
    saved = torch.load(output)
    estimates = saved["estimates"][200:]  # RELAX: after its surrogate has adapted a little
    mean, standard_error = estimates.mean(0), estimates.std(0) / math.sqrt(len(estimates))
    assert torch.all((mean - exact).abs() <= 4 * standard_error + 1e-9), (mean, exact, standard_error)
    if name == "sf":
        assert saved["samples"] == 2
    else:
        assert torch.load(str(output) + ".surrogate")["surrogates_equal"]


def test_without_a_process_group_the_collectives_are_the_identity():
    values = [torch.tensor([1.0, 2.0]), torch.tensor(3.0)]
    distributed.mean_(values)
    distributed.broadcast_(values)
    assert values[0].tolist() == [1.0, 2.0] and float(values[1]) == 3.0
    assert distributed.world() == (0, 1)
    assert distributed.gather_floats([1.5]) == [1.5] and distributed.largest(7) == 7


def test_a_backend_that_cannot_start_is_one_line_and_keeps_what_was_written(tmp_path, capsys, monkeypatch):
    from nas_estimators import search as search_module

    def fail(config, parts=None, **kwargs):  # what Lightning raises when the process group cannot form
        raise dist.DistNetworkError("The server socket has failed to listen on any local network address. "
                                    "port: 29500, useIpv6: 0, code: -98, name: EADDRINUSE")

    monkeypatch.setattr(search_module, "run_search", fail)
    output = tmp_path / "o"
    error = one_line_error(capsys, [*SEARCH_ARGS, "--devices", "2", "--output", str(output)])
    assert error.startswith("nas-estimators search: error: devices: the gloo backend could not start 2 processes")
    assert "EADDRINUSE" in error and "MASTER_PORT" in error


def test_the_strategies_in_an_nni_pipeline_on_a_ddp_trainer(tmp_path):
    # NNI's Classification evaluator with Lightning's DDP on 2 CPU processes; our strategy inside it.
    completed = run(WORKER, "strategy", "sf", tmp_path)
    assert completed.returncode == 0, completed.stderr[-3000:]
    first, second = (json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1))
    assert first["processes"] == second["processes"] == 2
    assert first["logits"] == second["logits"] and first["mode"] == second["mode"]
    assert max(abs(value) for values in first["logits"].values() for value in values) > 1e-3  # they moved
