"""The search loop's settings: one field each, its check, and what each kind of method runs with."""

import dataclasses
import math

import optuna
import pytest

from nas_estimators import SF, recipe, settings
from nas_estimators.compare import CompareConfig
from nas_estimators.search import SearchConfig, check_config
from nas_estimators.settings import LoopSettings


def test_unset_settings_resolve_to_the_recipe_for_ours_and_to_nnis_own_way_for_nnis():
    ours = LoopSettings().resolved(epochs=24)
    assert (ours.warmup_epochs, ours.freeze_weights, ours.rescore_top_k) == (20, True, recipe.RESCORE_TOP_K)
    assert (ours.arc_learning_rate, ours.uniform_weight_paths) == (recipe.ARC_LEARNING_RATE, recipe.UNIFORM_WEIGHT_PATHS)
    nnis = LoopSettings().resolved(epochs=24, ours=False)
    assert (nnis.warmup_epochs, nnis.freeze_weights, nnis.rescore_top_k) == (0, False, 0)
    assert LoopSettings(warmup_epochs=3, freeze_weights=False).resolved(epochs=24) \
        == dataclasses.replace(ours, warmup_epochs=3, freeze_weights=False)  # given values stay
    assert LoopSettings().resolved().warmup_epochs is None  # no epochs: the trainer's decide


@pytest.mark.parametrize("name, bad, said", [
    ("arc_learning_rate", 0, "a positive number"), ("arc_learning_rate", math.inf, "a positive number"),
    ("warmup_epochs", -1, "an integer >= 0"), ("warmup_epochs", 1.5, "an integer >= 0"),
    ("uniform_weight_paths", 1.5, "a number in [0, 1]"), ("weight_paths", "some", "one of uniform"),
    ("freeze_weights", "yes", "true or false"), ("rescore_top_k", -1, "an integer >= 0"),
    ("rescore_images", 0, "a positive integer"), ("max_bad_steps", True, "an integer >= 0")])
def test_every_setting_refuses_a_bad_value_by_name_in_each_place_that_takes_it(name, bad, said):
    for make in (lambda: LoopSettings(**{name: bad}).check(), lambda: SF(**{name: bad}),
                 lambda: check_config(SearchConfig(**{name: bad}))):
        with pytest.raises(ValueError) as error:
            make()
        assert str(error.value).startswith(f"{name}: expected {said}"), str(error.value)


def test_the_configurations_extend_the_settings_with_the_same_defaults():
    for config in (SearchConfig(), CompareConfig()):
        assert config.loop_settings() == dataclasses.replace(LoopSettings(), freeze_weights=True,
                                                             rescore_top_k=recipe.RESCORE_TOP_K)
    assert SearchConfig(estimator="nni-darts").loop_settings().freeze_weights is False


def test_what_only_ours_read_is_refused_for_nnis_strategies():
    assert settings.ours_only() == ("freeze_weights", "rescore_top_k")
    with pytest.raises(ValueError, match="rescore_top_k: nni-darts runs as NNI runs it"):
        check_config(SearchConfig(estimator="nni-darts", rescore_top_k=3))
    check_config(SearchConfig(estimator="nni-darts", rescore_top_k=0))  # NNI's own value is allowed


def test_a_run_saved_before_the_settings_existed_ran_the_one_term_search():
    before = settings.before()
    assert before["objective"] == recipe.NNI_OBJECTIVE and before["freeze_weights"] is False
    assert (before["warmup_epochs"], before["uniform_weight_paths"], before["rescore_top_k"]) == (0, 0.0, 0)
    assert set(before) - {"objective"} == {field.name for field in settings.loop_fields()}


def test_tune_draws_the_logits_learning_rate_from_its_fields_range():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    suggest = settings.tuned()["arc_learning_rate"]
    drawn = [suggest(study.ask(), "arc_learning_rate") for _ in range(200)]
    assert 1e-4 <= min(drawn) < 3e-4 and 1e-2 < max(drawn) <= 3e-2  # log-uniform over [1e-4, 3e-2]
    assert sum(value < 1.7e-3 for value in drawn) == pytest.approx(100, abs=25)  # half below the log midpoint


def test_the_strategies_take_the_old_defaults_as_the_readme_says():
    strategy = SF(**settings.before())
    assert strategy.objective.weights() == recipe.NNI_OBJECTIVE
    assert (strategy.settings.arc_learning_rate, strategy.settings.warmup_epochs) == (3e-3, 0)
    assert (strategy.settings.freeze_weights, strategy.settings.rescore_top_k) == (False, 0)
    assert settings.before(CompareConfig)["batch_norm"] == "nni"  # what comparisons recorded before it existed
