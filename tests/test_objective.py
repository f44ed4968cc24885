"""Objective terms: training-free scores against hand-computed values, caching, standardisation,
the combined objective's unbiasedness, and the terms inside searches (NAS-Bench-201 and DARTS spaces)."""

import itertools
import json
import math

import pandas as pd
import pytest
import torch
from torch import nn

from helpers import one_line_error, tiny_search
from nas_estimators import ArchitectureDistribution, Ram, Relax, ScoreFunction, training_free
from nas_estimators.objective import Objective, ObjectiveTerm, TrainingFreeTerm, parse_weights
from test_estimators import SIZES, assert_unbiased, collect, make_problem


def tiny_network():
    net = nn.Sequential(nn.Linear(2, 2, bias=False), nn.ReLU(), nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, -2.0], [3.0, 4.0]]))
        net[2].weight.copy_(torch.tensor([[1.0, -1.0]]))
    return net


def test_synflow_is_the_log_of_the_summed_saliencies_and_leaves_the_weights_alone():
    net = tiny_network()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    # |W| = [[1, 2], [3, 4]], [[1, 1]]: R = 1^T |W2| |W1| 1 = 10, and each linear layer's saliencies sum to R.
    assert training_free.synflow(net, torch.zeros(5, 2)) == pytest.approx(math.log(20.0))
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(p.grad is None and p.requires_grad for p in net.parameters())


def test_naswot_is_the_log_determinant_of_the_hamming_kernel():
    net = nn.Sequential(nn.Linear(2, 2, bias=False), nn.ReLU())
    with torch.no_grad():
        net[0].weight.copy_(torch.eye(2))
    inputs = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])
    # Codes (x > 0): [1, 1], [1, 0], [0, 0]. Agreements: K = [[2, 1, 0], [1, 2, 1], [0, 1, 2]], det = 4.
    assert training_free.naswot(net, inputs) == pytest.approx(math.log(4.0))


def test_ntk_condition_is_minus_the_log_condition_number_of_the_gradient_kernel():
    net = nn.Sequential(nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[0.5, -1.5]]))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    inputs = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    # y_i = w . x_i: J = X, K = X X^T = [[1, 1], [1, 2]], eigenvalues (3 -+ sqrt 5) / 2.
    expected = -math.log((3 + math.sqrt(5)) / (3 - math.sqrt(5)))
    assert training_free.ntk_condition(net, inputs) == pytest.approx(expected)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(p.grad is None and p.requires_grad for p in net.parameters())
    # parallel inputs make the kernel singular: the worst score, not an error
    assert training_free.ntk_condition(net, torch.tensor([[1.0, 1.0], [2.0, 2.0]])) == float("-inf")


class TwoBranches(nn.Module):
    def __init__(self):
        super().__init__()
        self.small, self.large, self.use_large = nn.Linear(2, 1), nn.Linear(2, 50), False

    def forward(self, x):
        return self.large(x) if self.use_large else self.small(x)


def test_parameter_count_and_flops_count_the_modules_that_run():
    net = TwoBranches()
    x = torch.zeros(4, 2)
    assert training_free.parameter_count(net, x) == pytest.approx(3e-6)
    net.use_large = True
    assert training_free.parameter_count(net, x) == pytest.approx(150e-6)
    assert training_free.flops(net, x) == pytest.approx(2 * 2 * 50 / 1e6)  # one input: two per multiply-add


class CountingTerm(TrainingFreeTerm):
    """A training-free term whose raw score is a fixed table lookup."""

    name = "counting"
    score_function = None  # the fake network below looks the score up

    def __init__(self, scores, weight=1.0, reference_size=64):
        super().__init__(weight, reference_size)
        self.scores = scores

        class Network:
            def score(_, architecture, function):
                return self.scores[architecture["a"]][architecture["b"]][architecture["c"]]

        self._fake = Network()

    def bind(self, network, distribution, seed=0):
        super().bind(self._fake, distribution, seed)


def problem(seed=0):
    """test_estimators' enumerable space and loss table (the supernet's losses), and a table of raw scores."""
    distribution, supernet_losses, _ = make_problem(seed)
    scores = torch.randn(tuple(SIZES.values()), generator=torch.Generator().manual_seed(seed + 100),
                         dtype=torch.float64).tolist()
    return distribution, supernet_losses, scores


def test_training_free_terms_are_cached_and_standardised_against_a_seeded_reference():
    distribution, _, scores = problem()
    term = CountingTerm(scores, reference_size=200)
    term.bind(None, distribution, seed=3)
    reference_draws = term.evaluations
    assert reference_draws == len(term.cache) <= 24  # each architecture scored once, however often drawn
    raw = torch.tensor([scores[a][b][c] for a, b, c in itertools.product(range(3), range(4), range(2))])
    arch = {"a": 0, "b": 0, "c": 0}
    assert term.value(arch) == pytest.approx(-(scores[0][0][0] - term.location) / term.scale)
    assert min(raw) <= term.location <= max(raw) and term.scale > 0
    term.value(arch), term.value(arch)
    assert term.evaluations == reference_draws  # cached: no new evaluation
    again = CountingTerm(scores, reference_size=200)
    again.bind(None, distribution, seed=3)
    assert (again.location, again.scale) == (term.location, term.scale)


def test_objective_state_round_trips_and_refuses_another_objective():
    distribution, _, scores = problem()
    objective = Objective([CountingTerm(scores, weight=0.5)])
    objective.bind(nn.Linear(2, 1), torch.zeros(1, 2), distribution)
    loss = objective.loss_fn(None)
    value = loss({"a": 1, "b": 2, "c": 1})
    assert objective.step_values() == {"objective/counting": pytest.approx(value / 0.5)}
    restored = Objective([CountingTerm(scores, weight=0.5)])
    restored.load_state_dict(objective.state_dict())
    assert restored.terms[0].cache == objective.terms[0].cache
    assert restored.terms[0].location == objective.terms[0].location
    with pytest.raises(ValueError, match="objective"):
        Objective([CountingTerm(scores, weight=1.0)]).load_state_dict(objective.state_dict())


@pytest.mark.parametrize("make", [lambda: ScoreFunction(baseline_decay=0.9), lambda: ScoreFunction(samples=3),
                                  lambda: Relax(surrogate_width=8), lambda: Ram()], ids=["sf", "sf3", "relax", "ram"])
def test_the_combined_objective_gradient_is_unbiased(make):
    torch.manual_seed(0)
    distribution, supernet_losses, scores = problem()
    objective = Objective.from_weights({"supernet": 1.0})
    objective.terms.append(CountingTerm(scores, weight=0.7))
    objective.bind(nn.Linear(2, 1), torch.zeros(1, 2), distribution, seed=1)
    loss_fn = objective.loss_fn(lambda arch: float(supernet_losses[arch["a"], arch["b"], arch["c"]]))
    expectation = 0.0
    for values in itertools.product(*(range(size) for size in SIZES.values())):
        architecture = dict(zip(SIZES, values))
        expectation = expectation + distribution.log_prob(architecture).exp() * loss_fn(architecture)
    exact = dict(zip(SIZES, torch.autograd.grad(expectation, [distribution.logits[label] for label in SIZES])))
    assert_unbiased(collect(make(), distribution, loss_fn, 3000), exact)


def test_parse_weights_and_its_errors():
    assert parse_weights("supernet=1, synflow=0.5,params") == {"supernet": 1.0, "synflow": 0.5, "params": 1.0}
    for bad, words in [("foo=1", "unknown term 'foo'"), ("synflow=x", "must be a number"),
                       ("synflow=-1", ">= 0"), ("supernet=0", "positive weight"), ("", "expected NAME")]:
        with pytest.raises(ValueError, match=words):
            parse_weights(bad)
    with pytest.raises(ValueError, match="must be a finite number"):
        ObjectiveTerm(weight=float("nan"))


def test_a_search_with_training_free_terms_records_each_term(tmp_path):
    out = tiny_search(tmp_path / "run", "--space", "nb201", "--warmup-epochs", "1",
                      "--objective", "supernet=1,synflow=0.5,naswot=0.5,params=0.5")
    history = pd.read_csv(out / "history.csv")
    for name in ("synflow", "naswot", "params"):
        assert history[f"objective/{name}"].notna().iloc[-1]
        assert history[f"seconds/{name}"].iloc[-1] > 0
    assert history["seconds/synflow"].iloc[0] == 0  # weights-only epoch: nothing scored yet
    assert json.loads((out / "config.json").read_text())["objective"] == {
        "supernet": 1.0, "synflow": 0.5, "naswot": 0.5, "params": 0.5}


def test_a_training_free_search_resumes_with_its_cache(tmp_path):
    out = tmp_path / "run"
    tiny_search(out, "--space", "nb201", "--warmup-epochs", "0", "--objective", "synflow=1,params=1")
    from nas_estimators.checkpoints import read_checkpoint

    checkpoint = read_checkpoint(out / "checkpoint.ckpt")
    state = checkpoint["nas_estimators"]["objective"]
    assert state["inputs"].shape[0] == 64 and len(state["terms"]["synflow"]["cache"]) > 0
    from nas_estimators.cli import main

    assert main(["search", "--resume", "--output", str(out), "--epochs", "3", "--no-progress"]) == 0
    history = pd.read_csv(out / "history.csv")
    assert len(history) == 3 and history["seconds/synflow"].is_monotonic_increasing


def test_training_free_terms_score_the_darts_space():
    from nas_estimators.objective import ScoringNetwork, TERMS
    from nas_estimators.spaces import build_space
    from nas_estimators.strategy import SF

    torch.manual_seed(0)
    supernet = SF().mutate_model(build_space("darts", 4, 3))
    distribution = ArchitectureDistribution.from_model_space(supernet)
    network = ScoringNetwork(supernet, torch.randn(8, 3, 16, 16), seed=0)
    generator = torch.Generator().manual_seed(0)
    cells = [distribution.to_architecture(distribution.uniform_indices(generator)) for _ in range(2)]
    for name in ("synflow", "naswot", "params", "flops"):
        values = [network.score(cell, TERMS[name].score_function) for cell in cells]
        assert all(math.isfinite(v) for v in values), (name, values)
        assert values[0] != values[1], name


def test_bad_objective_on_the_command_line_is_one_line(capsys, tmp_path):
    error = one_line_error(capsys, ["search", "--objective", "supernet=1,zico=1", "--output", str(tmp_path / "x")])
    assert "objective" in error and "zico" in error
    assert not (tmp_path / "x").exists()
    from nas_estimators.search import SearchConfig, check_config

    with pytest.raises(ValueError, match="objective: nni-darts minimises the supernet's loss alone"):
        check_config(SearchConfig(estimator="nni-darts", objective={"synflow": 1.0}))


def test_the_architecture_walkthrough_registers_a_term_that_the_command_line_runs(tmp_path):
    from nas_estimators import objective

    class Convolutions(objective.TrainingFreeTerm):
        name = "convolutions"

        @staticmethod
        def score_function(network, inputs):
            with training_free.modules_run(network) as ran:
                network(inputs[:1])
            return float(sum(isinstance(m, torch.nn.Conv2d) for m in ran.values()))

    objective.register(Convolutions)
    try:
        out = tiny_search(tmp_path / "run", "--space", "nb201", "--warmup-epochs", "1",
                          "--objective", "supernet=1,convolutions=0.5")
    finally:
        objective.unregister("convolutions")
    history = pd.read_csv(out / "history.csv")
    assert history["objective/convolutions"].notna().iloc[-1] and history["seconds/convolutions"].iloc[-1] > 0
    with pytest.raises(ValueError, match="unknown term 'convolutions'"):
        parse_weights("convolutions=1")


def test_freeze_weights_keeps_the_supernet_after_the_weights_only_epochs(tmp_path):
    from nas_estimators.search import SearchConfig, run_search

    snapshots = {}

    def listener(row, module):
        snapshots[row["epoch"]] = {k: v.detach().clone() for k, v in module.training_module.state_dict().items()
                                   if v.is_floating_point()}

    config = SearchConfig(space="nb201", epochs=3, warmup_epochs=1, batch_size=256, freeze_weights=True,
                          objective={"supernet": 2.0, "synflow": 1.0, "params": 1.0}, progress=False,
                          output=str(tmp_path / "run"), panel_images=0)
    result = run_search(config, listeners=[listener])
    parameters = [k for k in snapshots[0] if "running" not in k and "num_batches" not in k]
    assert all(torch.equal(snapshots[0][k], snapshots[2][k]) for k in parameters)
    history = result["history"]
    assert history["entropy"].iloc[0] == pytest.approx(history["entropy"].max())
    assert history["entropy"].iloc[-1] < history["entropy"].iloc[0] - 1e-3  # the logits moved
    assert history["objective/synflow"].notna().iloc[-1]


def test_naswot_and_the_counts_leave_batch_norm_statistics_and_modes_alone():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.randn(8, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    for score in (training_free.naswot, training_free.parameter_count, training_free.flops):
        score(net, x)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # naswot runs in train mode
    assert not any(m.training for m in net.modules())


def test_rescoring_exports_the_best_scored_of_the_top_k_and_counts_its_seconds(tmp_path, capsys):
    from nas_estimators.cli import main

    output = tmp_path / "out"
    assert main(["search", "--space", "nb201", "--epochs", "3", "--no-progress", "--uniform-draws", "0",
                 "--objective", "supernet=1,params=1", "--rescore-top-k", "4", "--rescore-images", "256",
                 "--output", str(output)]) == 0
    top = json.loads((output / "top_k.json").read_text())
    scored = [row for row in top if "rescored_objective" in row]
    assert len(scored) == 4 and [row["rank"] for row in scored] == [1, 2, 3, 4]
    best = min(scored, key=lambda row: row["rescored_objective"])
    architecture = json.loads((output / "architecture.json").read_text())
    assert architecture == best["architecture"]
    history = pd.read_csv(output / "history.csv")
    assert json.loads(history["mode"].iloc[-1]) == architecture  # the last row shows what is exported
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["search", "--space", "nb201", "--rescore-top-k", "-1", "--output", str(tmp_path / "bad")])
    error = capsys.readouterr().err
    assert "rescore_top_k: expected an integer >= 0, got -1" in error and error.count("\n") == 1
    with pytest.raises(SystemExit):
        main(["search", "--estimator", "nni-darts", "--space", "nb201", "--rescore-top-k", "3",
              "--output", str(tmp_path / "bad")])
    assert "re-scoring is for sf, relax and ram" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["search", "--space", "nb201", "--rescore-top-k", "3", "--rescore-images", "0",
              "--output", str(tmp_path / "bad")])
    error = capsys.readouterr().err
    assert "rescore_images: expected a positive integer, got 0" in error and error.count("\n") == 1
    assert not (tmp_path / "bad").exists()


def test_scores_restore_a_buffer_that_the_forward_replaced():
    class Counting(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(2, 2)
            self.register_buffer("calls", torch.zeros(()))

        def forward(self, x):
            self.calls = self.calls + 1  # a new tensor in the buffer's slot, not an in-place change
            return torch.relu(self.linear(x))

    net = Counting()
    for score in (training_free.naswot, training_free.parameter_count, training_free.synflow):
        score(net, torch.randn(4, 2, generator=torch.Generator().manual_seed(0)))
    assert float(net.calls) == 0.0 and net.calls.dtype == torch.float32
