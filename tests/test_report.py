"""``report.html``: its sections from real searches, rendered in headless Chromium without script errors."""

from __future__ import annotations

import json
import shutil
import struct
import sys
import zlib

import pandas as pd
import pytest

from nas_estimators.architectures import load_search

from helpers import needs_browser, needs_graphviz, one_line_error, tiny_search
from nas_estimators.cli import main
from nas_estimators.integrations import diagrams
from nas_estimators.integrations.report import SECTIONS, write_report


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An SF search of the DARTS space and a RELAX search of NAS-Bench-201, both tiny and real."""
    root = tmp_path_factory.mktemp("runs")
    darts = tiny_search(root / "sf-darts", "--width", "4", "--cells", "3", "--top-k", "3", seed=1)
    nb201 = tiny_search(root / "relax-nb201", "--space", "nb201", "--width", "4", "--cells", "1", "--estimator", "relax",
                        seed=1)
    return darts, nb201


def figure_data(page_html: str, div_id: str) -> list[dict]:
    """The traces plotly draws into ``div_id`` (the JSON given to Plotly.newPlot)."""
    start = page_html.index(f'"{div_id}",') + len(div_id) + 3
    data, _ = json.JSONDecoder().raw_decode(page_html[start:].lstrip())
    return data


def values(array) -> list:
    """A plotly JSON array as a flat list: plain lists, or the base64 typed arrays plotly 6 writes."""
    if isinstance(array, dict) and "bdata" in array:
        import base64

        import numpy as np

        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).ravel().tolist()
    return [x for row in array for x in (row if isinstance(row, list) else [row])]


def test_report_has_every_section_with_the_searches_numbers(runs, tmp_path):
    darts, nb201 = runs
    page = write_report([darts, nb201], tmp_path / "report.html", diagram_style="plotly").read_text()
    for section in SECTIONS:
        assert f'<section id="{section}">' in page
    assert page.count("plotly.js v") == 1  # plotly.js inlined once: the page works offline
    # Heatmaps: one per label, each label's candidates against the epochs.
    heatmaps = [trace for trace in figure_data(page, "figure-1") if trace["type"] == "heatmap"]
    probabilities = pd.read_csv(darts / "probabilities.csv")
    assert [trace["name"] for trace in heatmaps] == list(dict.fromkeys(probabilities["label"]))
    first = probabilities[probabilities["label"] == "normal/op_2_0"]
    assert values(heatmaps[0]["x"]) == [0, 1]
    assert sorted(values(heatmaps[0]["z"])) == pytest.approx(sorted(first["probability"]))
    # Entropy and accuracy curves carry the history's numbers, one trace per search and quantity.
    curves = figure_data(page, "figure-3")
    history = pd.read_csv(darts / "history.csv")
    entropy = [trace for trace in curves if trace["name"] == "sf-darts"][0]
    assert values(entropy["y"]) == pytest.approx(list(history["entropy"]))
    assert {trace["name"] for trace in curves} == {"sf-darts", "relax-nb201"}
    # Diagnostics: SF's baseline and RELAX's surrogate loss.
    diagnostics = page[page.index('<section id="diagnostics">'):page.index('<section id="cells">')]
    assert '"text":"baseline"' in diagnostics and '"text":"surrogate_loss"' in diagnostics
    # Top-k: DARTS genotypes and NAS-Bench-201 strings.
    top_k = page[page.index('<section id="top-k">'):page.index('<section id="probabilities">')]
    # the top 3, after the exported cell (the best re-scored of the top 5) where it is not among them
    assert top_k.count("Genotype(normal=") == len(load_search(darts).architectures) in (3, 4)
    assert top_k.count("~0|+|") == 5


def test_gradient_variance_is_plotted_when_recorded(runs, tmp_path):
    darts, _ = runs
    copy = tmp_path / "with-variance"
    shutil.copytree(darts, copy)
    history = pd.read_csv(copy / "history.csv")
    history["gradient_variance"] = [4.0, 2.5]
    history.to_csv(copy / "history.csv", index=False)
    page = write_report([copy], tmp_path / "report.html", diagram_style="plotly").read_text()
    traces = figure_data(page, "figure-3")
    assert [values(t["y"]) for t in traces if t["yaxis"] == "y2"] == [[4.0, 2.5]]  # second panel, after baseline


@needs_graphviz
def test_cells_are_inline_svg_with_every_operation(runs, tmp_path):
    darts, _ = runs
    page = write_report([darts], tmp_path / "report.html").read_text()
    cells = page[page.index('<section id="cells">'):]
    architecture = json.loads((darts / "architecture.json").read_text())
    assert cells.count("<svg") == 2 and 'data-cell="normal"' in cells and 'data-cell="reduce"' in cells
    for cell in ("normal", "reduce"):
        drawing = cells[cells.index(f'data-cell="{cell}"'):]
        drawing = drawing[:drawing.index("</figure>")]
        operations = [value for label, value in architecture.items() if label.startswith(f"{cell}/op_")]
        for operation in set(operations):
            assert drawing.count(f">{operation}</text>") == operations.count(operation)


def test_without_graphviz_the_cells_are_plotly(runs, tmp_path, monkeypatch):
    monkeypatch.setattr(diagrams.shutil, "which", lambda name: None)
    _, nb201 = runs
    page = write_report([nb201], tmp_path / "report.html").read_text()
    cells = page[page.index('<section id="cells">'):]
    assert "<svg" not in cells and "NAS-Bench-201 cell" in cells


def png_size_and_colours(path) -> tuple[int, int, int]:
    """Width, height and the number of distinct row checksums of a PNG (8-bit RGB/RGBA, no filters needed)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    chunks, position = [], 8
    while position < len(data):
        length = struct.unpack(">I", data[position:position + 4])[0]
        kind = data[position + 4:position + 8]
        if kind == b"IDAT":
            chunks.append(data[position + 8:position + 8 + length])
        position += 12 + length
    raw = zlib.decompress(b"".join(chunks))
    stride = len(raw) // height
    return width, height, len({raw[row * stride:(row + 1) * stride] for row in range(0, height, 7)})


@needs_browser
def test_report_renders_in_chromium_without_script_errors(runs, tmp_path):
    from nas_estimators.integrations.browser import HeadlessChromium

    darts, nb201 = runs
    report = write_report([darts, nb201], tmp_path / "report.html")
    with HeadlessChromium(width=1300, height=900) as browser:
        page = browser.open(report.resolve().as_uri(), settle=1.0)
        page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 3")
        assert browser.errors == []
        assert browser.failed_requests == []  # self-contained: nothing fetched from the network
        for section in SECTIONS:  # each section is on the page and takes space
            assert page.evaluate(f"document.getElementById('{section}').getBoundingClientRect().height") > 50
        heatmap_panels = page.evaluate("document.getElementById('figure-1').data.length")
        assert heatmap_panels == len(set(pd.read_csv(darts / "probabilities.csv")["label"]))
        text = page.inner_text("body")
        assert "Architecture probabilities over the epochs" in text and "Estimator diagnostics" in text
        screenshot = tmp_path / "report.png"
        page.screenshot(path=screenshot, full_page=True)
    width, height, distinct_rows = png_size_and_colours(screenshot)
    assert width == 1300 and height > 2000
    assert distinct_rows > 50  # a drawn page, not a blank one


def test_report_command_default_paths_and_bad_input(runs, tmp_path, capsys, monkeypatch):
    darts, nb201 = runs
    assert main(["report", str(nb201), "--diagrams", "plotly"]) == 0
    assert (nb201 / "report.html").stat().st_size > 100_000
    monkeypatch.chdir(tmp_path)
    assert main(["report", str(darts), str(nb201), "--diagrams", "plotly"]) == 0
    assert '<section id="cells">' in (tmp_path / "report.html").read_text()
    capsys.readouterr()
    assert "no such directory" in one_line_error(capsys, ["report", str(tmp_path / "missing")])
    assert "expected an .html file" in one_line_error(capsys, ["report", str(darts), "--output", "r.png"])
    broken = tmp_path / "broken"
    shutil.copytree(nb201, broken)
    (broken / "report.html").unlink()
    (broken / "history.csv").unlink()
    assert "no history.csv" in one_line_error(capsys, ["report", str(broken)])
    (broken / "top_k.json").write_text(json.dumps([{"rank": 1, "architecture": {"cell/0_1": "conv_5x5"}}]))
    (broken / "architecture.json").unlink()
    assert "conv_5x5" in one_line_error(capsys, ["report", str(broken)])
    assert not (broken / "report.html").exists()


@needs_browser
def test_report_command_screenshot(runs, tmp_path, capsys):
    _, nb201 = runs
    shot = tmp_path / "shot.png"
    assert main(["report", str(nb201), "--output", str(tmp_path / "r.html"), "--screenshot", str(shot),
                 "--diagrams", "plotly"]) == 0
    assert png_size_and_colours(shot)[2] > 50
    assert "page error" not in capsys.readouterr().err


def test_without_playwright_the_browser_and_screenshot_say_what_to_install(tmp_path, capsys, monkeypatch):
    from nas_estimators.integrations.browser import BrowserError, HeadlessChromium

    monkeypatch.setitem(sys.modules, "playwright", None)  # ``import playwright`` now fails
    with pytest.raises(BrowserError, match=r"^Playwright is not installed; pip install 'nas-estimators\[browser\]'$"):
        HeadlessChromium()
    for command in ("report", "webui"):  # before any work: the web UI starts no experiment
        error = one_line_error(capsys, [command, str(tmp_path), "--screenshot", str(tmp_path / "shot.png")])
        assert error.endswith("--screenshot: Playwright is not installed; pip install 'nas-estimators[browser]'")


def test_without_chromium_the_screenshot_option_says_what_to_install(tmp_path, capsys, monkeypatch):
    pytest.importorskip("playwright", reason="Playwright is not installed; pip install 'nas-estimators[browser]'")
    monkeypatch.setenv("CHROMIUM", "no-such-chromium")
    error = one_line_error(capsys, ["report", str(tmp_path), "--screenshot", str(tmp_path / "shot.png")])
    assert error.endswith("--screenshot: Chromium not found; install Chromium (Debian: apt-get install chromium)")


def test_ranking_panel_curves_are_plotted_when_recorded(runs, tmp_path):
    _, nb201 = runs
    copy = tmp_path / "with-panel"
    shutil.copytree(nb201, copy)
    history = pd.read_csv(copy / "history.csv")
    history["panel_tau"] = [0.125, 0.5]
    history["panel_best_benchmark_acc"] = [91.5, 93.25]
    history.to_csv(copy / "history.csv", index=False)
    page = write_report([copy], tmp_path / "report.html", diagram_style="plotly").read_text()
    assert "supernet ranking: Kendall" in page and "supernet's best panel cell" in page
    plotted = [values(t["y"]) for figure in range(1, 8) if f'"figure-{figure}",' in page
               for t in figure_data(page, f"figure-{figure}")]
    assert [0.125, 0.5] in plotted and [91.5, 93.25] in plotted
    plain = write_report([nb201], tmp_path / "plain.html", diagram_style="plotly").read_text()
    assert "supernet ranking: Kendall" not in plain
