"""NNI model spaces whose depth (and width) is a choice: NNI's hub cell spaces and a hand-built ``Repeat``."""

import json
import warnings

import pytest
import torch
from torch import nn

import nas_estimators
from nas_estimators import _nni
from nas_estimators.architectures import ArchitectureError, check_architecture, darts_shape, format_genotype, to_genotype
from nas_estimators.cli import main

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import nni
    from nni.nas.evaluator.pytorch import Classification, DataLoader
    from nni.nas.hub.pytorch import DARTS, ENAS, PNAS, AmoebaNet, AutoFormer, NASNet, ProxylessNAS
    from nni.nas.nn.pytorch import InputChoice, LayerChoice, ModelSpace, MutableConv2d, MutableLinear, Repeat
    from nni.nas.oneshot.pytorch.supermodule.sampling import PathSamplingRepeat

STRATEGIES = {
    "sf": lambda: nas_estimators.SF(baseline_decay=0.5, arc_learning_rate=0.1),
    "relax": lambda: nas_estimators.RELAX(surrogate_width=8, arc_learning_rate=0.1),
    "ram": lambda: nas_estimators.RAM(labels_per_step=2, arc_learning_rate=0.1),
}


class RepeatSpace(ModelSpace):
    """A user's space: a searched width, a searched depth of blocks, an operation per block, a skip input."""

    def __init__(self):
        super().__init__()
        width = nni.choice("width", [4, 8])
        self.stem = MutableConv2d(3, width, 3, padding=1)
        self.blocks = Repeat(
            lambda index: LayerChoice([MutableConv2d(width, width, 3, padding=1), nn.Identity(),
                                       nn.MaxPool2d(3, stride=1, padding=1)], label=f"op{index}"),
            nni.choice("depth", [1, 2, 3]))
        self.skip = InputChoice(2, 1, label="skip")
        self.head = MutableLinear(width, 10)

    def forward(self, x):
        stem = self.stem(x)
        out = self.skip([stem, self.blocks(stem)])
        return self.head(out.mean((2, 3)))


def evaluator(images=32, size=8, epochs=1):
    generator = torch.Generator().manual_seed(0)
    dataset = torch.utils.data.TensorDataset(torch.randn(images, 3, size, size, generator=generator),
                                             torch.randint(0, 10, (images,), generator=generator))
    return Classification(
        train_dataloaders=DataLoader(dataset, batch_size=8), val_dataloaders=DataLoader(dataset, batch_size=8),
        max_epochs=epochs, num_classes=10, learning_rate=0.01, enable_progress_bar=False, logger=False,
        enable_checkpointing=False, enable_model_summary=False)


def search(space, strategy, size=8):
    """Search ``space`` for an epoch; return the exported architecture and every depth a forward pass used."""
    model = strategy.mutate_model(space)
    depths = []
    repeats = [module for module in model.modules() if isinstance(module, PathSamplingRepeat)]
    assert repeats, "the depth choice became no path-sampling module"
    repeats[0].register_forward_pre_hook(lambda module, args: depths.append(module._sampled))
    strategy.mutate_evaluator(evaluator(size=size)).evaluate(model)
    return strategy.search_module.export(), depths


def assert_exported_and_runs(architecture, fresh_space, size=8):
    simplified = fresh_space.simplify()
    assert set(architecture) == set(simplified)
    for label, mutable in simplified.items():
        assert (architecture[label][0] if isinstance(mutable, _nni.CategoricalMultiple)
                else architecture[label]) in (mutable.values if not isinstance(mutable, _nni.CategoricalMultiple)
                                              else mutable.values)
    network = fresh_space.freeze(architecture)
    network.eval()
    assert network(torch.randn(2, 3, size, size)).shape == (2, 10)


@pytest.mark.parametrize("estimator", sorted(STRATEGIES))
def test_darts_hub_space_with_width_and_depth_ranges(estimator):
    torch.manual_seed(0)
    make = lambda: DARTS(width=(4, 6), num_cells=(3, 6), dataset="cifar")  # noqa: E731
    architecture, depths = search(make(), STRATEGIES[estimator]())
    assert architecture["depth"] in (3, 6) and architecture["width"] in (4, 6)
    assert len(set(depths)) == 2  # both depths were trained or scored
    assert_exported_and_runs(architecture, make())


@pytest.mark.parametrize("hub_space", [ENAS, NASNet, AmoebaNet, PNAS], ids=lambda cls: cls.__name__)
def test_other_hub_cell_spaces_with_a_depth_range(hub_space):
    torch.manual_seed(1)
    make = lambda: hub_space(width=4, num_cells=(3, 6), dataset="cifar")  # noqa: E731
    architecture, depths = search(make(), STRATEGIES["sf"]())
    assert architecture["depth"] in (3, 6) and len(set(depths)) == 2
    assert_exported_and_runs(architecture, make())


HUB_BLOCK_SPACES = {  # NNI's other hub spaces with depth choices, small
    "ProxylessNAS": lambda: ProxylessNAS(num_labels=10, base_widths=(8,) * 9),
    "AutoFormer": lambda: AutoFormer(search_embed_dim=(24, 32), search_mlp_ratio=(2.0, 3.0), search_num_heads=(2, 4),
                                     search_depth=(1, 2), img_size=32, patch_size=8, num_labels=10),
}


@pytest.mark.parametrize("name", sorted(HUB_BLOCK_SPACES))
def test_hub_block_spaces_with_depth_choices(name):
    torch.manual_seed(4)
    make = HUB_BLOCK_SPACES[name]
    depth_labels = [label for label in make().simplify() if "depth" in label]
    assert depth_labels
    architecture, depths = search(make(), STRATEGIES["sf"](), size=32)
    assert len(set(map(str, depths))) >= 2
    assert_exported_and_runs(architecture, make(), size=32)


@pytest.mark.parametrize("estimator", sorted(STRATEGIES))
def test_hand_built_space_with_a_repeat_of_a_depth_choice(estimator):
    torch.manual_seed(2)
    strategy = STRATEGIES[estimator]()
    architecture, depths = search(RepeatSpace(), strategy)
    assert architecture["depth"] in (1, 2, 3) and architecture["width"] in (4, 8)
    assert len(set(depths)) >= 2
    assert strategy.distribution.values["depth"] == [1, 2, 3]  # a depth is a label like any other
    assert_exported_and_runs(architecture, RepeatSpace())
    top = strategy.distribution.top_k(3)
    assert len({json.dumps(a, sort_keys=True) for a, _ in top}) == 3


def test_mutables_the_distribution_cannot_hold_are_refused_before_the_supernet_is_built():
    class TwoInputs(RepeatSpace):
        def __init__(self):
            super().__init__()
            self.skip = InputChoice(3, 2, label="skip")  # NNI's RandomOneShot samples 2 of 3; we do not

    space = TwoInputs()
    with pytest.raises(TypeError, match=r"label 'skip': CategoricalMultiple with n_chosen=2 is not supported; "
                                        r"only n_chosen=1"):
        nas_estimators.SF().mutate_model(space)
    assert not any(isinstance(module, PathSamplingRepeat) for module in space.modules())  # untouched


# ------------------------------------------------------------------------ DARTS-space exports of a searched shape


@pytest.fixture(scope="module")
def darts_with_shape():
    torch.manual_seed(3)
    architecture, _ = search(DARTS(width=(4, 6), num_cells=(3, 6), dataset="cifar"), STRATEGIES["sf"]())
    return architecture


def test_darts_exports_carry_the_cells_and_read_the_searched_shape(darts_with_shape, tmp_path):
    assert check_architecture(darts_with_shape) == "darts"
    assert darts_shape(darts_with_shape) == {"width": darts_with_shape["width"], "depth": darts_with_shape["depth"]}
    cells_only = {k: v for k, v in darts_with_shape.items() if k not in ("width", "depth")}
    assert to_genotype(darts_with_shape) == to_genotype(cells_only)  # a genotype describes the cells
    source = tmp_path / "searched.json"
    source.write_text(json.dumps(darts_with_shape))
    assert main(["export", str(source), "--format", "genotype", "--output", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "genotypes.txt").read_text().strip() == format_genotype(to_genotype(cells_only))
    assert main(["export", str(source), "--format", "json", "--output", str(tmp_path / "json")]) == 0
    [written] = json.loads((tmp_path / "json" / "architectures.json").read_text())
    assert written == darts_with_shape


@pytest.mark.parametrize("value", [0, "6", 2.5, True])
def test_a_bad_searched_depth_is_named(darts_with_shape, value):
    with pytest.raises(ArchitectureError, match="depth = .* is not a positive integer"):
        check_architecture({**darts_with_shape, "depth": value})


def test_retrain_builds_the_cells_at_the_protocol_size_and_says_so(darts_with_shape, tmp_path):
    from nas_estimators.retrain import RetrainConfig, build_network, retrain

    network = build_network(darts_with_shape, width=4, cells=3, auxiliary=False, drop_path=0.0)
    assert network(torch.randn(2, 3, 8, 8)).shape == (2, 10)
    source = tmp_path / "searched.json"
    source.write_text(json.dumps(darts_with_shape))
    lines = []
    retrain(RetrainConfig(architecture=str(source), output=str(tmp_path / "retrain"), dataset="digits", cells=3,
                          width=4, epochs=1, batch_size=256, auxiliary_weight=0.0, device="cpu"),
            progress=lines.append)
    shape = f"searched width {darts_with_shape['width']} and depth {darts_with_shape['depth']} are not used"
    assert any(shape in line for line in lines), lines


def test_report_names_the_searched_shape_above_the_cells(darts_with_shape, tmp_path):
    from helpers import tiny_search
    from nas_estimators.integrations.report import write_report

    run = tiny_search(tmp_path / "run", "--width", "4", "--cells", "3", "--epochs", "1", "--top-k", "1")
    # As if the search had run on NNI's DARTS space with width and depth ranges: its exported cells and shape.
    rows = json.loads((run / "top_k.json").read_text())
    rows[0]["architecture"] = darts_with_shape
    (run / "top_k.json").write_text(json.dumps(rows))
    (run / "architecture.json").write_text(json.dumps(darts_with_shape))
    page = write_report([run], tmp_path / "report.html", diagram_style="plotly").read_text()
    shape = f"searched network: width {darts_with_shape['width']}, depth {darts_with_shape['depth']}"
    assert shape in page
