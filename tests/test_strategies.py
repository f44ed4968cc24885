"""The strategies end to end on tiny versions of NNI's hub spaces, inside NasExperiment and driven directly."""

import math
import warnings

import pytest
import torch

import nas_estimators
from nas_estimators import _nni

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from nni.nas.evaluator.pytorch import Classification, DataLoader
    from nni.nas.experiment import NasExperiment
    from nni.nas.hub.pytorch import DARTS, NasBench201


def tiny_space(name):
    if name == "darts":
        return DARTS(width=4, num_cells=3, dataset="cifar")
    return NasBench201(stem_out_channels=4, num_modules_per_stack=1)


def tiny_evaluator(epochs=2, callbacks=()):
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(48, 3, 8, 8, generator=generator)
    labels = torch.randint(0, 10, (48,), generator=generator)
    dataset = torch.utils.data.TensorDataset(images, labels)
    return Classification(
        train_dataloaders=DataLoader(dataset, batch_size=16), val_dataloaders=DataLoader(dataset, batch_size=16),
        max_epochs=epochs, num_classes=10, learning_rate=0.01, enable_progress_bar=False, logger=False,
        enable_checkpointing=False, enable_model_summary=False, callbacks=list(callbacks))


def in_folder(experiment, folder):
    """NNI writes an experiment's logs and checkpoint under ~/nni-experiments unless told where: the test's folder."""
    experiment.config.experiment_working_directory = str(folder)
    return experiment


STRATEGIES = {
    "sf": lambda: nas_estimators.SF(baseline_decay=0.5, arc_learning_rate=0.1),
    "relax": lambda: nas_estimators.RELAX(surrogate_width=8, arc_learning_rate=0.1),
    "ram": lambda: nas_estimators.RAM(labels_per_step=3, arc_learning_rate=0.1),
}


def assert_valid_architecture(architecture, space):
    simplified = space.simplify()
    assert set(architecture) == set(simplified)
    for label, mutable in simplified.items():
        value = architecture[label]
        if isinstance(mutable, _nni.CategoricalMultiple):
            assert isinstance(value, list) and len(value) == 1 and value[0] in mutable.values
        else:
            assert value in mutable.values


def assert_logits_moved(distribution):
    moved = max(float(p.detach().abs().max()) for p in distribution.parameters())
    assert moved > 1e-3


@pytest.mark.parametrize("space_name", ["darts", "nb201"])
@pytest.mark.parametrize("estimator", sorted(STRATEGIES))
def test_strategy_inside_nas_experiment(estimator, space_name, tmp_path):
    torch.manual_seed(0)
    space = tiny_space(space_name)
    strategy = STRATEGIES[estimator]()
    experiment = in_folder(NasExperiment(space, tiny_evaluator(), strategy), tmp_path)
    experiment.run()
    [exported] = experiment.export_top_models(formatter="dict")
    assert_valid_architecture(exported, tiny_space(space_name))
    assert exported == strategy.search_module.export()  # the recipe's: the best re-scored of the most probable
    assert_logits_moved(strategy.distribution)
    top3 = experiment.export_top_models(top_k=3, formatter="dict")
    assert len(top3) == 3 and top3[0] == exported and len({str(a) for a in top3}) == 3
    assert top3 == [row["architecture"] for row in strategy.search_module.rescored[:3]]


def test_without_rescoring_the_strategy_exports_the_most_probable_first(tmp_path):
    torch.manual_seed(0)
    strategy = nas_estimators.SF(rescore_top_k=0)
    experiment = in_folder(NasExperiment(tiny_space("nb201"), tiny_evaluator(), strategy), tmp_path)
    experiment.run()
    top3 = experiment.export_top_models(top_k=3, formatter="dict")
    assert top3[0] == strategy.distribution.mode() and len({str(a) for a in top3}) == 3
    probabilities = [float(strategy.distribution.log_prob(a).detach().exp()) for a in top3]
    assert probabilities == sorted(probabilities, reverse=True)


@pytest.mark.parametrize("space_name", ["darts", "nb201"])
@pytest.mark.parametrize("estimator", sorted(STRATEGIES))
def test_strategy_driven_directly(estimator, space_name):
    torch.manual_seed(1)
    space = tiny_space(space_name)
    strategy = STRATEGIES[estimator]()
    model = strategy.mutate_model(space)
    evaluator = strategy.mutate_evaluator(tiny_evaluator())
    evaluator.evaluate(model)
    module = evaluator.module
    architecture = module.export()
    assert_valid_architecture(architecture, tiny_space(space_name))
    assert_logits_moved(strategy.distribution)
    # The exported dict freezes NNI's model space into a network that runs.
    fixed = tiny_space(space_name).freeze(architecture)
    assert fixed(torch.randn(2, 3, 8, 8)).shape == (2, 10)
    if estimator == "ram":
        assert module.estimator.diagnostics["forward_evaluations"] > 1


def test_weights_step_trains_only_the_sampled_path():
    torch.manual_seed(2)
    space = tiny_space("nb201")
    strategy = nas_estimators.SF()
    model = strategy.mutate_model(space)
    evaluator = strategy.mutate_evaluator(tiny_evaluator(epochs=1))
    module = evaluator.module
    module.set_model(model)
    architecture = {label: "conv_3x3" for label in module.distribution.labels}
    module.apply(architecture)
    loss = module.training_module.training_step((torch.randn(4, 3, 8, 8), torch.randint(0, 10, (4,))), 0)
    loss.backward()
    for name, parameter in model.named_parameters():
        if ".conv_1x1." in name:  # an operation that was not sampled gets no gradient
            assert parameter.grad is None, name
    assert any(p.grad is not None for n, p in model.named_parameters() if ".conv_3x3." in n)


class _NanEstimator(nas_estimators.Estimator):
    name = "nan"

    def estimate(self, distribution, loss_fn, generator=None):
        loss_fn(distribution.sample())
        return {label: torch.full_like(p, math.nan) for label, p in distribution.probs().items()}


def test_non_finite_estimates_never_reach_the_logits():
    torch.manual_seed(3)
    strategy = nas_estimators.EstimatorStrategy(_NanEstimator(), arc_learning_rate=0.1)
    model = strategy.mutate_model(tiny_space("nb201"))
    evaluator = strategy.mutate_evaluator(tiny_evaluator(epochs=1))
    evaluator.evaluate(model)
    assert all(torch.equal(p.detach(), torch.zeros_like(p)) for p in strategy.distribution.parameters())
    assert evaluator.module.skipped_steps == 3


@pytest.mark.parametrize("factory, message", [
    (lambda: nas_estimators.SF(arc_learning_rate=0), "arc_learning_rate"),
    (lambda: nas_estimators.SF(arc_learning_rate=-1e-3), "arc_learning_rate"),
    (lambda: nas_estimators.SF(warmup_epochs=-1), "warmup_epochs"),
    (lambda: nas_estimators.SF(baseline_decay=1.5), "baseline_decay"),
    (lambda: nas_estimators.RELAX(temperature=0), "temperature"),
    (lambda: nas_estimators.RELAX(surrogate_lr=0), "surrogate_lr"),
    (lambda: nas_estimators.RELAX(surrogate_init="normal"), "surrogate_init"),
    (lambda: nas_estimators.RELAX(baseline_fade_steps=0), "baseline_fade_steps"),
    (lambda: nas_estimators.RAM(labels_per_step=0), "labels_per_step"),
    (lambda: nas_estimators.SF(rescore_images=0), "rescore_images: expected a positive integer"),
    (lambda: nas_estimators.SF(rescore_top_k=-1), "rescore_top_k"),
])
def test_strategy_hyperparameters_are_checked(factory, message):
    with pytest.raises(ValueError, match=message):
        factory()


def test_relax_surrogate_start_reaches_the_estimator_from_the_strategy_and_the_registry():
    from nas_estimators import registry

    assert nas_estimators.RELAX().estimator.surrogate_init == "zero"
    assert nas_estimators.RELAX(surrogate_init="random").estimator.surrogate_init == "random"
    spec = registry.get("relax")
    options = {h.name: h.default for h in spec.hyperparameters}
    assert spec.build(options, 10).surrogate_init == "zero"
    assert spec.build({**options, "surrogate_init": "random"}, 10).surrogate_init == "random"


def test_relax_baseline_fade_reaches_the_estimator_from_the_strategy_the_registry_and_the_command_line():
    from nas_estimators import registry
    from nas_estimators.cli import build_parser

    assert nas_estimators.RELAX().estimator.baseline_fade_steps == 30
    assert nas_estimators.RELAX(baseline_fade_steps=None).estimator.baseline_fade_steps is None
    spec = registry.get("relax")
    options = {h.name: h.default for h in spec.hyperparameters}
    assert spec.build({**options, "baseline_fade_steps": 12}, 10).baseline_fade_steps == 12
    parser = build_parser()
    assert parser.parse_args(["search", "--baseline-fade-steps", "never"]).baseline_fade_steps is None
    assert parser.parse_args(["search", "--baseline-fade-steps", "5"]).baseline_fade_steps == 5


def test_other_mutables_are_a_type_error_naming_the_label():
    from nni.mutable import CategoricalMultiple, Numerical

    with pytest.raises(TypeError, match="'width'.*Numerical"):
        nas_estimators.ArchitectureDistribution.from_model_space({"width": Numerical(0, 1, label="width")})
    with pytest.raises(TypeError, match="'inputs'.*n_chosen=2"):
        nas_estimators.ArchitectureDistribution.from_model_space(
            {"inputs": CategoricalMultiple([0, 1, 2], n_chosen=2, label="inputs")})


def test_distribution_from_the_darts_space_matches_its_labels():
    space = tiny_space("darts")
    distribution = nas_estimators.ArchitectureDistribution.from_model_space(space)
    simplified = space.simplify()
    assert distribution.labels == list(simplified)
    assert len(distribution.labels) == 32
    for label, mutable in simplified.items():
        assert distribution.values[label] == list(mutable.values)
    assert {label for label in distribution.labels if "input" in label} == set(distribution.wrapped)


def test_the_strategies_default_to_the_search_recipe_inside_nas_experiment(tmp_path):
    """SF() with no arguments: weights-only warm-up (5/6 of max_epochs) on uniform paths, then the weights stay
    fixed while the logits move on the recipe's objective, and the top five are re-scored at the end."""
    import pytorch_lightning as pl

    from nas_estimators import recipe

    class Watch(pl.Callback):
        def __init__(self):
            self.logits, self.weights, self.uniform_draws = [], [], 0

        def on_train_start(self, trainer, pl_module):
            distribution = pl_module.distribution
            original = distribution.uniform_indices

            def counted(*args, **kwargs):
                self.uniform_draws += trainer.current_epoch < 4  # weight paths (the objective draws its own later)
                return original(*args, **kwargs)

            distribution.uniform_indices = counted

        def on_train_epoch_end(self, trainer, pl_module):
            self.logits.append(torch.cat([p.detach().clone() for p in pl_module.distribution.parameters()]))
            self.weights.append(torch.cat([p.detach().flatten().clone() for p in pl_module.training_module.parameters()]))

    torch.manual_seed(0)
    watch = Watch()
    evaluator = tiny_evaluator(epochs=5, callbacks=[watch])
    strategy = nas_estimators.SF()
    settings = strategy.settings
    assert (settings.arc_learning_rate, settings.uniform_weight_paths, settings.warmup_epochs) == (0.03, 1.0, None)
    assert (settings.freeze_weights, settings.rescore_top_k) == (True, recipe.RESCORE_TOP_K)
    assert strategy.objective.weights() == recipe.OBJECTIVE
    experiment = in_folder(NasExperiment(tiny_space("nb201"), evaluator, strategy), tmp_path)
    experiment.run()
    assert len(watch.logits) == 5
    assert all(float(logits.abs().max()) == 0.0 for logits in watch.logits[:4])  # int(5/6 * 5) weights-only epochs
    assert float(watch.logits[-1].abs().max()) > 1e-3
    assert not torch.equal(watch.weights[2], watch.weights[3]) and torch.equal(watch.weights[3], watch.weights[4])
    assert len(strategy.search_module.rescored) == recipe.RESCORE_TOP_K  # on the last epoch's held-out batches
    # NNI's export ranks the re-scored cells first, by their objective, then the most probable
    rescored = [row["architecture"] for row in strategy.search_module.rescored]
    top = experiment.export_top_models(top_k=recipe.RESCORE_TOP_K + 2, formatter="dict")
    assert top[0] == strategy.search_module.export() and top[:recipe.RESCORE_TOP_K] == rescored
    assert not any(architecture in rescored for architecture in top[recipe.RESCORE_TOP_K:])
    assert watch.uniform_draws == 4 * 3  # every weight step of every warm-up epoch: 48 images / 16 a batch
