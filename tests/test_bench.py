"""bench: JSON of the right shape for every strategy asked, the step timer, the speed work keeps the function."""

import json
import math

import pytest
import torch

from nas_estimators import _nni
from nas_estimators import ArchitectureDistribution, ScoreFunction
from nas_estimators.bench import BenchConfig, FixedLengthBatches, fixed_logits_variance, run_bench
from nas_estimators.cli import main

ALL = ("sf", "relax", "ram", "nni-darts", "nni-gumbel", "nni-random")
TINY = ["--space", "nb201", "--width", "4", "--cells", "1", "--batch-size", "16", "--steps", "2",
        "--warmup-steps", "1", "--device", "cpu", "--threads", "1"]


@pytest.fixture(autouse=True)
def restore_threads():
    threads = torch.get_num_threads()  # --threads sets torch's process-wide thread count
    yield
    torch.set_num_threads(threads)


def test_bench_writes_json_with_positive_numbers_for_every_strategy(tmp_path, capsys):
    path = tmp_path / "deep" / "bench.json"
    assert main(["bench", *TINY, "--strategies", ",".join(ALL), "--json", str(path)]) == 0
    record = json.loads(path.read_text())
    assert record["device"].startswith("cpu") and record["space"] == "nb201" and record["batch_size"] == 16
    assert list(record["results"]) == list(ALL)
    for name, result in record["results"].items():
        assert set(result) == {"processes", "steps_per_s", "images_per_s", "peak_memory_gib", "forward_evals_per_step",
                               "arc_gradient_variance", "arc_gradient_variance_fixed_logits"}, name
        assert result["steps_per_s"] > 0 and result["processes"] == 1, name
        # Our estimators' logits move every step; NNI's strategies have no such estimate to read.
        assert (result["arc_gradient_variance"] is not None) == (name in ("sf", "relax", "ram")), name
        fixed = result["arc_gradient_variance_fixed_logits"]
        assert (fixed is not None and 0 < fixed < math.inf) == (name in ("sf", "relax", "ram")), name
        assert result["images_per_s"] == pytest.approx(16 * result["steps_per_s"])
        assert result["peak_memory_gib"] is None  # no GPU: not measured
    evaluations = {name: r["forward_evals_per_step"] for name, r in record["results"].items()}
    # weight step + architecture step: one sample; RAM all 6 labels x 4 other ops; DARTS one supernet pass
    # RAM marginalises one of the 6 labels a step by default: its 4 other values besides the sample.
    assert evaluations == {"sf": 2, "relax": 2, "ram": 2 + 4, "nni-darts": 2, "nni-gumbel": 2, "nni-random": 1}
    speedup = record["speedup_vs_nni_darts"]
    assert speedup["nni-darts"] == 1
    assert speedup["sf"] == pytest.approx(record["results"]["sf"]["steps_per_s"] / record["results"]["nni-darts"]["steps_per_s"])
    assert record["time_per_step_vs_sf"]["sf"] == 1
    table = capsys.readouterr().out
    for name in ALL:
        assert name in table


def test_random_data_only_when_asked_for_and_of_cifar_shape():
    config = BenchConfig(strategies=("sf",), space="nb201", width=4, cells=1, batch_size=8, steps=1, warmup_steps=0,
                         device="cpu", threads=1)
    assert run_bench(config, progress=lambda line: None)["data"] == "digits"
    record = run_bench(BenchConfig(**{**config.__dict__, "random_data": True}), progress=lambda line: None)
    assert record["data"] == "random" and record["image_shape"] == [3, 32, 32]
    assert record["results"]["sf"]["steps_per_s"] > 0


def test_fixed_length_batches_span_epochs_and_pass_the_data_order_on():
    from nas_estimators.data import DeviceBatches

    batches = DeviceBatches(torch.zeros(10, 3, 4, 4, dtype=torch.uint8), torch.arange(10), 4,
                            mean=(0.5,) * 3, std=(0.5,) * 3)
    fixed = FixedLengthBatches(batches, 5)  # 2 batches an epoch: three epochs are drawn
    assert len(fixed) == 5 and len(list(fixed)) == 5
    assert batches.epoch == 3
    fixed.restore_state({"epoch": 7, "batch": 0, "seed": fixed.seed})
    assert batches.epoch == 7


def test_the_speed_work_computes_what_nni_computes():
    """Plain modules for constant operations and the cell fast path: same outputs as NNI's own supernet."""
    from nni.nas.oneshot.pytorch.strategy import RandomOneShot

    from nas_estimators.distribution import ArchitectureDistribution
    from nas_estimators.estimators import ScoreFunction
    from nas_estimators.spaces import build_space
    from nas_estimators.strategy import EstimatorStrategy

    torch.manual_seed(0)
    ours = EstimatorStrategy(ScoreFunction()).mutate_model(build_space("darts", 4, 3))
    nni = RandomOneShot().mutate_model(build_space("darts", 4, 3))
    assert len(_nni.supernet_modules(ours)) == 3  # only the cells; NNI also wraps every conv and norm
    assert len(_nni.supernet_modules(nni)) > 100
    ours.load_state_dict(nni.state_dict())  # same parameter names: checkpoints stay interchangeable
    distribution = ArchitectureDistribution.from_model_space(ours)
    generator = torch.Generator().manual_seed(1)
    for _ in range(3):
        architecture = distribution.sample(generator)
        _nni.apply_sample(_nni.supernet_modules(ours), architecture)
        _nni.apply_sample(_nni.supernet_modules(nni), architecture)
        x = torch.randn(2, 3, 8, 8, generator=generator)
        assert torch.equal(ours.eval()(x), nni.eval()(x))


@pytest.mark.parametrize("args, message", [
    (["--strategies", "sf,bogus"], "strategies: unknown strategy 'bogus'"),
    (["--strategies", "sf", "sf"], "strategies: each strategy once"),
    (["--steps", "0"], "steps: expected a positive integer"),
    (["--warmup-steps", "-1"], "warmup-steps: expected an integer >= 0"),
    (["--variance-estimates", "1"], "variance-estimates: expected 0 or an integer >= 2"),
    (["--width", "0"], "width: expected a positive integer"),
    (["--random-data", "--data-root", "x"], "--random-data and --data-root exclude each other"),
    (["--data-root", "/nonexistent/cifar"], "/nonexistent/cifar does not exist"),
    (["--device", "tpu"], "device: expected auto, cpu, cuda or cuda:N"),
    (["--threads", "0"], "threads: expected a positive integer"),
    (["--labels-per-step", "0", "--strategies", "ram"], "labels_per_step"),
    (["--devices", "1,0"], "devices: expected positive integers"),
    (["--devices", "two"], "devices: expected comma-separated positive integers"),
    (["--devices", "999", "--device", "cpu", "--strategies", "sf"], "devices: 999 processes asked for"),
    (["--devices", "1,2", "--strategies", "sf,nni-darts"], "NNI's strategies run in one process here"),
])
def test_bad_input_is_a_one_line_error(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--space", "nb201", "--width", "4", "--cells", "1", "--steps", "1", *args])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error
    assert error.count("\n") == 1, error


def test_json_path_that_is_a_directory_is_refused_before_any_work(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", *TINY, "--strategies", "sf", "--json", str(tmp_path)])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "is a directory" in error and "[1/1]" not in error


def test_nni_enas_is_refused_with_the_reason(capsys):
    with pytest.raises(SystemExit):
        main(["bench", *TINY, "--strategies", "nni-enas"])
    assert "nni-enas: NNI 3.0's ENAS does not run with pytorch-lightning" in capsys.readouterr().err


def test_repeats_interleave_rounds_and_report_the_median_round():
    config = BenchConfig(strategies=("sf", "nni-random"), space="nb201", width=4, cells=1, batch_size=8, steps=1,
                         warmup_steps=0, device="cpu", threads=1, repeats=3)
    lines = []
    record = run_bench(config, progress=lines.append)
    assert [line.split("] ")[1].split(":")[0] for line in lines if line.startswith("round")] == ["sf", "nni-random"] * 3
    for result in record["results"].values():
        assert len(result["steps_per_s_rounds"]) == 3
        assert result["steps_per_s"] == sorted(result["steps_per_s_rounds"])[1]


def test_bench_times_a_two_process_search_beside_one_process(tmp_path, capsys):
    path = tmp_path / "bench.json"
    assert main(["bench", *TINY, "--strategies", "sf", "--devices", "1,2", "--json", str(path)]) == 0
    results = json.loads(path.read_text())["results"]
    assert set(results) == {"sf", "sf-k2"}
    assert (results["sf"]["processes"], results["sf-k2"]["processes"]) == (1, 2)
    assert results["sf-k2"]["images_per_s"] == pytest.approx(results["sf-k2"]["steps_per_s"] * 16 * 2)
    for row in results.values():  # the applied estimate's variance over the timed steps, in both
        assert row["steps_per_s"] > 0 and 0 < row["arc_gradient_variance"] < math.inf


def test_fixed_logits_variance_is_the_variance_of_unapplied_estimates_on_successive_batches():
    distribution = ArchitectureDistribution({"a": [0, 1, 2], "b": [0, 1]})
    with torch.no_grad():
        distribution.logits["a"].copy_(torch.tensor([0.5, -0.2, 0.1]))
    batches = [(torch.tensor([float(i)]),) for i in range(3)]
    seen = []

    class Module:  # what the bench reads of a search module
        estimator, device = ScoreFunction(0.5), torch.device("cpu")

        def __init__(self):
            self.distribution = distribution

        def objective_loss_fn(self, batch):
            seen.append(float(batch[0]))
            return lambda arch: arch["a"] + 2.0 * arch["b"] + float(batch[0])

    module = Module()
    logits = {label: t.detach().clone() for label, t in distribution.logits.items()}
    torch.manual_seed(0)
    variance = fixed_logits_variance(module, batches, 7)
    assert seen == [0, 1, 2, 0, 1, 2, 0]  # the next batch each time, round again when they run out
    assert module.estimator.baseline is None  # a copy drew them: the search's estimator is untouched
    assert all(torch.equal(logits[label], distribution.logits[label]) for label in logits)
    torch.manual_seed(0)
    copy, draws = ScoreFunction(0.5), []
    for i in range(7):
        g = copy.estimate(distribution, lambda arch, i=i: arch["a"] + 2.0 * arch["b"] + float(i % 3))
        draws.append(torch.cat([g["a"], g["b"]]).double())
    assert variance == pytest.approx(float(torch.stack(draws).var(0).sum()))
    assert fixed_logits_variance(type("NNI", (), {})(), batches, 7) is None
    assert fixed_logits_variance(module, batches, 0) is None


def test_the_estimators_hyperparameters_reach_the_timed_search_and_the_record(tmp_path):
    path = tmp_path / "bench.json"
    assert main(["bench", *TINY, "--strategies", "ram,sf", "--labels-per-step", "all", "--samples-per-step", "2",
                 "--variance-estimates", "0", "--json", str(path)]) == 0
    record = json.loads(path.read_text())
    assert record["estimator_options"]["labels_per_step"] is None and record["estimator_options"]["samples_per_step"] == 2
    evaluations = {name: r["forward_evals_per_step"] for name, r in record["results"].items()}
    # RAM with every label: 6 labels x 4 other ops besides the sample; SF scores two samples a step
    assert evaluations == {"ram": 2 + 6 * 4, "sf": 1 + 2}
