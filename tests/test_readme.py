"""README.md's code as a user copies it: every command parses, every Python block runs (at tiny size)."""

import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nas_estimators.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def commands(program: str) -> list[str]:
    """Each ``program`` command of the bash blocks, continuation lines joined and comments dropped."""
    found = []
    for block in blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # VAR=value before the program
                words.pop(0)
            if words and words[0] == program and "..." not in words:
                found.append(words)
    return found


def test_every_nas_estimators_command_in_the_readme_parses():
    found = commands("nas-estimators")
    assert len(found) >= 20  # the scan still finds the README's commands
    parser = build_parser()
    for words in found:
        try:
            parser.parse_args(words[1:])
        except SystemExit:
            pytest.fail(f"README command does not parse: {' '.join(words)}")


def test_every_example_the_readme_runs_exists():
    scripts = [words[1] for words in commands("python") if words[1].endswith(".py")]
    assert scripts
    for script in scripts:
        assert (ROOT / script).is_file(), script


def test_ci_runs_the_readme_test_command():
    [readme] = [words for words in commands("python") if words[1:3] == ["-m", "pytest"]]
    ci = [shlex.split(line, comments=True) for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert readme in ci, f"{' '.join(readme)} is not a line of .ci/run"


def test_the_distribution_and_estimators_block_runs():
    namespace: dict = {}
    exec(compile(blocks("python")[0], "README.md", "exec"), namespace)
    assert set(namespace["grads"]) == {"op", "input"}


def test_the_optuna_sampler_block_runs():
    [block] = [b for b in blocks("python") if "EstimatorSampler" in b]
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)
    probabilities = namespace["study"].sampler.probabilities()["x"]
    assert max(probabilities, key=probabilities.get) == "b"


# The NNI blocks at tiny size: these parts of the README's text become smaller ones (each must still be there).
TINY = {'DARTS(width=16, num_cells=8, dataset="cifar")': 'DARTS(width=4, num_cells=3, dataset="cifar")',
        "max_epochs=50": "max_epochs=1"}
LOADERS = textwrap.dedent("""
    import torch
    from nni.nas.evaluator.pytorch import DataLoader
    images, labels = torch.randn(16, 3, 32, 32, generator=torch.Generator().manual_seed(0)), torch.arange(16) % 10
    data = torch.utils.data.TensorDataset(images, labels)
    train_loader, valid_loader = DataLoader(data, batch_size=8), DataLoader(data, batch_size=8)
""")


def test_the_nni_blocks_run_as_written(tmp_path):
    experiment, direct = blocks("python")[1], blocks("python")[2]
    for text, tiny in TINY.items():
        assert text in experiment, text
        experiment = experiment.replace(text, tiny)
    setup = experiment[:experiment.index("experiment = NasExperiment")]
    script = textwrap.dedent(f"""
        import torch
        torch.set_num_threads(1)
        exec({LOADERS!r})
        exec({experiment!r})
        top = experiment.export_top_models(top_k=5, formatter="dict")
        assert len(top) == 5 and top[0] == experiment.export_top_models(formatter="dict")[0], top
        exec({LOADERS!r})
        exec({setup!r})
        exec({direct!r})
        print("mode", strategy.distribution.mode() == strategy.distribution.mode())
    """)
    # NNI writes its experiment under ~/nni-experiments: a HOME of the test's own keeps it out of the user's.
    env = dict(os.environ, HOME=str(tmp_path), PYTHONWARNINGS="ignore")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env,
                            timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "mode True" in result.stdout
