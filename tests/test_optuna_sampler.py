"""EstimatorSampler: the estimators' own updates through Optuna, one distribution for every worker."""

import copy
import os
import subprocess
import sys
import textwrap

import optuna
import pytest
import torch

from nas_estimators.lightning import arc_update
from nas_estimators.optuna_sampler import EstimatorSampler

optuna.logging.set_verbosity(optuna.logging.WARNING)
CHOICES = {"a": ["x", "y", "z"], "b": [0, 1, 2, 3], "c": ["p", "q"]}


def value(params):
    return ({"x": 0.3, "y": 0.0, "z": 0.6}[params["a"]] + [0.5, 0.2, 0.0, 0.9][params["b"]]
            + {"p": 0.1, "q": 0.0}[params["c"]] + 0.3 * (params["a"] == "y") * (params["b"] == 2))  # min: y, 1, q


def objective(trial):
    return value({name: trial.suggest_categorical(name, choices) for name, choices in CHOICES.items()})


@pytest.mark.parametrize("name", ["sf", "relax"])
def test_each_update_is_the_estimators_own(name):
    """Ask/tell with the sampler against its estimator driven directly with the trials' seeds: the same logits.

    (The estimators' unbiasedness against the exact gradient is tests/test_estimators.py's.)"""
    sampler = EstimatorSampler(name, seed=3, redraws=0)  # every trial the estimator's own draw
    study = optuna.create_study(sampler=sampler)
    study.optimize(objective, n_trials=1)  # the first trial shows the space (the independent sampler draws it)
    trial = study.ask()
    trial.relative_params  # the sampler applies the first trial, then draws this one
    distribution, optimizer, estimator = copy.deepcopy((sampler.distribution, sampler._optimizer, sampler._estimator))
    study.tell(trial, objective(trial))
    for _ in range(30):
        trial = study.ask()
        study.tell(trial, objective(trial))
    sampler.sync(study)
    for trial in study.trials[1:]:
        params = {n: CHOICES[n].index(trial.params[n]) for n in sorted(CHOICES)}
        drawn = []
        gradients = estimator.estimate(distribution, lambda arch: drawn.append(arch) or trial.value,
                                       generator=torch.Generator().manual_seed(trial.system_attrs["nas_estimators:seed"]))
        assert drawn == [params]  # the estimator's own draw is the trial's
        arc_update(distribution, optimizer, gradients)
    for label in distribution.labels:
        assert torch.equal(sampler.distribution.logits[label], distribution.logits[label]), label


def test_it_learns_the_best_choices_and_shows_its_probabilities():
    sampler = EstimatorSampler("sf", seed=0)
    study = optuna.create_study(sampler=sampler)
    study.optimize(objective, n_trials=400)
    assert study.best_value == pytest.approx(0.2)
    probabilities = sampler.probabilities()
    assert max(probabilities["a"], key=probabilities["a"].get) == "y"
    assert max(probabilities["b"], key=probabilities["b"].get) == 1
    assert "nas_estimators:probabilities" in study.trials[-1].user_attrs


def test_maximising_learns_the_other_end():
    sampler = EstimatorSampler("sf", seed=0)
    study = optuna.create_study(sampler=sampler, direction="maximize")
    study.optimize(objective, n_trials=150)
    probabilities = sampler.probabilities()
    assert max(probabilities["b"], key=probabilities["b"].get) == 3


def test_a_restarted_worker_continues_from_the_same_distribution(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    first = EstimatorSampler("sf", seed=1)
    study = optuna.create_study(storage=storage, study_name="s", sampler=first)
    study.optimize(objective, n_trials=25)
    restarted = EstimatorSampler("sf", seed=1)
    again = optuna.load_study(storage=storage, study_name="s", sampler=restarted)
    assert restarted.sync(again) == first.sync(study) != {}
    again.optimize(objective, n_trials=5)
    assert len(again.trials) == 30


def test_ram_groups_are_its_evaluations_and_each_update_is_its_own():
    """RAM's trials come in groups: a draw and one enqueued trial for each other value of one label; the
    updates equal the estimator's own, driven directly with the leaders' seeds and the groups' values."""
    sampler = EstimatorSampler("ram", seed=5)
    study = optuna.create_study(sampler=sampler)
    study.optimize(objective, n_trials=1)
    distribution = optimizer = estimator = None
    for _ in range(40):
        trial = study.ask()
        if distribution is None:
            trial.relative_params  # the sampler applies the first trial, then draws this one
            distribution, optimizer, estimator = copy.deepcopy((sampler.distribution, sampler._optimizer,
                                                                sampler._estimator))
        study.tell(trial, objective(trial))
    sampler.sync(study)
    leaders = [t for t in study.trials if "nas_estimators:group_size" in t.system_attrs]
    applied = 0
    for leader in leaders:
        members = [leader] + [t for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
                              if t.user_attrs.get("nas_estimators:group") == leader.number]
        if len(members) < leader.system_attrs["nas_estimators:group_size"]:
            continue  # the last group may still be running
        varied = [n for n in CHOICES if len({t.params[n] for t in members}) > 1]
        assert len(varied) == 1 and sorted(t.params[varied[0]] for t in members) == sorted(CHOICES[varied[0]])
        losses = {tuple(t.params[n] for n in sorted(CHOICES)): t.value for t in members}
        gradients = estimator.estimate(
            distribution, lambda arch: losses[tuple(CHOICES[n][arch[n]] for n in sorted(CHOICES))],
            generator=torch.Generator().manual_seed(leader.system_attrs["nas_estimators:seed"]))
        arc_update(distribution, optimizer, gradients)
        applied += 1
    assert applied >= 10 and applied == sampler._steps
    for label in distribution.labels:
        assert torch.equal(sampler.distribution.logits[label], distribution.logits[label]), label


def test_ram_learns_the_best_choices():
    sampler = EstimatorSampler("ram", seed=0)
    study = optuna.create_study(sampler=sampler)
    study.optimize(objective, n_trials=200)
    assert study.best_value == pytest.approx(0.2)
    probabilities = sampler.probabilities()
    assert [max(probabilities[n], key=probabilities[n].get) for n in ("a", "b", "c")] == ["y", 1, "q"]


WORKER = textwrap.dedent("""
    import json, sys, optuna
    sys.path.insert(0, {tests!r})
    from test_optuna_sampler import objective, storage_of
    from nas_estimators.optuna_sampler import EstimatorSampler
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = EstimatorSampler(sys.argv[2], seed=7)
    study = optuna.load_study(storage=storage_of(sys.argv[1]), study_name="shared", sampler=sampler)
    study.optimize(objective, n_trials=20)
""")


def storage_of(path):
    """SQLite for SF; Optuna's journal file for RAM: two processes can pop the same enqueued trial from
    SQLite, which has no row locks (optuna/optuna#4621), and RAM's groups are enqueued trials."""
    if path.endswith(".db"):
        return f"sqlite:///{path}"
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(path))


@pytest.mark.parametrize("name", ["sf", "ram"])
def test_two_workers_on_one_storage_share_one_distribution(tmp_path, name):
    path = str(tmp_path / ("study.db" if name == "sf" else "study.journal"))
    optuna.create_study(storage=storage_of(path), study_name="shared")
    script = WORKER.format(tests=os.path.dirname(__file__))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    workers = [subprocess.Popen([sys.executable, "-c", script, path, name], env=env, stderr=subprocess.PIPE,
                                text=True) for _ in range(2)]
    for worker in workers:
        assert worker.wait(timeout=600) == 0, worker.stderr.read()[-2000:]
    study = optuna.load_study(storage=storage_of(path), study_name="shared")
    # RAM's last groups may leave enqueued values waiting for the next worker
    assert len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 40
    if name == "sf":  # all but the first draws are the sampler's (redrawn ones have no replay seed)
        assert sum("nas_estimators:updates" in t.system_attrs for t in study.trials) >= 38
    else:  # RAM's: its draws and the enqueued values of their groups
        assert sum("nas_estimators:updates" in t.system_attrs or "nas_estimators:group" in t.user_attrs
                   for t in study.trials) >= 38
    views = []
    for _ in range(2):  # any worker, started now, replays the same trials to the same logits
        views.append(EstimatorSampler(name, seed=7).sync(study))
    assert views[0] == views[1] != {}
    uniform = {name: {choice: pytest.approx(1 / len(choices)) for choice in choices} for name, choices in CHOICES.items()}
    assert views[0] != uniform


def test_other_parameters_go_to_the_independent_sampler():
    class Counting(optuna.samplers.RandomSampler):
        calls: list = []

        def sample_independent(self, study, trial, name, distribution):
            Counting.calls.append(name)
            return super().sample_independent(study, trial, name, distribution)

    sampler = EstimatorSampler("sf", seed=0, independent_sampler=Counting(seed=0))
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: objective(t) + t.suggest_float("lr", 1e-3, 1.0, log=True), n_trials=10)
    assert Counting.calls.count("lr") == 10  # every trial's float
    assert Counting.calls.count("a") == 1  # the categoricals only before the space was known


@pytest.mark.parametrize("arguments, message", [
    ({"estimator": "bogus"}, "estimator: expected one of sf, relax, ram"),
    ({"learning_rate": 0}, "learning_rate: expected a positive number"),
    ({"seed": 1.5}, "seed: expected an integer or None"),
    ({"estimator_options": {"surrogate_lr": 1e-3}}, "estimator_options: unknown surrogate_lr for sf"),
    ({"estimator_options": {"baseline_decay": 2.0}}, "baseline_decay"),
    ({"redraws": -1}, "redraws: expected an integer >= 0"),
    ({"redraws": True}, "redraws: expected an integer >= 0")])
def test_bad_arguments_are_one_line_errors(arguments, message):
    with pytest.raises(ValueError, match=message) as error:
        EstimatorSampler(**arguments)
    assert "\n" not in str(error.value)


def test_redraws_try_the_configurations_the_study_does_not_hold_yet():
    choices = ["a", "b", "c", "d", "e"]

    def run(redraws):
        sampler = EstimatorSampler("sf", seed=3, learning_rate=1.0, redraws=redraws)
        study = optuna.create_study(sampler=sampler)
        study.optimize(lambda t: float(choices.index(t.suggest_categorical("x", choices))), n_trials=5)
        return study, sampler

    settled, _ = run(0)
    assert len({t.params["x"] for t in settled.trials}) < 5  # it repeats what it has learnt to like
    study, sampler = run(100)
    assert sorted(t.params["x"] for t in study.trials) == choices  # each once
    redrawn = [t for t in study.trials[1:] if "nas_estimators:seed" not in t.system_attrs]
    assert redrawn  # those were not the estimator's own draws: no replay seed recorded ...
    probabilities = sampler.sync(study)["x"]
    assert min(probabilities, key=probabilities.get) == "e"  # ... yet each one taught the distribution
    study.optimize(lambda t: float(choices.index(t.suggest_categorical("x", choices))), n_trials=25)
    probabilities = sampler.sync(study)["x"]
    assert max(probabilities, key=probabilities.get) == "a"
