"""optuna-dashboard, for real: the tuner's study served on loopback and rendered by headless Chromium."""

import html
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import optuna
import pytest

from helpers import needs_browser
from nas_estimators.cli import main
from nas_estimators.integrations.browser import HeadlessChromium

pytestmark = needs_browser


def _dashboard_command() -> list[str]:
    """The optuna-dashboard of this Python: its console script, or the same entry point run by this interpreter."""
    pytest.importorskip("optuna_dashboard", reason="optuna-dashboard not installed (pip install optuna-dashboard)")
    script = Path(sys.executable).parent / "optuna-dashboard"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from optuna_dashboard._cli import main; "
                                  "sys.argv[0] = 'optuna-dashboard'; sys.exit(main())"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(url: str, server: subprocess.Popen, seconds: float = 60) -> bytes:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"optuna-dashboard exited with {server.returncode}: {server.stdout.read()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    pytest.fail(f"optuna-dashboard did not answer {url} within {seconds} s")


def _rendered_text(url: str, ready: str) -> tuple[str, str]:
    """The DOM after the React app ran (as HTML) and its text, once the JavaScript condition ``ready`` holds."""
    with HeadlessChromium() as browser:
        page = browser.open(url, timeout=180)
        page.wait_for_load_state("networkidle")  # the app's API requests answered
        page.wait_for_function(ready)
        page.wait_for_timeout(1000)
        dom = page.content()
    visible = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S)
    visible = html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", visible)))
    return dom, visible


@pytest.fixture
def tuned_study(tmp_path, capsys):
    output = tmp_path / "tune"
    code = main(["tune", "--estimator", "sf", "--space", "nb201", "--width", "4", "--cells", "1", "--epochs", "2",
                 "--n-trials", "2", "--pruner", "none", "--sampler-seed", "1", "--study-name", "dash-study",
                 "--output", str(output)])
    capsys.readouterr()
    assert code == 0
    storage = f"sqlite:///{output / 'optuna.db'}"
    return storage, optuna.load_study(study_name="dash-study", storage=storage)


def test_dashboard_shows_the_study_trials_parameters_and_intermediate_values(tuned_study):
    storage, study = tuned_study
    port = _free_port()
    server = subprocess.Popen([*_dashboard_command(), storage, "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=dict(os.environ, PYTHONWARNINGS="ignore"))
    try:
        base = f"http://127.0.0.1:{port}"
        summaries = json.loads(_wait_for(f"{base}/api/studies", server))["study_summaries"]
        study_id = next(s["study_id"] for s in summaries if s["study_name"] == "dash-study")

        dom, text = _rendered_text(f"{base}/dashboard/studies/{study_id}",
                                   "document.querySelector('#graph-intermediate-values .main-svg')")
        assert "dash-study" in text
        # The intermediate-value plot: its plotly container holds an SVG with one trace per trial.
        assert 'id="graph-intermediate-values"' in dom, "no intermediate-value plot on the study page"
        plot = dom[dom.index('id="graph-intermediate-values"'):]
        assert 'class="main-svg"' in plot[:20000]
        assert "Intermediate values" in text and "trial #0" in text and "trial #1" in text
        assert "arc_learning_rate" in text and "baseline_decay" in text  # the best trial's parameters
        best = study.best_trial
        assert f"Best Trial (number={best.number})" in text

        _, trials_text = _rendered_text(f"{base}/dashboard/studies/{study_id}/trials",
                                        "document.body.innerText.includes('Trial 1')")
        assert "Trial 0" in trials_text and "Trial 1" in trials_text and "Complete" in trials_text
        first = study.trials[0]
        for name, value in first.params.items():  # the selected (first) trial's parameters and values
            assert f"{name} {value!r}" in trials_text
        for step, value in first.intermediate_values.items():
            assert f"{step} {value!r}" in trials_text
        assert "architecture" in trials_text and "search_seconds" in trials_text  # user attributes
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
