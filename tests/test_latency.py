"""The latency table: exact for an additive cost, cached on disk by device and network, and a latency budget."""

from __future__ import annotations

import itertools
import json

import pytest
import torch
from torch import nn

from nas_estimators import ArchitectureDistribution, recipe
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
        # the machine slows by `drift` ms a timing: the fit's drift term takes it out of the entries
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


TIMED = 1 + 3 + 2 * (3 + 2)  # the reference, one label changed (3 entries), then twice (entries + 2) drawn


def test_the_table_predicts_an_additive_latency_exactly_for_every_architecture():
    table, calls = measured()
    assert len(calls) == TIMED
    for a, b in itertools.product(COSTS["a"], COSTS["b"]):
        assert table.predict({"a": a, "b": b}) == pytest.approx(10.0 + COSTS["a"][a] + COSTS["b"][b])


def test_a_steady_drift_of_the_machine_is_fitted_apart_from_the_entries():
    table, calls = measured(drift=0.1)
    assert table.entries["a"][1] == pytest.approx(COSTS["a"]["y"] - COSTS["a"]["x"])
    assert table.entries["a"][2] == pytest.approx(COSTS["a"]["z"] - COSTS["a"]["x"])
    assert table.entries["b"][1] == pytest.approx(COSTS["b"]["q"] - COSTS["b"]["p"])
    # the reference at the middle of the timings: 10 + its costs + the drift at the mean position
    assert table.reference_ms == pytest.approx(10.0 + 1.0 + 0.5 + 0.1 * (len(calls) + 1) / 2)


def test_an_interaction_between_labels_is_averaged_over_drawn_architectures():
    """The fit is the additive model closest to the timings of the drawn architectures: where two candidates
    cost more together, the entries share the excess (one label changed at a time would not see it)."""
    network = FakeNetwork()
    distribution = ArchitectureDistribution({label: list(costs) for label, costs in COSTS.items()})

    def time_forward(forward, device, repeats):
        arch = network.architecture
        return 10.0 + COSTS["a"][arch["a"]] + COSTS["b"][arch["b"]] + (4.0 if (arch["a"], arch["b"]) == ("y", "q") else 0.0)

    table = LatencyTable.measure(network, torch.zeros(2, 3), distribution,
                                 lambda architecture: setattr(network, "architecture", dict(architecture)),
                                 time_forward=time_forward, architectures=200)
    exact = 10.0 + 4.0 + 3.0 + 4.0
    assert exact - 3.0 < table.predict({"a": "y", "b": "q"}) < exact - 0.5  # part of the excess, not none of it
    assert table.predict({"a": "x", "b": "p"}) == pytest.approx(11.5, abs=1.0)


def test_a_table_is_measured_once_per_key_and_read_back(tmp_path, monkeypatch):
    (table, path), calls = measured(directory=tmp_path)
    assert path.parent == tmp_path and json.loads(path.read_text())["key"]["threads"] == torch.get_num_threads()
    (again, same), calls_again = measured(directory=tmp_path)
    assert same == path and calls_again == [] and again.to_dict() == table.to_dict()
    path.write_text("{damaged")  # a damaged file is measured again and replaced
    (_, replaced), calls_replaced = measured(directory=tmp_path)
    assert replaced == path and len(calls_replaced) == TIMED and json.loads(path.read_text())["table"]
    monkeypatch.setattr(torch, "get_num_threads", lambda: 99)  # another thread count: another table
    (_, other), calls_other = measured(directory=tmp_path)
    assert other != path and len(calls_other) == TIMED


def test_an_unwritable_cache_warns_and_the_measured_table_still_serves(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.warns(UserWarning, match="latency table not cached"):
        (table, _), calls = measured(directory=blocker / "latency")
    assert len(calls) == TIMED and table.predict({"a": "y", "b": "q"}) == pytest.approx(10.0 + 4.0 + 3.0)


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
    assert json.loads((out / "config.json").read_text())["objective"] == recipe.OBJECTIVE  # the size terms stay
