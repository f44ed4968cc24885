"""The found architectures in NNI's own web UI: the top-k of a search as the trials of an NNI experiment.

A search ends with its k most probable architectures (``RunFolder.top_k``). :func:`launch` starts an NNI
experiment (the HPO ``Experiment`` API, local training service) whose tuner, :class:`TopKTuner`,
hands out exactly those architectures, best first; each trial builds the fixed network with
``model_space.freeze(sample)``, retrains it for a few epochs on the search's dataset and reports
validation accuracy per epoch (intermediate results) and the test accuracy (final result, with the
search probability and rank beside it). Trial parameters are ``{"mutation_summary": sample, ...}``:
``mutation_summary`` is the field NNI's web UI shows as a NAS trial's architecture, so the web UI
(served by the ``nni_node`` that NNI's wheel ships) lists each architecture beside its metrics.

NNI's ``NasExperiment`` is not used: NNI 3.0 can hang in it on a machine without network (see
``nas_estimators.search``), while the HPO experiment runs here.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from nas_estimators.architectures import SearchOutput
from nas_estimators.checks import integer
from nas_estimators.run_folder import RunFolder

__all__ = ["TopKTuner", "capture_webui", "free_port", "launch", "run_trial", "wait_for_trials", "FINAL_STATUSES"]

FINAL_STATUSES = frozenset({"SUCCEEDED", "FAILED", "USER_CANCELED", "SYS_CANCELED", "EARLY_STOPPED"})
MUTATION_SUMMARY = "mutation_summary"  # the parameters field NNI's web UI shows as a NAS architecture

try:
    from nni.tuner import Tuner as _Tuner
except ImportError:  # pragma: no cover - NNI is a dependency; this keeps the module importable for docs
    _Tuner = object  # type: ignore[misc,assignment]


class TopKTuner(_Tuner):  # type: ignore[misc,valid-type]
    """An NNI tuner that proposes a fixed list of architectures, in order, then stops."""

    def __init__(self, architectures: Sequence[dict], probabilities: Sequence[float | None] = ()) -> None:
        self.architectures = list(architectures)
        self.probabilities = list(probabilities) + [None] * (len(self.architectures) - len(probabilities))
        self.next_rank = 1

    def update_search_space(self, search_space: dict) -> None:
        """The space is the list given to the constructor; NNI's search space is not used."""

    def generate_parameters(self, parameter_id: int, **kwargs: Any) -> dict:
        import nni

        if self.next_rank > len(self.architectures):
            raise nni.NoMoreTrialError("every top-k architecture has been proposed")
        rank = self.next_rank
        self.next_rank += 1
        return {MUTATION_SUMMARY: self.architectures[rank - 1], "rank": rank,
                "search_probability": self.probabilities[rank - 1]}

    def receive_trial_result(self, parameter_id: int, parameters: dict, value: Any, **kwargs: Any) -> None:
        """Results go to the web UI; the list of architectures does not depend on them."""


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def launch(search: SearchOutput, port: int = 8080, trial_epochs: int = 2, concurrency: int = 1,
           working_directory: str | os.PathLike[str] | None = None, batch_size: int = 64):
    """Start an NNI experiment whose trials are ``search``'s architectures; returns the running experiment.

    The web UI is at ``http://127.0.0.1:{port}``; call ``experiment.stop()`` to end it (it also ends
    when this Python process exits).
    """
    from nni.experiment import CustomAlgorithmConfig, Experiment, RunMode

    if search.directory is None or not RunFolder(search.directory).config.is_file():
        raise ValueError("search: the web UI retrains the architectures, so it needs a search output directory "
                         f"with {RunFolder(search.directory or '.').config.name}")
    for name, value in (("trial_epochs", trial_epochs), ("concurrency", concurrency), ("port", port)):
        integer(name, value)
    experiment = Experiment("local")
    config = experiment.config
    config.experiment_name = f"nas-estimators top-{len(search.architectures)}: {search.name}"
    # Concurrent trials share the cores: more torch threads than cores would only slow all of them.
    threads = max(1, (os.cpu_count() or 1) // concurrency)
    config.trial_command = (f"{sys.executable} -m nas_estimators.integrations.nni_webui "
                            f"--epochs {trial_epochs} --batch-size {batch_size} --threads {threads}")
    config.trial_code_directory = str(search.directory.resolve())
    config.search_space = {}
    config.tuner = CustomAlgorithmConfig(
        class_name=f"{__name__}.{TopKTuner.__name__}", code_directory=str(search.directory.resolve()),
        class_args={"architectures": search.architectures, "probabilities": search.probabilities})
    config.max_trial_number = len(search.architectures)
    config.trial_concurrency = concurrency
    config.trial_gpu_number = 0
    config.experiment_working_directory = str(Path(working_directory or search.directory / "nni-experiments").resolve())
    logging.getLogger("nni").setLevel(logging.WARNING)
    # Detach: NNI's Background mode registers stop() at exit, which the command line does itself on Ctrl-C.
    experiment.start(port, run_mode=RunMode.Detach)
    return experiment


def wait_for_trials(experiment: Any, count: int, timeout: float = 600.0, interval: float = 1.0,
                    progress: Any = None) -> list:
    """Wait until ``count`` trials have ended; returns NNI's trial records. TimeoutError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        trials = experiment.list_trial_jobs()
        done = [trial for trial in trials if trial.status in FINAL_STATUSES]
        if progress is not None and len(done) != last:
            progress(f"trials finished: {len(done)}/{count}")
            last = len(done)
        if len(done) >= count:
            return trials
        if experiment.get_status() == "ERROR":
            raise RuntimeError(f"the NNI experiment failed; see {experiment.config.experiment_working_directory}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(done)} of {count} trials ended within {timeout:.0f} s")
        time.sleep(interval)


def capture_webui(port: int, screenshot: str | os.PathLike[str] | None = None, timeout: float = 60.0,
                  scale: float = 1.0) -> dict:
    """Open the web UI's trial list in headless Chromium, expand every trial, and read it.

    Returns ``{"text": visible text, "errors": script errors}``; writes a PNG of the whole page, ``scale``
    times its size, when ``screenshot`` is given.
    Each expanded trial shows its architecture (``mutation_summary``) under "Parameters".
    """
    from nas_estimators.integrations.browser import HeadlessChromium

    with HeadlessChromium(width=1400, height=1000, scale=scale) as browser:
        page = browser.open(f"http://127.0.0.1:{port}/detail", settle=1.0, timeout=timeout)
        page.wait_for_function("document.querySelectorAll('.ms-DetailsRow').length >= 1")
        rows = page.evaluate("document.querySelectorAll('.ms-DetailsRow').length")
        page.evaluate("document.querySelectorAll('i[data-icon-name=ChevronRight]').forEach(e => e.click())")
        page.wait_for_function(f"document.querySelectorAll('.openRow').length >= {rows}")
        page.wait_for_timeout(500)
        if screenshot is not None:
            page.screenshot(path=screenshot, full_page=True)
        return {"text": page.inner_text("body"), "errors": list(browser.errors)}


def run_trial(search_directory: Path, epochs: int, batch_size: int = 64, threads: int | None = None) -> dict:
    """One trial (run by NNI in the search directory): retrain the proposed architecture, report metrics."""
    import nni
    import torch

    from nas_estimators import _nni
    from nas_estimators.data import load_dataset, search_batches, test_batches
    from nas_estimators.spaces import build_space

    if threads:
        torch.set_num_threads(threads)
    parameters = nni.get_next_parameter()
    architecture, rank = parameters[MUTATION_SUMMARY], int(parameters["rank"])
    config = RunFolder(search_directory).read_config()
    seed = int(config.get("seed", 0)) + rank
    torch.manual_seed(seed)
    data = load_dataset(config["dataset"], config.get("data_root"))
    space = build_space(config["space"], config.get("width"), config.get("cells"), num_classes=data.num_classes)
    model = _nni.freeze(space, architecture)
    train, validation = search_batches(data, batch_size, seed=seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.get("weight_learning_rate", 0.025), momentum=0.9,
                                weight_decay=config.get("weight_decay", 3e-4))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    criterion = torch.nn.CrossEntropyLoss()
    for _ in range(epochs):
        model.train()
        for inputs, targets in train:
            optimizer.zero_grad()
            criterion(model(inputs), targets).backward()
            optimizer.step()
        schedule.step()
        nni.report_intermediate_result(_accuracy(model, validation))
    result = {"default": _accuracy(model, test_batches(data, batch_size)), "val_acc": _accuracy(model, validation),
              "rank": rank, "parameters": sum(p.numel() for p in model.parameters())}
    if parameters.get("search_probability") is not None:
        result["search_probability"] = float(parameters["search_probability"])
    nni.report_final_result(result)
    return result


def _accuracy(model: Any, batches: Any) -> float:
    import torch

    model.eval()
    correct = total = 0
    with torch.inference_mode():
        for inputs, targets in batches:
            correct += int((model(inputs).argmax(dim=1) == targets).sum())
            total += len(targets)
    return correct / max(total, 1)


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="one NNI trial: retrain a top-k architecture (run by NNI)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    run_trial(Path.cwd(), args.epochs, args.batch_size, args.threads)  # NNI runs trials in trial_code_directory
    return 0


if __name__ == "__main__":
    sys.exit(_main())
