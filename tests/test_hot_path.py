"""The search step queues all its device work before it reads a device value, and reads in few transfers.

CI has no GPU, so "device values" are simulated on the CPU: every tensor computed from the network's
parameters, buffers, gradients or the batch is tainted (a dispatch mode follows each operation), and
reading a tainted tensor on the host (``item``/``float``/``bool``/``tolist``) is what would wait for a
GPU. A stray ``if torch.isfinite(loss):`` or ``float(loss)`` between two forward passes fails here.
"""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.weak import WeakIdKeyDictionary

from nas_estimators.lightning import EstimatorLightningModule
from nas_estimators.search import SearchConfig, prepare, run_search


class DeviceSimulation(TorchDispatchMode):
    """Taints what is computed from tainted tensors; records forward passes and host reads in order."""

    def __init__(self, events: list) -> None:
        super().__init__()
        self.events = events
        self.tainted = WeakIdKeyDictionary()

    def taint(self, *tensors) -> None:
        for tensor in tensors:
            if isinstance(tensor, torch.Tensor):
                self.tainted[tensor] = True

    def is_tainted(self, value) -> bool:
        return any(isinstance(t, torch.Tensor) and t in self.tainted for t in tree_leaves(value))

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        # float()/bool()/item() dispatch as item (inference tensors) or _local_scalar_dense (others).
        if func in (torch.ops.aten.item.default, torch.ops.aten._local_scalar_dense.default) and self.is_tainted(args):
            self.events.append("read")
        out = func(*args, **kwargs)
        if self.is_tainted((args, kwargs)):
            self.taint(*[t for t in tree_leaves(out) if isinstance(t, torch.Tensor)])
        return out


@pytest.mark.parametrize("estimator, most_reads", [("sf", 2), ("relax", 2), ("ram", 2)])
def test_every_forward_pass_of_a_step_is_queued_before_the_first_device_read(monkeypatch, tmp_path, estimator,
                                                                             most_reads):
    torch.manual_seed(0)
    config = SearchConfig(estimator=estimator, space="nb201", width=4, cells=1, epochs=1, batch_size=16,
                          device="cpu", output=str(tmp_path / "run"), progress=False, seed=0,
                          labels_per_step=2,
                          # the step of the supernet term alone, weights trained (the recipe's terms and end are timed elsewhere)
                          objective={"supernet": 1.0}, freeze_weights=False, rescore_top_k=0)
    parts = prepare(config)
    steps: list[list[str]] = []
    original_step = EstimatorLightningModule.training_step
    original_tolist = torch.Tensor.tolist

    def instrumented_step(self, batch, batch_idx):
        events: list[str] = []
        mode = DeviceSimulation(events)
        network = self.training_module
        mode.taint(*network.parameters(), *network.buffers(), *tree_leaves(batch))
        hooks = [network.register_forward_hook(lambda *_: events.append("forward"))]
        hooks += [p.register_post_accumulate_grad_hook(lambda p: mode.taint(p.grad)) for p in network.parameters()]

        def tolist(tensor):
            if mode.is_tainted(tensor):
                events.append("read")
            return original_tolist(tensor)

        monkeypatch.setattr(torch.Tensor, "tolist", tolist)
        try:
            with mode:
                output = original_step(self, batch, batch_idx)
        finally:
            monkeypatch.setattr(torch.Tensor, "tolist", original_tolist)
            for hook in hooks:
                hook.remove()
        steps.append(events)
        return output

    monkeypatch.setattr(EstimatorLightningModule, "training_step", instrumented_step)
    run_search(config, parts)

    assert len(steps) > 3
    for events in steps:
        forwards = [i for i, event in enumerate(events) if event == "forward"]
        reads = [i for i, event in enumerate(events) if event == "read"]
        assert len(forwards) >= 2, events  # the training forward and at least one validation forward
        assert reads and min(reads) > max(forwards), events
        assert len(reads) <= most_reads, events
