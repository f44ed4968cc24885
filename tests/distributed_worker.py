"""Helper scripts for tests/test_distributed.py, run as separate processes (not a test module).

``python distributed_worker.py search CONFIG_JSON``: ``run_search`` in this process (Lightning starts the
others by running this script again); each process writes ``rank{r}.json`` with its logits, mode,
estimator diagnostics and the architectures it scored.

``python distributed_worker.py strategy ESTIMATOR OUTPUT``: our strategy in an NNI pipeline whose trainer
runs Lightning's DDP on 2 CPU processes; each writes ``rank{r}.json``.

``python distributed_worker.py signal STEP RANK ARGS...``: ``nas-estimators ARGS`` in which process
``RANK`` sends itself SIGTERM at the end of its training step ``STEP`` (a test driven by steps, not
seconds).
"""

import json
import os
import signal
import sys

from nas_estimators.lightning import EstimatorLightningModule
from nas_estimators.recorder import SearchRecorder


def search(config_json: str) -> int:
    from nas_estimators.search import SearchConfig, run_search

    scored = []
    original = EstimatorLightningModule.validation_loss

    def validation_loss(self, batch, architecture):
        scored.append(dict(architecture))
        return original(self, batch, architecture)

    EstimatorLightningModule.validation_loss = validation_loss
    config = SearchConfig(**json.loads(config_json))
    result = run_search(config)
    distribution = result["strategy"].distribution
    record = {"rank": result["rank"], "mode": distribution.mode(), "exported": result["strategy"].search_module.export(),
              "logits": {label: p.detach().tolist() for label, p in distribution.parameters_by_label().items()},
              "diagnostics": dict(result["strategy"].search_module.estimator.diagnostics), "scored": scored}
    with open(os.path.join(config.output, f"rank{result['rank']}.json"), "w") as file:
        json.dump(record, file)
    return 0


def signal_at_step(step: int, rank: int, argv: list) -> int:
    from nas_estimators.cli import main

    original = SearchRecorder.on_train_batch_end
    steps = [0]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        steps[0] += 1
        if steps[0] == step and trainer.global_rank == rank:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, trainer, pl_module, outputs, batch, batch_idx)

    SearchRecorder.on_train_batch_end = on_train_batch_end
    return main(argv)


def strategy(estimator: str, output: str) -> int:
    """An NNI pipeline: NNI's NAS-Bench-201 space, NNI's Classification evaluator on a 2-process DDP trainer."""
    import warnings

    import torch
    from pytorch_lightning.strategies import DDPStrategy

    import nas_estimators
    from nas_estimators import distributed

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from nni.nas.evaluator.pytorch import Classification, DataLoader
        from nni.nas.hub.pytorch import NasBench201

    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    dataset = torch.utils.data.TensorDataset(torch.randn(64, 3, 8, 8, generator=generator),
                                             torch.randint(0, 10, (64,), generator=generator))
    evaluator = Classification(
        train_dataloaders=DataLoader(dataset, batch_size=8), val_dataloaders=DataLoader(dataset, batch_size=8),
        max_epochs=1, num_classes=10, learning_rate=0.01, enable_progress_bar=False, logger=False,
        enable_checkpointing=False, enable_model_summary=False, accelerator="cpu", devices=2,
        strategy=DDPStrategy(find_unused_parameters=True, process_group_backend="gloo"))
    search = {"sf": nas_estimators.SF, "relax": nas_estimators.RELAX, "ram": nas_estimators.RAM}[estimator](
        arc_learning_rate=0.1)
    model = search.mutate_model(NasBench201(stem_out_channels=4, num_modules_per_stack=1))
    search.mutate_evaluator(evaluator).evaluate(model)
    rank, processes = distributed.world()
    distribution = search.distribution
    record = {"rank": rank, "processes": processes, "mode": distribution.mode(),
              "logits": {label: p.detach().tolist() for label, p in distribution.parameters_by_label().items()}}
    with open(os.path.join(output, f"rank{rank}.json"), "w") as file:
        json.dump(record, file)
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "search":
        sys.exit(search(sys.argv[2]))
    if sys.argv[1] == "strategy":
        sys.exit(strategy(sys.argv[2], sys.argv[3]))
    sys.exit(signal_at_step(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]))
