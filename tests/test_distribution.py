import itertools
import math

import pytest
import torch

from nas_estimators import ArchitectureDistribution

CHOICES = {"a": ["x", "y", "z"], "b": [1, 2, 3, 4], "c": ["p", "q"]}


def make(seed=0, choices=CHOICES):
    generator = torch.Generator().manual_seed(seed)
    distribution = ArchitectureDistribution(choices)
    with torch.no_grad():
        for label, values in choices.items():
            distribution.logits[label].copy_(torch.randn(len(values), generator=generator) * 1.5)
    return distribution


def test_logits_are_one_parameter_per_label_in_the_given_order():
    distribution = ArchitectureDistribution(CHOICES)
    assert list(distribution.logits) == ["a", "b", "c"]
    for label, values in CHOICES.items():
        logit = distribution.logits[label]
        assert isinstance(logit, torch.nn.Parameter) and logit.shape == (len(values),)
    assert distribution.values == CHOICES
    assert len(list(distribution.parameters())) == 3
    with pytest.raises(KeyError, match="unknown label"):
        distribution.logits["nope"]


def test_sampling_frequencies_match_probabilities():
    distribution = make()
    generator = torch.Generator().manual_seed(1)
    n = 20000
    counts = {label: torch.zeros(len(values)) for label, values in CHOICES.items()}
    for _ in range(n):
        for label, index in distribution.sample_indices(generator).items():
            counts[label][index] += 1
    for label, probs in distribution.probs().items():
        frequency = counts[label] / n
        standard_error = torch.sqrt(probs * (1 - probs) / n)
        assert torch.all((frequency - probs).abs() <= 4 * standard_error + 1e-12), (label, frequency, probs)


def test_samples_are_architectures_of_candidate_values():
    distribution = make()
    torch.manual_seed(0)
    for _ in range(50):
        sample = distribution.sample()
        assert list(sample) == list(CHOICES)
        assert all(sample[label] in CHOICES[label] for label in CHOICES)


def test_log_prob_entropy_and_mode_are_exact():
    distribution = make()
    probs = {label: torch.softmax(distribution.logits[label].detach().double(), 0) for label in CHOICES}
    total, entropy = 0.0, 0.0
    for values in itertools.product(*CHOICES.values()):
        architecture = dict(zip(CHOICES, values))
        expected = math.prod(float(probs[k][CHOICES[k].index(v)]) for k, v in architecture.items())
        assert float(distribution.log_prob(architecture).detach()) == pytest.approx(math.log(expected), abs=1e-5)
        total += expected
        entropy -= expected * math.log(expected)
    assert total == pytest.approx(1.0)
    assert float(distribution.entropy().detach()) == pytest.approx(entropy, abs=1e-5)
    mode = distribution.mode()
    assert mode == {k: CHOICES[k][int(torch.argmax(p))] for k, p in probs.items()}


def test_log_prob_and_entropy_are_differentiable():
    distribution = make()
    (distribution.log_prob({"a": "y", "b": 3, "c": "p"}) + distribution.entropy()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in distribution.parameters())


def test_uniform_distribution_and_tied_mode_take_the_first_value():
    distribution = ArchitectureDistribution(CHOICES)
    assert distribution.mode() == {"a": "x", "b": 1, "c": "p"}
    assert float(distribution.entropy().detach()) == pytest.approx(math.log(24), abs=1e-6)
    assert distribution.num_architectures == 24


def test_wrapped_labels_use_one_element_lists():
    distribution = ArchitectureDistribution({"op": ["conv", "pool"], "input": [0, 1, 2]}, wrapped=["input"])
    torch.manual_seed(0)
    sample = distribution.sample()
    assert isinstance(sample["input"], list) and len(sample["input"]) == 1
    assert float(distribution.log_prob({"op": "conv", "input": [2]}).detach()) == pytest.approx(math.log(1 / 6))
    with pytest.raises(ValueError, match="one-element list"):
        distribution.log_prob({"op": "conv", "input": 2})


def test_bad_architectures_are_clear_errors():
    distribution = make()
    with pytest.raises(ValueError, match="not a candidate"):
        distribution.log_prob({"a": "w", "b": 1, "c": "p"})
    with pytest.raises(KeyError, match="missing labels"):
        distribution.log_prob({"a": "x"})
    with pytest.raises(ValueError, match="at least one"):
        ArchitectureDistribution({"a": []})


def brute_force_ranking(distribution):
    rows = []
    for values in itertools.product(*distribution.values.values()):
        architecture = dict(zip(distribution.labels, values))
        rows.append((float(distribution.log_prob(architecture).detach().exp()), architecture))
    return sorted(rows, key=lambda row: -row[0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_top_k_matches_brute_force(seed):
    distribution = make(seed)
    expected = brute_force_ranking(distribution)
    top = distribution.top_k(24)
    assert [p for _, p in top] == pytest.approx([p for p, _ in expected], rel=1e-5)
    assert all(top[i][1] >= top[i + 1][1] - 1e-12 for i in range(23))
    assert sum(p for _, p in top) == pytest.approx(1.0, rel=1e-5)
    # Strictly better architectures come first whatever the ties.
    for (architecture, p), (q, expected_architecture) in zip(distribution.top_k(5), expected[:5]):
        assert p == pytest.approx(q, rel=1e-5)
        assert float(distribution.log_prob(architecture).detach().exp()) == pytest.approx(p, rel=1e-5)


def test_top_k_with_ties_returns_every_tied_architecture_once():
    distribution = ArchitectureDistribution({"a": [0, 1], "b": [0, 1, 2]})
    with torch.no_grad():
        distribution.logits["b"].copy_(torch.tensor([1.0, 1.0, 0.0]))
    top = distribution.top_k(6)
    assert len({str(a) for a, _ in top}) == 6
    assert [round(p, 6) for _, p in top[:4]] == [round(p, 6) for p in [top[0][1]] * 4]
    assert {a["b"] for a, _ in top[:4]} == {0, 1}


def test_top_k_is_fast_on_the_darts_space_size():
    # 32 labels as in NNI's DARTS space; 100 architectures in well under a second.
    import time

    choices = {f"l{i}": list(range(7 if i % 2 == 0 else 2 + (i % 4))) for i in range(32)}
    distribution = make(3, choices)
    started = time.perf_counter()
    top = distribution.top_k(100)
    assert time.perf_counter() - started < 1.0
    assert len(top) == 100 and all(top[i][1] >= top[i + 1][1] for i in range(99))


@pytest.mark.parametrize("k", [0, -1, 25, 2.5, True])
def test_top_k_rejects_bad_k(k):
    with pytest.raises(ValueError, match="k:"):
        make().top_k(k)


def test_the_old_name_of_probs_by_value_still_answers_with_a_deprecation_warning():
    distribution = ArchitectureDistribution({"a": [1, 2, 3]})
    with pytest.warns(DeprecationWarning, match="probs_by_value"):
        assert distribution.probabilities() == distribution.probs_by_value()
