"""Threads are chosen: a fixed count, OMP_NUM_THREADS, or the governor that follows the machine's load."""

import json
import sys

import pandas as pd
import pytest
import torch

from nas_estimators.threads import AUTO, ThreadGovernor, read_cpu_times, resolve_threads
from helpers import one_line_error, tiny_search


@pytest.fixture(autouse=True)
def restore_threads():
    threads = torch.get_num_threads()  # the governor sets torch's process-wide count
    yield
    torch.set_num_threads(threads)


def test_threads_are_chosen_not_inherited(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert resolve_threads(None, cpu) == 1
    assert resolve_threads(None, cuda) == torch.get_num_threads()
    assert resolve_threads(3, cpu) == 3 and resolve_threads("3", cpu) == 3 and resolve_threads("auto", cpu) == AUTO
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert resolve_threads(None, cpu) == 2
    with pytest.raises(ValueError, match="threads: expected a positive integer"):
        resolve_threads(0, cpu)
    with pytest.raises(ValueError, match="threads: expected a positive integer or 'auto', got 'many'"):
        resolve_threads("many", cpu)


class FakeMachine:
    """A clock and CPU counters the test moves by hand: one tick is one second."""

    def __init__(self):
        self.now, self.busy, self.own = 0.0, 0.0, 0.0
        self.applied = []

    def tick(self, others: float, own: float) -> None:
        """One second in which other processes keep ``others`` cores busy and this one ``own``."""
        self.now += 1.0
        self.busy += others + own
        self.own += own

    def governor(self, **options) -> ThreadGovernor:
        return ThreadGovernor(cores=2, reader=lambda: (self.busy, self.own), clock=lambda: self.now,
                              apply=self.applied.append, **options)


def test_governor_takes_idle_cores_and_gives_them_back_at_once():
    machine = FakeMachine()
    governor = machine.governor(rise_after=3)
    assert governor.threads == 1 and machine.applied == [1]
    # Alone: the second core is taken after three idle checks in a row, not before.
    for expected in (1, 1, 2):
        machine.tick(others=0.05, own=1.0)
        assert governor.update() == expected
    # Its own two spinning threads do not count against it.
    machine.tick(others=0.05, own=2.0)
    assert governor.update() == 2
    # Another job starts: back to one thread at the first check.
    machine.tick(others=1.0, own=1.0)
    assert governor.update() == 1
    # The other job pauses for one second only: no second thread onto its core.
    machine.tick(others=0.0, own=1.0)
    machine.tick(others=1.0, own=1.0)
    assert governor.update() == 1 and machine.applied == [1, 2, 1]
    # Between checks nothing is read and nothing changes.
    machine.now += 0.5
    machine.busy += 5.0
    assert governor.update() == 1


def test_governor_counts_a_core_free_below_a_quarter_of_other_use():
    governor = FakeMachine().governor()
    assert [governor.free_cores(others) for others in (0.0, 0.2, 0.3, 1.0, 1.3, 2.5)] == [2, 2, 1, 1, 1, 1]
    assert ThreadGovernor(cores=8, reader=lambda: None, apply=lambda n: None).free_cores(2.9) == 5


def test_governor_reports_the_time_weighted_mean():
    machine = FakeMachine()
    governor = machine.governor(rise_after=1)
    machine.tick(others=0.0, own=1.0)
    governor.update()  # one second at one thread, then two
    for _ in range(3):
        machine.tick(others=0.0, own=2.0)
        governor.update()
    assert governor.epoch_mean() == pytest.approx((1 + 2 * 3) / 4)
    assert governor.epoch_mean() == 2.0  # nothing measured since: the count now


def test_governor_without_proc_keeps_one_thread():
    clock = iter(range(100))
    governor = ThreadGovernor(cores=2, reader=lambda: None, clock=lambda: float(next(clock)),
                              apply=lambda n: None, rise_after=1)
    assert [governor.update() for _ in range(3)] == [1, 1, 1]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/stat")
def test_cpu_times_count_this_process():
    busy, own = read_cpu_times()
    total = sum(float(i) for i in range(2_000_000))  # some CPU time of our own
    busy_after, own_after = read_cpu_times()
    assert total > 0 and own_after > own and busy_after >= busy


def test_a_governed_search_records_its_threads(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    out = tiny_search(tmp_path / "run", "--space", "nb201", "--threads", "auto")
    history = pd.read_csv(out / "history.csv")
    assert json.loads((out / "config.json").read_text())["threads"] == AUTO
    assert history["threads"].between(1, ThreadGovernor(reader=lambda: None, apply=lambda n: None).cores).all()
    # A deterministic run keeps one thread; a fixed count is kept and recorded.
    out = tiny_search(tmp_path / "det", "--space", "nb201", "--threads", "auto", "--deterministic")
    assert json.loads((out / "config.json").read_text())["threads"] == 1
    out = tiny_search(tmp_path / "one", "--space", "nb201")  # the default: one, whatever the load
    assert json.loads((out / "config.json").read_text())["threads"] == 1
    assert (pd.read_csv(out / "history.csv")["threads"] == 1).all()
    out = tiny_search(tmp_path / "two", "--space", "nb201", "--threads", "2")
    assert json.loads((out / "config.json").read_text())["threads"] == 2
    assert (pd.read_csv(out / "history.csv")["threads"] == 2).all()
    for value, message in (("0", "threads: expected a positive integer"), ("many", "or 'auto'")):
        error = one_line_error(capsys, ["search", "--threads", value, "--output", str(tmp_path / "bad")])
        assert message in error and not (tmp_path / "bad").exists()
    # The commands that take --threads from the search's settings refuse it alike, before writing anything.
    error = one_line_error(capsys, ["frozen-search", str(out), "--threads", "many", "--output", str(tmp_path / "fz")])
    assert "threads: expected a positive integer or 'auto'" in error and not (tmp_path / "fz").exists()
    error = one_line_error(capsys, ["bench", "--threads", "0", "--json", str(tmp_path / "bench.json")])
    assert "threads: expected a positive integer" in error and not (tmp_path / "bench.json").exists()
    error = one_line_error(capsys, ["compare", "--threads", "many", "--output", str(tmp_path / "cmp")])
    assert "threads: expected a positive integer or 'auto'" in error and not (tmp_path / "cmp").exists()
