"""Settings declared once: every command's options come from the configuration fields, with their defaults."""

from __future__ import annotations

import argparse
import dataclasses
import doctest
import re

import pytest

from nas_estimators import checks, methods, optuna_sampler, options, run_folder, settings, weight_paths
from nas_estimators.cli import build_parser
from nas_estimators.bench import BenchConfig
from nas_estimators.compare import CompareConfig
from nas_estimators.search import SearchConfig

def _command(name: str) -> argparse.ArgumentParser:
    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return subparsers.choices[name]


def _default(field: dataclasses.Field):
    return field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default


@pytest.mark.parametrize("command, config_class", [("search", SearchConfig), ("compare", CompareConfig),
                                                   ("tune", SearchConfig), ("bench", BenchConfig)])
def test_every_option_parses_to_and_shows_its_fields_default(command, config_class):
    parser = _command(command)
    actions = {action.dest: action for action in parser._actions}
    tuned = set(parser.get_default("arc_learning_rate") is None and ["arc_learning_rate"] or [])
    checked = 0
    for field in options.command_line_fields(config_class):
        if field.name not in actions:
            continue
        action, spec, default = actions[field.name], field.metadata["option"], _default(field)
        if field.name not in tuned:  # tune draws those: their default is "not given"
            assert action.default == default, field.name
        if spec["flag"] or field.name in tuned:
            checked += 1
            continue
        shown = spec["shown"] if spec["shown"] is not None else None if default is None else (
            f"{default:g}" if isinstance(default, float) else str(default))
        if shown is not None:
            assert f"(default: {shown})" in " ".join(action.help.split()).replace("%%", "%"), field.name
        checked += 1
    assert checked >= 10


def test_a_help_never_states_another_default_than_the_parsed_one():
    """Hand-written options too: a '(default: N)' for a number must be what argparse parses to."""
    for command in ("search", "compare", "tune", "bench", "frozen-search", "retrain"):
        for action in _command(command)._actions:
            match = re.search(r"\(default:? ([-0-9.e]+)\)", " ".join((action.help or "").split()))
            if match and isinstance(action.default, (int, float)) and not isinstance(action.default, bool):
                assert float(match.group(1)) == pytest.approx(float(action.default)), (command, action.dest)


def test_compare_runs_searches_with_the_search_commands_defaults():
    search, compare = SearchConfig(), CompareConfig()
    for name in ("epochs", "batch_size", "arc_learning_rate", "warmup_epochs", "uniform_weight_paths", "weight_paths",
                 "weight_learning_rate", "batch_norm", "panel_images", "precision", "freeze_weights", "objective"):
        assert getattr(compare, name) == getattr(search, name), name
    assert compare.space == "nb201"  # its own, said once in CompareConfig


@pytest.mark.parametrize("module", [options, methods, run_folder, weight_paths, optuna_sampler, settings, checks])
def test_the_examples_in_the_docstrings_run(module):
    assert doctest.testmod(module).failed == 0
