"""The latency table: exact for an additive cost, cached on disk by device and network, and a latency budget."""

from __future__ import annotations

import itertools
import json

import pytest
import torch
from torch import nn

from nas_estimators import ArchitectureDistribution
from nas_estimators.latency import LatencyTable, cached_table, measure_latency
from helpers import one_line_error

COSTS = {"a": {"x": 1.0, "y": 4.0, "z": 2.5}, "b": {"p": 0.5, "q": 3.0}}


class FakeNetwork(nn.Module):
    """A stand-in network whose 'latency' is the applied architecture's additive cost plus a drift."""

    def __init__(self):
        super().__init__()
        self.architecture = None

    def forward(self, x):
        return x


def fake_timer(network, drift):
    calls = []

    def time_forward(forward, device, repeats):
        forward()
        calls.append(1)
        # the machine slows by `drift` ms a timing: differences against the label's own reference cancel most of it
        return 10.0 + sum(COSTS[label][value] for label, value in network.architecture.items()) + drift * len(calls)

    return time_forward, calls


def measured(drift=0.0, directory=None):
    network = FakeNetwork()
    distribution = ArchitectureDistribution({label: list(costs) for label, costs in COSTS.items()})

    def apply(architecture):
        network.architecture = dict(architecture)

    time_forward, calls = fake_timer(network, drift)
    if directory is None:
        return LatencyTable.measure(network, torch.zeros(2, 3), distribution, apply, time_forward=time_forward), calls
    return cached_table(network, torch.zeros(2, 3), distribution, apply, directory, time_forward=time_forward), calls


def test_the_table_predicts_an_additive_latency_exactly_for_every_architecture():
    table, calls = measured()
    assert len(calls) == 4 + 3  # per label: the reference, each other candidate, the reference again
    for a, b in itertools.product(COSTS["a"], COSTS["b"]):
        assert table.predict({"a": a, "b": b}) == pytest.approx(10.0 + COSTS["a"][a] + COSTS["b"][b])


def test_a_steady_drift_of_the_machine_cancels_out_of_the_entries():
    table, _ = measured(drift=0.1)
    # each entry is measured against the mean of the reference timed before and after its label's candidates:
    # the middle candidate of three sits exactly between them
    assert table.entries["a"][1] == pytest.approx(COSTS["a"]["y"] - COSTS["a"]["x"] - 0.05)
    assert table.entries["a"][2] == pytest.approx(COSTS["a"]["z"] - COSTS["a"]["x"] + 0.05)
    assert table.entries["b"][1] == pytest.approx(COSTS["b"]["q"] - COSTS["b"]["p"])


def test_a_table_is_measured_once_per_key_and_read_back(tmp_path, monkeypatch):
    (table, path), calls = measured(directory=tmp_path)
    assert path.parent == tmp_path and json.loads(path.read_text())["key"]["threads"] == torch.get_num_threads()
    (again, same), calls_again = measured(directory=tmp_path)
    assert same == path and calls_again == [] and again.to_dict() == table.to_dict()
    path.write_text("{damaged")  # a damaged file is measured again and replaced
    (_, replaced), calls_replaced = measured(directory=tmp_path)
    assert replaced == path and len(calls_replaced) == 7 and json.loads(path.read_text())["table"]
    monkeypatch.setattr(torch, "get_num_threads", lambda: 99)  # another thread count: another table
    (_, other), calls_other = measured(directory=tmp_path)
    assert other != path and len(calls_other) == 7


def test_an_unwritable_cache_warns_and_the_measured_table_still_serves(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.warns(UserWarning, match="latency table not cached"):
        (table, _), calls = measured(directory=blocker / "latency")
    assert len(calls) == 7 and table.predict({"a": "y", "b": "q"}) == pytest.approx(10.0 + 4.0 + 3.0)


def test_measure_latency_takes_the_median_after_two_untimed_calls():
    calls = []
    value = measure_latency(lambda: calls.append(1), torch.device("cpu"), repeats=3)
    assert len(calls) == 5 and value >= 0


def test_a_latency_budget_search_records_its_table_and_refuses_an_unreachable_target(tmp_path, monkeypatch, capsys):
    from helpers import tiny_search

    from nas_estimators import latency

    monkeypatch.setenv("NAS_ESTIMATORS_CACHE", str(tmp_path / "cache"))
    def steady_clock(forward, device, repeats):  # each forward pass "takes" 2 ms (real timing: test_examples)
        forward()
        return 2.0

    monkeypatch.setattr(latency, "measure_latency", steady_clock)
    error = one_line_error(capsys, ["search", "--space", "nb201", "--cost", "latency", "--cost-target", "1e-9",
                                    "--output", str(tmp_path / "none")])
    assert "cost-target: no architecture of this space has latency <= 1e-09" in error
    assert not (tmp_path / "none").exists()
    out = tiny_search(tmp_path / "run", "--space", "nb201", "--cost", "latency", "--cost-target", "1000")
    record = json.loads((out / "cost.json").read_text())
    stored = json.loads(open(record["latency_table"]).read())
    assert record["latency_table"].startswith(str(tmp_path / "cache" / "latency"))
    table = LatencyTable.from_dict(stored["table"])
    architecture = json.loads((out / "architecture.json").read_text())
    assert record["within"] and record["architecture_cost"] == pytest.approx(table.predict(architecture)) == 2.0
