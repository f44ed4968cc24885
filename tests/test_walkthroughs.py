"""docs/architecture.md's walkthroughs for an option and a method, done as the page says and run from the CLI."""

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd

import nas_estimators
import nas_estimators.integrations
from nas_estimators import methods
from nas_estimators.cli import main

from helpers import one_line_error

# The option of the walkthrough: one field of LoopSettings, and the line of the loop that reads it.
FIELD = '''    arc_weight_decay: float = option(0.0, "weight decay of the logits' Adam, in [0, 1]", type=float, check=share)
'''
USE = '''            for group in self.arc_optimizer.param_groups:
                group["weight_decay"] = self.settings.arc_weight_decay
'''
FIELD_AFTER = "                                check=_integer(0), before=20)\n"
USE_AFTER = '            self.__dict__["arc_optimizer"] = arc_optimizer(distribution, self.settings.arc_learning_rate)\n'

CHECKS = '''
import contextlib, io, json, sys
from nas_estimators import SF, compare
from nas_estimators.cli import main

def run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit:
            code = exit.code
    return code, out.getvalue() + err.getvalue()

helps = {command: run([command, "--help"])[1] for command in ("search", "compare", "tune")}
tiny = ["--space", "nb201", "--epochs", "2", "--warmup-epochs", "0", "--objective", "supernet=1", "--rescore-top-k",
        "0", "--batch-size", "256", "--no-progress"]
codes = {decay: run(["search", *tiny, "--arc-weight-decay", decay, "--output", f"out-{decay}"])[0]
         for decay in ("0", "0.9")}
bad_code, bad = run(["search", *tiny, "--arc-weight-decay", "2", "--output", "out-bad"])
print(json.dumps({"helps": helps, "codes": codes, "bad": [bad_code, bad.strip().splitlines()],
                  "strategy": SF(arc_weight_decay=0.5).settings.arc_weight_decay,
                  "recorded_by_compare": "arc_weight_decay" in compare.SETTINGS}))
'''


def _package_copy(destination: Path) -> Path:
    """The installed package (integrations included) copied to ``destination``, for editing."""
    package = Path(nas_estimators.__file__).parent
    copy = destination / "nas_estimators"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("integrations", "__pycache__"))
    shutil.copytree(Path(nas_estimators.integrations.__file__).parent, copy / "integrations",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def _insert(path: Path, after: str, text: str) -> None:
    source = path.read_text()
    assert source.count(after) == 1, f"{path.name} changed: update the walkthrough and this test"
    path.write_text(source.replace(after, after + text))


def test_adding_an_option_is_one_field_and_the_line_that_reads_it(tmp_path):
    copy = _package_copy(tmp_path / "src")
    _insert(copy / "settings.py", FIELD_AFTER, FIELD)
    _insert(copy / "lightning.py", USE_AFTER, USE)
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(CHECKS)], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": str(tmp_path / "src"), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    for command, text in result["helps"].items():  # every command that runs searches offers it, with its default
        assert "--arc-weight-decay ARC_WEIGHT_DECAY weight decay of the logits' Adam, in [0, 1] (default: 0)" \
            in " ".join(text.split()), command
    assert result["codes"] == {"0": 0, "0.9": 0}
    assert json.loads((tmp_path / "out-0.9" / "config.json").read_text())["arc_weight_decay"] == 0.9
    probabilities = [pd.read_csv(tmp_path / f"out-{decay}" / "probabilities.csv") for decay in ("0", "0.9")]
    assert not probabilities[0].equals(probabilities[1])  # it reached the logits' optimizer
    code, lines = result["bad"]
    assert code == 2 and len(lines) == 1 and "arc_weight_decay" in lines[0] and "[0, 1]" in lines[0]
    assert not (tmp_path / "out-bad").exists()
    assert result["strategy"] == 0.5 and result["recorded_by_compare"]


def test_adding_an_nni_strategy_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(methods.NNI_ONESHOT, "nni-random-again", "RandomOneShot")
    output = tmp_path / "search"
    assert main(["search", "--estimator", "nni-random-again", "--space", "nb201", "--epochs", "1", "--batch-size",
                 "256", "--no-progress", "--output", str(output)]) == 0
    config = json.loads((output / "config.json").read_text())
    assert config["estimator"] == "nni-random-again" and config["freeze_weights"] is False  # run as NNI runs it
    assert (output / "architecture.json").is_file()
    # compare and bench list it with NNI's own
    from nas_estimators import bench

    assert methods.get("nni-random-again").kind == "nni-oneshot" and "nni-random-again" in bench.strategies()
    # and what only ours read is refused for it, as for NNI's others
    error = one_line_error(capsys, ["search", "--estimator", "nni-random-again", "--rescore-top-k", "3", "--output",
                                    str(tmp_path / "refused")])
    assert "rescore_top_k" in error and not (tmp_path / "refused").exists()
