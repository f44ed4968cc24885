"""Statistical tests: every estimator's mean matches the exact gradient on an enumerable space."""

import itertools
import math

import pytest
import torch

from nas_estimators import ArchitectureDistribution, Ram, Relax, ScoreFunction
from nas_estimators.schedules import Exponential

SIZES = {"a": 3, "b": 4, "c": 2}


def make_problem(seed=0):
    generator = torch.Generator().manual_seed(seed)
    distribution = ArchitectureDistribution({label: list(range(size)) for label, size in SIZES.items()})
    with torch.no_grad():
        for label in distribution.labels:
            distribution.logits[label].copy_(torch.randn(SIZES[label], generator=generator))
    table = torch.rand(tuple(SIZES.values()), generator=generator, dtype=torch.float64) * 2.0 + 1.0

    def loss_fn(architecture):
        return float(table[architecture["a"], architecture["b"], architecture["c"]])

    return distribution, table, loss_fn


def exact_gradient(distribution, table):
    """d/d logits of sum_Z p(Z) L(Z), by autograd over the enumerated space."""
    expectation = 0.0
    for values in itertools.product(*(range(size) for size in SIZES.values())):
        architecture = dict(zip(SIZES, values))
        expectation = expectation + distribution.log_prob(architecture).exp() * float(table[values])
    gradients = torch.autograd.grad(expectation, [distribution.logits[label] for label in SIZES])
    return dict(zip(SIZES, gradients))


def collect(estimator, distribution, loss_fn, n):
    samples = [estimator.estimate(distribution, loss_fn) for _ in range(n)]
    return {label: torch.stack([s[label] for s in samples]).double() for label in SIZES}


def assert_unbiased(estimates, exact, sigmas=4.0):
    n = next(iter(estimates.values())).shape[0]
    for label in SIZES:
        mean = estimates[label].mean(0)
        standard_error = estimates[label].std(0) / math.sqrt(n)
        deviation = (mean - exact[label].double()).abs()
        # A component with (numerically) zero spread must match exactly.
        assert torch.all(deviation <= sigmas * standard_error + 1e-9), (label, mean, exact[label], standard_error)


def total_variance(estimates):
    return sum(float(e.var(0).sum()) for e in estimates.values())


@pytest.mark.parametrize("baseline_decay", [0.0, 0.9])
def test_score_function_is_unbiased_before_and_after_the_baseline_adapts(baseline_decay):
    torch.manual_seed(1)
    distribution, table, loss_fn = make_problem()
    exact = exact_gradient(distribution, table)
    estimator = ScoreFunction(baseline_decay=baseline_decay)
    assert_unbiased(collect(estimator, distribution, loss_fn, 4000), exact)  # from the first (zero) baseline on
    assert estimator.baseline is not None and 1.0 < estimator.baseline < 3.0
    assert_unbiased(collect(estimator, distribution, loss_fn, 4000), exact)


def test_score_function_baseline_is_a_moving_average_of_past_losses():
    distribution, _, _ = make_problem()
    losses = iter([2.0, 4.0, 8.0])
    estimator = ScoreFunction(baseline_decay=0.5)
    estimator.estimate(distribution, lambda arch: next(losses))
    assert estimator.diagnostics["baseline"] == 0.0 and estimator.baseline == 2.0
    estimator.estimate(distribution, lambda arch: next(losses))
    assert estimator.diagnostics["baseline"] == 2.0 and estimator.baseline == 3.0
    estimator.estimate(distribution, lambda arch: next(losses))
    assert estimator.baseline == 5.5


def test_score_function_estimate_is_advantage_times_score():
    distribution, table, loss_fn = make_problem()
    estimator = ScoreFunction(baseline_decay=0.5)
    estimator.baseline = 1.5
    torch.manual_seed(3)
    grads = estimator.estimate(distribution, loss_fn)
    torch.manual_seed(3)
    arch = distribution.sample()
    score = torch.autograd.grad(distribution.log_prob(arch), [distribution.logits[k] for k in SIZES])
    for label, s in zip(SIZES, score):
        torch.testing.assert_close(grads[label], (loss_fn(arch) - 1.5) * s)


def test_relax_is_unbiased_while_the_surrogate_adapts():
    torch.manual_seed(2)
    distribution, table, loss_fn = make_problem()
    exact = exact_gradient(distribution, table)
    estimator = Relax(surrogate_width=16, surrogate_lr=1e-2, temperature=0.5)
    collect(estimator, distribution, loss_fn, 300)  # let the surrogate adapt
    adapted = collect(estimator, distribution, loss_fn, 3000)
    assert_unbiased(adapted, exact)
    assert estimator.step == 3300


@pytest.mark.parametrize("surrogate_init", ["zero", "random"])
def test_relax_is_unbiased_from_either_initial_surrogate(surrogate_init):
    torch.manual_seed(8)
    distribution, table, loss_fn = make_problem()
    exact = exact_gradient(distribution, table)
    estimator = Relax(surrogate_width=16, surrogate_lr=1e-2, surrogate_init=surrogate_init)
    assert_unbiased(collect(estimator, distribution, loss_fn, 3000), exact)


def test_a_zero_surrogate_makes_the_first_estimate_the_score_functions():
    distribution, _, loss_fn = make_problem()
    probs = distribution.probs()
    first, drawn = {}, []
    for init in ("zero", "random"):
        torch.manual_seed(9)
        generator = torch.Generator().manual_seed(9)
        estimator = Relax(surrogate_width=8, surrogate_init=init)
        first[init] = estimator.estimate(distribution, lambda arch: drawn.append(arch) or loss_fn(arch), generator)
    assert drawn[0] == drawn[1]  # the same draw for both
    loss, score_function = loss_fn(drawn[0]), {}
    for label in SIZES:
        score = -probs[label].detach()
        score[drawn[0][label]] += 1.0
        score_function[label] = loss * score
        torch.testing.assert_close(first["zero"][label], score_function[label])
    assert any(not torch.allclose(first["random"][label], score_function[label]) for label in SIZES)


@pytest.mark.parametrize("options", [{"baseline_decay": 0.9}, {"baseline_decay": 0.9, "surrogate_steps": 3},
                                     {"baseline_decay": 0.9, "surrogate_objective": "regression"},
                                     {"baseline_decay": 0.9, "learn_temperature": True},
                                     {"baseline_decay": 0.9, "conditional_samples": 4},
                                     {"baseline_decay": 0.9, "logits_input": True},
                                     {"baseline_decay": 0.9, "baseline_fade_steps": 1000}],
                         ids=["baseline", "three-surrogate-steps", "regression", "learnt-temperature",
                              "four-conditional-samples", "logits-input", "fading-baseline"])
def test_relax_variants_are_unbiased(options):
    torch.manual_seed(6)
    distribution, table, loss_fn = make_problem()
    exact = exact_gradient(distribution, table)
    estimator = Relax(surrogate_width=16, surrogate_lr=1e-2, **options)
    collect(estimator, distribution, loss_fn, 200)
    assert estimator.baseline is not None and 1.0 < estimator.baseline < 3.0
    assert_unbiased(collect(estimator, distribution, loss_fn, 3000), exact)


def test_relax_baseline_is_a_moving_average_of_past_losses_and_resumes():
    distribution, _, _ = make_problem()
    losses = iter([2.0, 4.0, 8.0])
    estimator = Relax(surrogate_width=4, baseline_decay=0.5, baseline_fade_steps=None)
    estimator.estimate(distribution, lambda arch: next(losses))
    assert estimator.diagnostics["baseline"] == 0.0 and estimator.baseline == 2.0
    estimator.estimate(distribution, lambda arch: next(losses))
    assert estimator.diagnostics["baseline"] == 2.0 and estimator.baseline == 3.0
    copy = Relax(surrogate_width=4, baseline_decay=0.5)
    copy.load_state_dict(estimator.state_dict())
    assert copy.baseline == 3.0
    old = {key: value for key, value in estimator.state_dict().items() if key != "baseline"}  # before baselines
    copy.load_state_dict(old)
    assert copy.baseline is None


def test_relax_baseline_fades_out_over_its_steps():
    distribution, _, _ = make_problem()
    losses = iter([2.0, 4.0, 8.0, 16.0])
    estimator = Relax(surrogate_width=4, baseline_decay=0.5, baseline_fade_steps=2)
    used = []
    for _ in range(4):
        estimator.estimate(distribution, lambda arch: next(losses))
        used.append(estimator.diagnostics["baseline"])
    assert used == [0.0, 1.0, 0.0, 0.0]  # none yet; 2.0 at half weight; 3.0 and 5.5 at none
    assert estimator.baseline == 10.75  # still tracked
    assert Relax().baseline_decay == 0.9 and Relax().baseline_fade_steps == 30


def test_relax_learns_its_temperature_and_a_checkpoint_carries_it():
    torch.manual_seed(7)
    distribution, _, loss_fn = make_problem()
    estimator = Relax(surrogate_width=16, surrogate_lr=1e-2, temperature=0.5, learn_temperature=True)
    collect(estimator, distribution, loss_fn, 200)
    learnt = estimator.diagnostics["temperature"]
    assert learnt != pytest.approx(0.5, abs=1e-3)  # the variance objective moved it
    copy = Relax(surrogate_width=16, surrogate_lr=1e-2, temperature=0.5, learn_temperature=True)
    copy.load_state_dict(estimator.state_dict())
    copy.estimate(distribution, loss_fn)
    assert copy.diagnostics["temperature"] == pytest.approx(float(estimator.log_temperature.detach().exp()))
    fixed = Relax(surrogate_width=16, surrogate_lr=1e-2, temperature=0.5)
    collect(fixed, distribution, loss_fn, 20)
    assert fixed.diagnostics["temperature"] == 0.5  # not learnt unless asked


def test_one_conditional_sample_is_the_original_estimator():
    distribution, _, loss_fn = make_problem()
    estimates = []
    for options in ({}, {"conditional_samples": 1}):
        torch.manual_seed(3)
        estimates.append(collect(Relax(surrogate_width=8, **options), distribution, loss_fn, 20))
    assert all(torch.equal(estimates[0][label], estimates[1][label]) for label in SIZES)


def test_relax_surrogate_reads_the_logits_when_asked():
    torch.manual_seed(4)
    distribution, _, loss_fn = make_problem()
    with torch.no_grad():
        distribution.logits["a"][0] = -80.0  # a dropped candidate: read as -10, not -80
    size = sum(SIZES.values())
    estimator = Relax(surrogate_width=8, logits_input=True)
    estimator.estimate(distribution, loss_fn)
    assert estimator.surrogate[0].in_features == 2 * size
    inputs = []
    estimator.surrogate[0].register_forward_hook(lambda module, args, output: inputs.append(args[0]))
    estimator.estimate(distribution, loss_fn)
    expected = torch.cat([torch.log_softmax(distribution.logits[label].detach(), 0) for label in SIZES]).clamp_min(-10)
    assert len(inputs) == 2  # the relaxed sample and the conditional one(s)
    for read in inputs:
        torch.testing.assert_close(read.reshape(-1, 2 * size)[:, size:], expected.expand(len(read.reshape(-1, 2 * size)), -1))
    assert expected.min() == -10.0
    copy = Relax(surrogate_width=8, logits_input=True)
    copy.load_state_dict(estimator.state_dict())
    assert copy.surrogate[0].in_features == 2 * size
    assert Relax(surrogate_width=8).logits_input is False


@pytest.mark.parametrize("options, message", [
    ({"logits_input": 1}, "logits_input: expected True or False"),
    ({"surrogate_init": "normal"}, "surrogate_init: expected one of zero, random"),
    ({"baseline_fade_steps": 0}, "baseline_fade_steps: expected an integer >= 1 or None"),
    ({"learn_temperature": "yes"}, "learn_temperature: expected True or False"),
    ({"learn_temperature": True, "temperature": Exponential(1.0, 0.1, steps=10)}, "give a number, not a schedule"),
    ({"conditional_samples": 0}, "conditional_samples: expected an integer >= 1"),
    ({"learn_temperature": True, "temperature_lr": 0.0}, "temperature_lr")])
def test_bad_relax_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        Relax(**options)


def test_relax_surrogate_training_reduces_variance():
    torch.manual_seed(4)
    distribution, table, loss_fn = make_problem()
    sf = collect(ScoreFunction(baseline_decay=0.0), distribution, loss_fn, 2000)
    estimator = Relax(surrogate_width=32, surrogate_lr=1e-2, temperature=0.5)
    collect(estimator, distribution, loss_fn, 1500)
    adapted = collect(estimator, distribution, loss_fn, 2000)
    # Against REINFORCE whose baseline is only the previous loss, the trained control variate must help.
    assert total_variance(adapted) < total_variance(sf)


def test_relax_with_an_annealed_temperature_is_unbiased():
    torch.manual_seed(5)
    distribution, table, loss_fn = make_problem()
    exact = exact_gradient(distribution, table)
    estimator = Relax(surrogate_width=16, surrogate_lr=1e-2, temperature=Exponential(1.0, 0.1, steps=3000))
    estimates = collect(estimator, distribution, loss_fn, 3000)
    assert_unbiased(estimates, exact)
    assert estimator.diagnostics["temperature"] == pytest.approx(0.1, rel=1e-3)


@pytest.mark.parametrize("labels_per_step", [None, 1, 2])
def test_ram_is_unbiased(labels_per_step):
    torch.manual_seed(6)
    distribution, table, loss_fn = make_problem()
    exact = exact_gradient(distribution, table)
    estimator = Ram(labels_per_step=labels_per_step)
    estimates = collect(estimator, distribution, loss_fn, 3000)
    assert_unbiased(estimates, exact)
    evaluations = estimator.diagnostics["forward_evaluations"]
    if labels_per_step is None:
        assert evaluations == 1 + sum(size - 1 for size in SIZES.values())
    else:
        assert 1 + labels_per_step <= evaluations <= 1 + labels_per_step * (max(SIZES.values()) - 1)


def test_ram_variance_is_below_score_function_variance():
    torch.manual_seed(7)
    distribution, table, loss_fn = make_problem()
    sf_estimator = ScoreFunction(baseline_decay=0.9)
    collect(sf_estimator, distribution, loss_fn, 500)  # a well-adapted baseline: SF at its best
    sf = collect(sf_estimator, distribution, loss_fn, 3000)
    ram = collect(Ram(), distribution, loss_fn, 3000)
    assert total_variance(ram) < 0.5 * total_variance(sf)


def test_ram_is_exact_when_the_loss_is_additive():
    # With L(Z) = sum_k f_k(Z_k), marginalising one label at a time is the exact gradient, every sample.
    distribution, _, _ = make_problem()
    f = {label: torch.linspace(0.0, 1.0, size) ** 2 for label, size in SIZES.items()}
    table = sum(torch.meshgrid(*(f[k].double() for k in SIZES), indexing="ij"))
    exact = exact_gradient(distribution, table)
    torch.manual_seed(8)
    for _ in range(5):
        grads = Ram().estimate(distribution, lambda arch: sum(float(f[k][arch[k]]) for k in SIZES))
        for label in SIZES:
            torch.testing.assert_close(grads[label].double(), exact[label].double(), rtol=1e-5, atol=1e-6)


def test_estimators_accept_tensor_losses_and_reject_other_types():
    distribution, _, _ = make_problem()
    for estimator in (ScoreFunction(), Relax(surrogate_width=4), Ram()):
        grads = estimator.estimate(distribution, lambda arch: torch.tensor(1.0))
        assert {k: tuple(v.shape) for k, v in grads.items()} == {k: (s,) for k, s in SIZES.items()}
        with pytest.raises(TypeError, match="loss_fn"):
            estimator.estimate(distribution, lambda arch: "bad")


def test_state_dict_round_trip_restores_baseline_and_surrogate():
    torch.manual_seed(9)
    distribution, _, loss_fn = make_problem()
    sf = ScoreFunction(baseline_decay=0.8)
    collect(sf, distribution, loss_fn, 10)
    restored = ScoreFunction(baseline_decay=0.8)
    restored.load_state_dict(sf.state_dict())
    assert restored.baseline == sf.baseline

    relax = Relax(surrogate_width=8, temperature=Exponential(1.0, 0.5, steps=100))
    collect(relax, distribution, loss_fn, 10)
    copy = Relax(surrogate_width=8, temperature=Exponential(1.0, 0.5, steps=100))
    copy.load_state_dict(relax.state_dict())
    assert copy.step == relax.step == 10
    torch.manual_seed(10)
    a = relax.estimate(distribution, loss_fn)
    torch.manual_seed(10)
    b = copy.estimate(distribution, loss_fn)
    for label in SIZES:
        torch.testing.assert_close(a[label], b[label])


@pytest.mark.parametrize("factory, message", [
    (lambda: ScoreFunction(baseline_decay=1.0), "baseline_decay"),
    (lambda: ScoreFunction(baseline_decay=-0.1), "baseline_decay"),
    (lambda: Relax(surrogate_lr=0.0), "surrogate_lr"),
    (lambda: Relax(surrogate_lr=-1e-3), "surrogate_lr"),
    (lambda: Relax(temperature=0.0), "temperature"),
    (lambda: Relax(temperature=-1.0), "temperature"),
    (lambda: Relax(surrogate_width=0), "surrogate_width"),
    (lambda: Relax(baseline_decay=1.0), "baseline_decay"),
    (lambda: Relax(surrogate_steps=0), "surrogate_steps"),
    (lambda: Relax(surrogate_objective="mse"), "surrogate_objective"),
    (lambda: Exponential(1.0, 0.0, steps=10), "temperature final"),
    (lambda: Ram(labels_per_step=0), "labels_per_step"),
    (lambda: Ram(labels_per_step=-2), "labels_per_step"),
])
def test_bad_hyperparameters_name_the_parameter(factory, message):
    with pytest.raises(ValueError, match=message):
        factory()


@pytest.mark.parametrize("samples", [2, 4])
def test_leave_one_out_score_function_is_unbiased_and_lower_variance_per_step(samples):
    torch.manual_seed(3)
    distribution, table, loss_fn = make_problem()
    exact = exact_gradient(distribution, table)
    leave_one_out = collect(ScoreFunction(baseline_decay=0.0, samples=samples), distribution, loss_fn, 4000)
    assert_unbiased(leave_one_out, exact)
    # More samples a step, less variance: k leave-one-out samples beat one sample by about a factor k/2 or more.
    single = collect(ScoreFunction(baseline_decay=0.0), distribution, loss_fn, 4000)
    assert total_variance(leave_one_out) < total_variance(single) / (samples / 2) * 1.1


def test_leave_one_out_baselines_are_the_other_samples_mean():
    distribution = ArchitectureDistribution({"op": ["a", "b"]})
    losses = iter([1.0, 2.0, 6.0])
    estimator = ScoreFunction(samples=3)
    seen = []

    def loss_fn(architecture):
        seen.append(architecture["op"])
        return next(losses)

    gradient = estimator.estimate(distribution, loss_fn, generator=torch.Generator().manual_seed(0))
    baselines = [(2 + 6) / 2, (1 + 6) / 2, (1 + 2) / 2]
    expected = torch.zeros(2)
    for op, loss, baseline in zip(seen, (1.0, 2.0, 6.0), baselines):
        score = torch.tensor([0.5, 0.5]).neg()
        score[["a", "b"].index(op)] += 1
        expected += (loss - baseline) / 3 * score
    assert torch.allclose(gradient["op"], expected)
    assert estimator.diagnostics["forward_evaluations"] == 3.0


def test_score_function_refuses_fewer_than_one_sample():
    with pytest.raises(ValueError, match="samples: expected an integer >= 1"):
        ScoreFunction(samples=0)
