"""The depthwise-convolution stand-in for the spaces' average pooling gives the same values and gradients."""

import pytest
import torch
from torch import nn

from nas_estimators.pooling import BoxAverage, box_average_pools
from nas_estimators.spaces import build_space


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size", [(7, 7), (8, 5)])
def test_box_average_equals_pooling_forward_and_backward(stride, size):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, *size, generator=generator)
    weights = torch.randn(3, 4, *[(n + 2 - 3) // stride + 1 for n in size], generator=generator)
    pooled = {}
    for name, op in (("torch", nn.AvgPool2d(3, stride, 1, count_include_pad=False)), ("box", BoxAverage(3, stride, 1))):
        leaf = x.clone().requires_grad_()
        out = op(leaf)
        (out * weights).sum().backward()
        pooled[name] = (out, leaf.grad)
    assert torch.allclose(pooled["box"][0], pooled["torch"][0], atol=1e-6)
    assert torch.allclose(pooled["box"][1], pooled["torch"][1], atol=1e-6)


def test_box_average_made_in_inference_mode_serves_a_backward_pass():
    op = BoxAverage(3, 1, 1)
    with torch.inference_mode():
        op(torch.ones(1, 2, 4, 4))
    x = torch.ones(1, 2, 4, 4, requires_grad=True)
    op(x).sum().backward()
    # a corner pixel lies in 4 windows of 4 pixels, 2 windows of 6 and 1 of 9 (its neighbours' and its own)
    assert x.grad[0, 0, 0, 0].item() == pytest.approx(1 / 4 + 2 / 6 + 1 / 9)


def test_only_count_include_pad_false_square_pools_are_replaced():
    model = nn.Sequential(nn.AvgPool2d(3, 1, 1, count_include_pad=False), nn.AvgPool2d(3, 1, 1),
                          nn.Sequential(nn.AvgPool2d(3, 2, 1, count_include_pad=False, ceil_mode=True)))
    box_average_pools(model)
    assert [type(m).__name__ for m in model.modules()][1:] == ["BoxAverage", "AvgPool2d", "Sequential", "AvgPool2d"]


def test_flops_of_a_supernet_path_are_the_frozen_networks_pooling_included():
    from nas_estimators import _nni, training_free
    from nas_estimators.objective import ScoringNetwork
    from nas_estimators.pooling import native_pooling
    from nas_estimators.strategy import path_sampling_supernet
    from nni.nas.hub.pytorch import NasBench201

    pools = {label: "avg_pool_3x3" for label in ("cell/0_1", "cell/0_2", "cell/1_2", "cell/0_3", "cell/1_3", "cell/2_3")}
    x = torch.randn(1, 3, 16, 16)
    network = ScoringNetwork(path_sampling_supernet(build_space("nb201", 4, 1)), x)
    frozen = _nni.freeze(NasBench201(stem_out_channels=4, num_modules_per_stack=1), pools)
    assert network.score(pools, training_free.flops) == training_free.flops(frozen, x)
    # inside native_pooling the stand-in is PyTorch's own pooling
    op = BoxAverage(3, 1, 1)
    with native_pooling():
        assert torch.allclose(op(x), nn.AvgPool2d(3, 1, 1, count_include_pad=False)(x))


@pytest.mark.parametrize("space, width, cells", [("nb201", 4, 1), ("darts", 4, 3)])
def test_spaces_pool_with_box_averages_and_keep_their_state_keys(space, width, cells):
    from nni.nas.hub.pytorch import DARTS, NasBench201

    built = build_space(space, width, cells)
    nni_space = (NasBench201(stem_out_channels=width, num_modules_per_stack=cells) if space == "nb201"
                 else DARTS(width=width, num_cells=cells, dataset="cifar"))
    assert any(isinstance(m, BoxAverage) for m in built.modules())
    assert not any(isinstance(m, nn.AvgPool2d) and not m.count_include_pad for m in built.modules())
    # checkpoints written before the stand-in still load: it adds no parameters or buffers
    assert list(built.state_dict()) == list(nni_space.state_dict())
