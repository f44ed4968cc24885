"""Which paths train the shared weights: uniform, never a none edge, or every candidate in turn (FairNAS)."""

from __future__ import annotations

import collections
import json

import pandas as pd
import pytest
import torch

from nas_estimators.distribution import ArchitectureDistribution
from nas_estimators.strategy import SF
from nas_estimators.weight_paths import FairPaths, ShrinkingPaths, UniformPaths, weight_paths

from helpers import tiny_search

CHOICES = {"a": ["none", "skip", "conv"], "b": ["conv", "pool"], "c": ["none", "conv", "pool", "skip"]}


def test_no_none_never_draws_none_where_a_label_has_other_candidates():
    torch.manual_seed(0)
    distribution = ArchitectureDistribution(CHOICES)
    paths = weight_paths("no-none")
    drawn = [distribution.to_architecture(paths.sample(distribution)) for _ in range(600)]
    for label, values in CHOICES.items():
        counts = collections.Counter(architecture[label] for architecture in drawn)
        assert "none" not in counts and set(counts) == set(values) - {"none"}
        expected = 600 / len(counts)
        assert all(abs(count - expected) < 4 * (expected ** 0.5) for count in counts.values())  # uniform otherwise
    assert UniformPaths(exclude=("none",)).sample(ArchitectureDistribution({"x": ["none"]})) == {"x": 0}


def test_fair_paths_train_every_candidate_once_in_each_run_of_its_length():
    torch.manual_seed(1)
    distribution = ArchitectureDistribution(CHOICES)
    paths = FairPaths()
    drawn = [paths.sample(distribution) for _ in range(12)]  # 12 = a multiple of 2, 3 and 4
    for label, values in CHOICES.items():
        runs = [[d[label] for d in drawn[i:i + len(values)]] for i in range(0, 12, len(values))]
        assert all(sorted(run) == list(range(len(values))) for run in runs)
    # not one fixed order: the permutations are drawn afresh
    assert len({tuple(d["c"] for d in drawn[i:i + 4]) for i in range(0, 12, 4)}) > 1


def test_shrinking_paths_keep_the_candidates_the_distribution_still_holds():
    torch.manual_seed(3)
    distribution = ArchitectureDistribution(CHOICES)
    paths = weight_paths("shrinking")
    assert {paths.sample(distribution)["c"] for _ in range(200)} == {0, 1, 2, 3}  # uniform logits: all
    with torch.no_grad():
        distribution.logits["c"].copy_(torch.log(torch.tensor([0.5, 0.3, 0.12, 0.08])))  # 1/8 = 0.125 the bar
        distribution.logits["b"].copy_(torch.log(torch.tensor([0.999, 0.001])))
    drawn = [paths.sample(distribution) for _ in range(300)]
    assert {d["c"] for d in drawn} == {0, 1} and {d["b"] for d in drawn} == {0}
    assert abs(sum(d["c"] == 0 for d in drawn) - 150) < 4 * 150 ** 0.5  # uniform among those kept
    with pytest.raises(ValueError, match="shrinking share"):
        ShrinkingPaths(share=1.5)


def test_fair_paths_resume_where_they_stopped():
    distribution = ArchitectureDistribution(CHOICES)
    torch.manual_seed(2)
    whole = FairPaths()
    expected = [whole.sample(distribution) for _ in range(7)]
    torch.manual_seed(2)
    first = FairPaths()
    drawn = [first.sample(distribution) for _ in range(3)]
    state, rng = json.loads(json.dumps(first.state_dict())), torch.get_rng_state()
    second = FairPaths()
    second.load_state_dict(state)
    torch.set_rng_state(rng)
    drawn += [second.sample(distribution) for _ in range(4)]
    assert drawn == expected


def test_a_search_records_and_resumes_its_weight_paths(tmp_path):
    output = tiny_search(tmp_path / "fair", "--space", "nb201", "--weight-paths", "fair", "--epochs", "1")
    assert json.loads((output / "config.json").read_text())["weight_paths"] == "fair"
    from nas_estimators.cli import main

    assert main(["search", "--resume", "--output", str(output), "--epochs", "2", "--no-progress"]) == 0
    assert len(pd.read_csv(output / "history.csv")) == 2


def test_an_unknown_rule_is_refused_in_one_line(capsys, tmp_path):
    with pytest.raises(ValueError, match="weight_paths: expected one of uniform, no-none, fair, shrinking"):
        weight_paths("sometimes")
    with pytest.raises(ValueError, match="weight_paths"):
        SF(weight_paths="sometimes")
    with pytest.raises(SystemExit) as exit_info:
        from nas_estimators.cli import main

        main(["search", "--weight-paths", "sometimes", "--output", str(tmp_path / "x")])
    assert exit_info.value.code == 2 and "invalid choice: 'sometimes'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
