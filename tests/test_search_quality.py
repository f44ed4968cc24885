"""Search-quality levers and diagnostics: uniform weight paths, the ranking panel, the estimators on a table."""

import itertools
import math

import pandas as pd
import pytest
import torch
from scipy.stats import chisquare

from helpers import one_line_error
from nas_estimators import ArchitectureDistribution, Ram, Relax, ScoreFunction
from nas_estimators.nasbench201 import LABELS, NNI_OPS, BenchmarkTable, to_arch_string
from nas_estimators.weight_paths import weight_paths
from nas_estimators.lightning import EstimatorLightningModule
from nas_estimators.settings import LoopSettings
from nas_estimators.ranking import RankingPanel, kendall_tau, panel_architectures
from nas_estimators.table_search import TableSearch


# ------------------------------------------------------------------ uniform weight paths

def peaked_distribution() -> ArchitectureDistribution:
    distribution = ArchitectureDistribution({"a": ["x", "y", "z"], "b": [0, 1, 2, 3, 4]})
    with torch.no_grad():
        distribution.logits["a"].copy_(torch.tensor([0.0, -30.0, -30.0]))
        distribution.logits["b"].copy_(torch.tensor([-30.0, -30.0, -30.0, 0.0, -30.0]))
    return distribution


def test_uniform_indices_are_uniform_whatever_the_logits():
    distribution = peaked_distribution()
    generator = torch.Generator().manual_seed(0)
    draws = [distribution.uniform_indices(generator) for _ in range(6000)]
    for label, size in (("a", 3), ("b", 5)):
        counts = torch.bincount(torch.tensor([d[label] for d in draws]), minlength=size).tolist()
        assert len(counts) == size
        assert chisquare(counts).pvalue > 1e-3, counts


class _Recorder(EstimatorLightningModule):
    """The search module with the supernet replaced by a list of the paths it was set to."""

    def __init__(self, share):
        torch.nn.Module.__init__(self)
        self.__dict__["distribution"] = peaked_distribution()
        self.settings = LoopSettings(uniform_weight_paths=share)
        self.weight_paths = weight_paths("uniform")
        self.applied = []

    def apply(self, architecture):
        self.applied.append(architecture)


@pytest.mark.parametrize("share, expected_uniform", [(1.0, 1.0), (0.0, 0.0), (0.5, 0.5)])
def test_weight_paths_follow_the_uniform_share(share, expected_uniform):
    torch.manual_seed(0)
    module = _Recorder(share)
    for _ in range(4000):
        module.resample()
    # The distribution puts all its mass on ('x', 3); a uniform draw hits it 1 time in 15.
    off_mode = sum(a != {"a": "x", "b": 3} for a in module.applied) / len(module.applied)
    expected = expected_uniform * (1 - 1 / 15)
    assert abs(off_mode - expected) < 4 * math.sqrt(max(expected * (1 - expected), 1e-4) / 4000) + 1e-3
    values_b = {a["b"] for a in module.applied}
    assert values_b == ({0, 1, 2, 3, 4} if share > 0 else {3})


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), "half", True])
def test_uniform_weight_paths_out_of_range_is_refused(bad):
    from nas_estimators import SF

    with pytest.raises(ValueError, match="uniform_weight_paths: expected a number in \\[0, 1\\]"):
        SF(uniform_weight_paths=bad)


def test_cli_refuses_a_bad_uniform_share_before_writing(tmp_path, capsys):
    error = one_line_error(capsys, ["search", "--uniform-weight-paths", "2", "--output", str(tmp_path / "s")])
    assert "uniform_weight_paths" in error and "[0, 1]" in error
    assert not (tmp_path / "s").exists()


def test_cli_refuses_negative_panel_images(tmp_path, capsys):
    error = one_line_error(capsys, ["search", "--panel-images", "-1", "--output", str(tmp_path / "s")])
    assert "panel_images" in error


# ------------------------------------------------------------------ ranking panel

def test_kendall_tau_on_a_hand_made_table():
    # Pairs: (1,2) concordant, (1,3) c, (1,4) c, (2,3) c, (2,4) c, (3,4) discordant -> (5 - 1) / 6.
    assert kendall_tau([1, 2, 3, 4], [10, 20, 40, 30]) == pytest.approx(4 / 6)
    assert kendall_tau([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert kendall_tau([1, 2, 3], [1, 2, 3]) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        kendall_tau([1], [1])


@pytest.fixture(scope="module")
def table():
    archs = list(itertools.product(NNI_OPS, repeat=6))
    # Accuracy grows with the number of conv_3x3 edges, ties broken by position: a known order.
    accuracy = {to_arch_string(dict(zip(LABELS, ops))): 50 + 5 * ops.count("conv_3x3") + i * 1e-5
                for i, ops in enumerate(archs)}
    return BenchmarkTable(accuracy)


def test_panel_holds_the_best_and_uniform_draws(table):
    panel = panel_architectures(table, uniform=10, best=4, seed=3)
    assert len(panel) == 14 and len({to_arch_string(a) for a in panel}) == 14
    best = sorted(table, key=table.accuracy, reverse=True)[:4]
    assert [to_arch_string(a) for a in panel[:4]] == best
    assert panel == panel_architectures(table, uniform=10, best=4, seed=3)


class _TableNetwork(torch.nn.Module):
    """A 'supernet' whose logits for the applied architecture rank architectures as a given score does."""

    def __init__(self, score):
        super().__init__()
        self.score, self.architecture = score, None
        self.criterion = torch.nn.CrossEntropyLoss()

    def forward(self, inputs):
        confidence = self.score(self.architecture)
        logits = torch.zeros(len(inputs), 2)
        logits[:, 0] = confidence / 100  # the target is always class 0: higher confidence, lower loss
        logits[: max(0, int(len(inputs) * (1 - confidence / 100))), 0] = -1.0  # and fewer right answers
        return logits


class _PanelModule:
    def __init__(self, score):
        self.training_module = _TableNetwork(score)

    def apply(self, architecture):
        self.training_module.architecture = architecture


def test_panel_tau_and_best_pick_follow_the_supernet_scores(table):
    images, labels = torch.zeros(100, 1), torch.zeros(100, dtype=torch.long)
    panel = RankingPanel.from_table(table, images, labels, uniform=30, best=5, seed=0, batch_size=32)
    row = {}
    panel(row, _PanelModule(table.accuracy))  # a supernet that ranks exactly as the table does
    assert row["panel_loss_tau"] == pytest.approx(1.0)
    assert row["panel_tau"] > 0.8  # accuracy over 100 images ties architectures the table tells apart
    assert row["panel_best_benchmark_acc"] == max(panel.benchmark)
    reversed_row = {}
    panel(reversed_row, _PanelModule(lambda a: 200 - table.accuracy(a)))  # one that ranks backwards
    assert reversed_row["panel_loss_tau"] == pytest.approx(-1.0)
    assert reversed_row["panel_best_benchmark_acc"] == min(panel.benchmark)


# ------------------------------------------------------------------ the estimators on a table

CHOICES = {label: list(NNI_OPS) for label in LABELS}


@pytest.mark.parametrize("estimator", [ScoreFunction(0.9), Relax(surrogate_width=16), Ram(labels_per_step=1)],
                         ids=["sf", "relax", "ram"])
def test_table_search_counts_every_forward_evaluation_as_a_query(table, estimator):
    frame = TableSearch(estimator, CHOICES, table.accuracy, learning_rate=0.1).run(budget=23, seed=0)
    per_step = 5 if isinstance(estimator, Ram) else 1  # RAM: 1 + (5 - 1) for one label
    assert len(frame) == (23 // per_step) * per_step  # a step that does not fit the budget is not taken
    assert list(frame["trial"]) == list(range(1, len(frame) + 1))
    assert frame.groupby("step").size().eq(per_step).all()
    assert (frame["best_so_far"] == frame["benchmark_acc"].cummax()).all()


def test_table_search_learns_the_best_cell_of_an_easy_table(table):
    frame = TableSearch(Ram(labels_per_step=1), CHOICES, table.accuracy, learning_rate=0.3).run(budget=500, seed=1)
    assert frame["mode_acc"].iloc[-1] == pytest.approx(80, abs=0.5)  # every edge conv_3x3
    assert frame["mode_acc"].iloc[0] < 60


def test_table_search_is_seeded_and_noise_changes_it(table):
    def run(noise, seed=0):
        return TableSearch(ScoreFunction(0.9), CHOICES, table.accuracy, noise=noise).run(budget=40, seed=seed)

    assert run(0.0)["architecture"].tolist() == run(0.0)["architecture"].tolist()
    assert run(0.05)["architecture"].tolist() != run(0.0)["architecture"].tolist()
    with pytest.raises(ValueError, match="noise"):
        run(-1.0)


def test_compare_runs_the_table_methods_at_the_budget(tmp_path, table):
    from nas_estimators import compare

    path = tmp_path / "table.csv"
    pd.DataFrame({"arch": list(table), "test_acc": [table.accuracy(a) for a in table]}).to_csv(path, index=False)
    config = compare.CompareConfig(methods=("sf-table", "ram-table", "nni-random-search"), seeds=(0, 1),
                                   benchmark_table=str(path), budget=30, output=str(tmp_path / "out"), progress=False)
    result = compare.run_compare(config, progress=lambda line: None)
    trials = pd.read_csv(tmp_path / "out" / "trials.csv")
    assert set(trials["method"]) == {"sf-table", "ram-table", "nni-random-search"}
    assert trials.groupby(["method", "seed"]).size().le(30).all()
    assert trials.groupby(["method", "seed"]).size()[("sf-table", 0)] == 30
    summary = result["summary"].set_index("method")
    assert summary.loc["sf-table", "kind"] == "table"
    assert not math.isnan(summary.loc["ram-table", "final_mode_acc_mean"])


def test_compare_refuses_a_bad_table_learning_rate(tmp_path, capsys):
    error = one_line_error(capsys, ["compare", "--methods", "sf-table", "--table-learning-rate", "0",
                                    "--output", str(tmp_path / "c")])
    assert "table-learning-rate" in error
    assert not (tmp_path / "c").exists()


def test_best_so_far_follows_the_best_score_not_the_best_accuracy():
    from nas_estimators.table_search import best_so_far

    scores = pd.Series([50.0, 70.0, 60.0, 90.0])
    accuracies = pd.Series([55.0, 65.0, 95.0, 80.0])  # query 3 is the best, but scored below query 2
    assert best_so_far(scores, accuracies).tolist() == [55.0, 65.0, 65.0, 80.0]
    assert best_so_far(accuracies, accuracies).tolist() == accuracies.cummax().tolist()


def test_noisy_multi_trial_scores_are_seeded_and_differ_from_the_table(tmp_path, table):
    from nas_estimators import compare

    def run(noise, name):
        compare.run_multi_trial_method("nni-random-search", 0, 20, table, tmp_path / name, noise)
        return pd.read_csv(tmp_path / name / "trials.csv")

    exact, noisy, again = run(0.0, "exact"), run(0.05, "noisy"), run(0.05, "again")
    assert (exact["score"] == exact["benchmark_acc"]).all()
    assert (noisy["score"] != noisy["benchmark_acc"]).all()
    assert noisy["score"].tolist() == again["score"].tolist()
    assert (noisy["score"] - noisy["benchmark_acc"]).abs().max() < 30  # 100 * 0.05 * 6 standard deviations


# ------------------------------------------------------------------ batch norm of the search supernet

def test_no_affine_batch_norm_has_no_parameters_and_uses_batch_statistics():
    from nas_estimators.spaces import build_space

    space = build_space("nb201", 4, 1, batch_norm="no-affine")
    norms = [m for m in space.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(m.weight is None and m.bias is None and m.running_mean is None for m in norms)
    names = [name for name, _ in space.named_parameters()]
    assert not any(name.endswith(("bn.weight", "bn.bias")) for name in names)
    nni = build_space("nb201", 4, 1)
    assert sum(p.numel() for p in nni.parameters()) > sum(p.numel() for p in space.parameters())
    # Batch statistics in evaluation mode too: one image's output depends on the rest of its batch.
    norm = norms[0]
    x = torch.randn(6, norm.num_features, 3, 3, generator=torch.Generator().manual_seed(0))
    norm.eval()
    assert not torch.allclose(norm(x)[:1], norm(x[:2])[:1])
    with pytest.raises(ValueError, match="batch_norm: expected one of nni, no-affine"):
        build_space("nb201", 4, 1, batch_norm="none")


def test_search_with_no_affine_batch_norm_resumes_and_its_checkpoint_refuses_the_other(tmp_path):
    import json

    from helpers import tiny_search
    from nas_estimators.cli import main
    from nas_estimators.search import SearchConfig, prepare

    output = tiny_search(tmp_path / "s", "--space", "nb201", "--width", "4", "--cells", "1",
                         "--batch-norm", "no-affine")
    assert json.loads((output / "config.json").read_text())["batch_norm"] == "no-affine"
    before = (output / "checkpoint.ckpt").read_bytes()
    other = SearchConfig(space="nb201", width=4, cells=1, batch_size=256, output=str(output), resume=True,
                         batch_norm="nni", progress=False)
    with pytest.raises(ValueError, match="batch_norm='no-affine'"):
        prepare(other)
    assert (output / "checkpoint.ckpt").read_bytes() == before
    with pytest.raises(ValueError, match="batch_norm: expected one of nni, no-affine"):
        prepare(SearchConfig(batch_norm="affine", output=str(tmp_path / "t")))
    assert main(["search", "--resume", "--output", str(output), "--epochs", "3", "--no-progress"]) == 0
    assert len(json.loads((output / "top_k.json").read_text())) >= 1
