"""The code's layers (docs/architecture.md): imports point one way, and an estimator is added in one place."""

from __future__ import annotations

import ast
import json
import math
import sys
from pathlib import Path

import pandas as pd
import pytest

from nas_estimators import ScoreFunction, registry
from nas_estimators.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _modules() -> dict[str, Path]:
    """Every module of the package by its dotted name (integrations/ is nas_estimators.integrations)."""
    found = {}
    for folder, package in ((ROOT / "nas_estimators", "nas_estimators"), (ROOT / "integrations", "nas_estimators.integrations")):
        for path in folder.rglob("*.py"):
            if "integrations" in path.relative_to(folder).parts:
                continue  # a development symlink nas_estimators/integrations -> ../integrations
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules ``name`` imports, at the top or inside functions (relative imports resolved)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        imported.update(target for target in targets if target in known)
    imported.discard(name)
    return imported


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _layer(name: str) -> str:
    if name.startswith("nas_estimators.integrations"):
        return "integrations"
    if name in ("nas_estimators.cli", "nas_estimators.__main__") or name.startswith("nas_estimators.cli."):
        return "cli"
    return "core"


def test_imports_point_from_the_command_line_through_integrations_to_the_core():
    graph = _graph()
    assert "nas_estimators.search" in graph and "nas_estimators.integrations.report" in graph  # the walk found them
    rank = {"core": 0, "integrations": 1, "cli": 2}
    upward = sorted(f"{module} imports {target}" for module, targets in graph.items() for target in targets
                    if rank[_layer(target)] > rank[_layer(module)] and target != "nas_estimators")
    assert not upward, "; ".join(upward)


def test_the_package_has_no_import_cycle():
    graph = _graph()
    # A package's __init__ re-exporting its modules is not a cycle of the code: leave those edges out.
    edges = {m: {t for t in targets if not m.startswith(t + ".")} for m, targets in graph.items()}
    edges = {m: targets - {"nas_estimators"} for m, targets in edges.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(edges.get(module, ())):
            if state.get(target) == 1:
                cycles.append(" -> ".join(path[path.index(target):] + [target]) if target in path else target)
            elif target not in state:
                visit(target, path + [target])
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert not cycles, "; ".join(cycles)


def test_the_checks_see_an_upward_import_and_a_cycle(tmp_path, monkeypatch):
    """The two checks above fail when the code breaks them (run on a copy with one bad line added)."""
    import shutil

    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "nas_estimators", copy / "nas_estimators", ignore=shutil.ignore_patterns("integrations"))
    shutil.copytree(ROOT / "integrations", copy / "integrations")
    distribution = copy / "nas_estimators" / "distribution.py"
    distribution.write_text(distribution.read_text() + "\nfrom .integrations import report  # noqa\n")
    files = copy / "nas_estimators" / "files.py"
    files.write_text(files.read_text() + "\nfrom . import html_report  # noqa\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", copy)
    with pytest.raises(AssertionError, match="nas_estimators.distribution imports nas_estimators.integrations.report"):
        test_imports_point_from_the_command_line_through_integrations_to_the_core()
    with pytest.raises(AssertionError, match="nas_estimators.files -> nas_estimators.html_report"):
        test_the_package_has_no_import_cycle()


class HalfBaseline(ScoreFunction):
    """docs/architecture.md's walkthrough estimator: a score function whose baseline moves by a chosen step."""

    name = "half"


@pytest.fixture
def half_registered():
    registry.register(registry.EstimatorSpec(
        name="half", summary="score function, baseline step as an option",
        hyperparameters=(registry.Hyperparameter("half_step", 0.5, "half: baseline step, in (0, 1]"),),
        build=lambda options, steps: HalfBaseline(baseline_decay=1.0 - options["half_step"])))
    yield
    registry.unregister("half")


def test_every_use_of_the_nni_seam_names_something_it_has():
    """NNI's internals are reached only through nas_estimators._nni; a name removed there must not be used elsewhere."""
    from nas_estimators import _nni

    used = set()
    for path in _modules().values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "_nni":
                used.add((node.attr, path.name))
    assert used, "no module uses the seam: the scan is broken"
    missing = sorted(f"_nni.{attribute} in {where}" for attribute, where in used if not hasattr(_nni, attribute))
    assert not missing, missing


def test_a_registered_estimator_runs_from_the_command_line_with_its_own_option(tmp_path, half_registered):
    output = tmp_path / "half"
    assert main(["search", "--estimator", "half", "--half-step", "0.25", "--arc-learning-rate", "0.1",
                 "--space", "nb201", "--epochs", "2", "--batch-size", "256", "--no-progress", "--output", str(output)]) == 0
    config = json.loads((output / "config.json").read_text())
    assert config["estimator"] == "half" and config["half_step"] == 0.25
    history = pd.read_csv(output / "history.csv")
    assert len(history) == 2 and history["entropy"].iloc[-1] < 6 * math.log(5) - 1e-3  # the logits moved
    from nas_estimators.search import SearchConfig

    estimator = SearchConfig.saved(output).build_estimator()
    assert isinstance(estimator, HalfBaseline) and estimator.baseline_decay == pytest.approx(0.75)
    # the resumed search rebuilds it from config.json, with its option
    assert main(["search", "--resume", "--output", str(output), "--epochs", "3", "--no-progress"]) == 0
    assert len(pd.read_csv(output / "history.csv")) == 3


def test_a_registered_estimator_is_offered_by_compare_bench_and_tune(half_registered):
    from nas_estimators import bench, methods
    from nas_estimators.integrations.optuna_tuning import tuned_parameters

    assert "half" in methods.names() and "half-table" in methods.names() and "half" in bench.strategies()
    assert methods.get("half").kind == "estimator" and methods.get("half-table").estimator == "half"
    assert tuned_parameters("half") == ("arc_learning_rate",)  # no Optuna range given: not tuned


def test_registering_a_clashing_estimator_or_hyperparameter_is_refused(half_registered):
    with pytest.raises(ValueError, match="'half' is registered already"):
        registry.register(registry.get("half"))
    clash = registry.Hyperparameter("baseline_decay", 0.5, "another default")
    with pytest.raises(ValueError, match="'baseline_decay' is registered already"):
        registry.register(registry.EstimatorSpec("other", "x", (clash,), lambda options, steps: ScoreFunction()))
    assert "other" not in registry.names()


def test_each_search_option_is_named_in_at_most_three_source_files():
    """An option is declared once (a LoopSettings field, or a registry hyperparameter with the estimator's
    constructor and the NNI strategy's typed keyword) and reaches every tool from there."""
    import re

    from nas_estimators.recorder import DIAGNOSTICS
    from nas_estimators.settings import loop_fields

    texts = {path: path.read_text() for path in _modules().values()}
    # A name that is also a per-step diagnostic the estimators report (temperature) is read where reports are made.
    names = [name for name in [*(field.name for field in loop_fields()), *registry.hyperparameters()]
             if name not in DIAGNOSTICS]
    assert "arc_learning_rate" in names and "labels_per_step" in names
    spread = {name: sorted(path.name for path, text in texts.items() if re.search(rf"\b{name}\b", text))
              for name in names}
    assert all(spread.values()), "a declared option is named nowhere: the scan is broken"
    assert {name: where for name, where in spread.items() if len(where) > 3} == {}
