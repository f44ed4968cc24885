"""``export``, ``report`` and ``webui`` subcommands: a search's architectures as files, pages and NNI trials.

Heavy imports (torch, plotly, NNI) happen inside the handlers so ``nas-estimators --help`` stays quick.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..integrations.export import FORMATS
from ..spaces import SPACES
from .. import run_folder
from .common import usage_error



def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register ``export``, ``report`` and ``webui`` on the ``nas-estimators`` subcommand parser."""
    export = commands.add_parser(
        "export", help="write a search's architectures as NNI JSON, genotypes or cell diagrams",
        description="Write the most probable architectures of a search: json (NNI sample dicts, "
                    "architectures.json), genotype (DARTS Genotype lines, or NAS-Bench-201 strings), "
                    "dot/svg/png (one drawing per cell; svg and png need Graphviz) or html (plotly).")
    export.add_argument("path", metavar="DIR", help="search output directory, or a JSON file of architectures")
    # Checked in the handler, not by argparse choices, so that a wrong format is a one-line error.
    export.add_argument("--format", default="json", metavar="{" + ",".join(FORMATS) + "}",
                        help="what to write (default: json)")
    export.add_argument("--top", type=int, default=1, help="export the K most probable architectures (default: 1)")
    export.add_argument("--output", help="folder to write into (default: DIR/export)")
    export.add_argument("--space", choices=SPACES, help="the space, when a JSON file does not say")
    export.set_defaults(handler=_export)

    report = commands.add_parser(
        "report", help=f"write {run_folder.REPORT} for one or more searches",
        description="Write an HTML report: per-label probability heatmaps, entropy and validation accuracy, "
                    "the estimator's diagnostics and the found cells.")
    report.add_argument("paths", nargs="+", metavar="DIR", help="search output directories")
    report.add_argument("--output", help=f"the HTML file (default: DIR/{run_folder.REPORT}, or ./{run_folder.REPORT} for several)")
    report.add_argument("--diagrams", choices=("auto", "svg", "plotly"), default="auto",
                        help="cell drawings: Graphviz svg, plotly, or auto (svg when Graphviz is installed)")
    report.add_argument("--screenshot", help="also write a PNG screenshot of the page (needs Playwright and Chromium)")
    report.add_argument("--screenshot-scale", type=float, default=1.0, help="screenshot size factor (default: 1)")
    report.set_defaults(handler=_report)

    webui = commands.add_parser(
        "webui", help="show a search's top-k architectures as trials in NNI's web UI",
        description="Start an NNI experiment whose trials retrain the top-k architectures of a search, and "
                    "serve NNI's web UI on --port until Ctrl-C.")
    webui.add_argument("path", metavar="DIR", help="search output directory")
    webui.add_argument("--port", type=int, default=8080, help="web UI port (default: 8080)")
    webui.add_argument("--top", type=int, help="how many of the top-k architectures "
                       f"(default: all in {run_folder.TOP_K_JSON})")
    webui.add_argument("--trial-epochs", type=int, default=2, help="retraining epochs per trial (default: 2)")
    webui.add_argument("--concurrency", type=int, default=1, help="trials at once (default: 1)")
    webui.add_argument("--exit-when-done", action="store_true", help="stop the web UI when every trial has ended")
    webui.add_argument("--screenshot", help="when every trial has ended, write a PNG of the trial list with each "
                                            "architecture expanded (needs Playwright and Chromium)")
    webui.add_argument("--screenshot-scale", type=float, default=1.0, help="screenshot size factor (default: 1)")
    webui.set_defaults(handler=_webui)


def _needs_browser(args: argparse.Namespace) -> None:
    """With --screenshot, a one-line usage error unless Playwright and Chromium are installed."""
    from ..integrations.browser import BrowserError, require

    if args.screenshot:
        try:
            require()
        except BrowserError as error:
            raise usage_error(RuntimeError(f"--screenshot: {error}")) from None


def _export(args: argparse.Namespace) -> int:
    from ..integrations.diagrams import GraphvizMissing
    from ..architectures import ArchitectureError, load_search
    from ..integrations.export import export

    if args.format not in FORMATS:
        raise usage_error(ValueError(f"--format: expected one of {', '.join(FORMATS)}, got {args.format!r}"))
    path = Path(args.path)
    try:
        search = load_search(path, space=args.space)
        output = Path(args.output) if args.output else (path if path.is_dir() else path.parent) / "export"
        written = export(search, args.format, output, top=args.top)
    except (ArchitectureError, GraphvizMissing, OSError) as error:
        raise usage_error(error) from None
    for file in written:
        print(file)
    return 0


def _report(args: argparse.Namespace) -> int:
    from ..architectures import ArchitectureError
    from ..integrations.browser import BrowserError
    from ..integrations.diagrams import GraphvizMissing
    from ..integrations.report import write_report

    _needs_browser(args)
    if not 0.1 <= args.screenshot_scale <= 4:
        raise usage_error(ValueError(f"--screenshot-scale: expected 0.1..4, got {args.screenshot_scale}"))
    default = Path(args.paths[0]) / run_folder.REPORT if len(args.paths) == 1 else Path(run_folder.REPORT)
    output = Path(args.output) if args.output else default
    if output.suffix.lower() not in (".html", ".htm"):
        raise usage_error(ValueError(f"--output: expected an .html file, got {output}"))
    try:
        written = write_report(args.paths, output, diagram_style=args.diagrams)
    except (ArchitectureError, GraphvizMissing, OSError) as error:
        raise usage_error(error) from None
    print(written)
    if args.screenshot:
        from ..integrations.browser import HeadlessChromium

        try:
            with HeadlessChromium(width=1300, height=900, scale=args.screenshot_scale) as browser:
                page = browser.open(written.resolve().as_uri(), settle=1.5)
                page.screenshot(path=args.screenshot, full_page=True)
                for error in browser.errors:
                    print(f"page error: {error}", file=sys.stderr)
        except BrowserError as error:
            raise usage_error(error) from None
        print(args.screenshot)
    return 0


def _webui(args: argparse.Namespace) -> int:
    from ..architectures import ArchitectureError, load_search
    from ..integrations.nni_webui import capture_webui, launch, wait_for_trials

    _needs_browser(args)
    if not 0.1 <= args.screenshot_scale <= 4:
        raise usage_error(ValueError(f"--screenshot-scale: expected 0.1..4, got {args.screenshot_scale}"))
    path = Path(args.path)
    if not path.is_dir():
        raise usage_error(ValueError(f"{path}: no such directory"))
    try:
        search = load_search(path)
    except ArchitectureError as error:
        raise usage_error(error) from None
    if args.top is not None:
        if not 1 <= args.top <= len(search.architectures):
            raise usage_error(ValueError(f"--top: expected 1..{len(search.architectures)}, got {args.top}"))
        search.architectures, search.probabilities = search.architectures[:args.top], search.probabilities[:args.top]
    try:
        experiment = launch(search, port=args.port, trial_epochs=args.trial_epochs, concurrency=args.concurrency)
    except (ValueError, RuntimeError) as error:
        raise usage_error(error) from None
    print(f"NNI web UI: http://127.0.0.1:{args.port}  ({len(search.architectures)} trials)", flush=True)
    try:
        wait_for_trials(experiment, len(search.architectures), timeout=float("inf"),
                        progress=lambda text: print(text, flush=True))
        if args.screenshot:
            capture_webui(args.port, args.screenshot, scale=args.screenshot_scale)
            print(args.screenshot, flush=True)
        if not args.exit_when_done:
            print("all trials ended; the web UI stays up until Ctrl-C", flush=True)
            while True:
                time.sleep(3600)
    finally:
        experiment.stop()
    return 0
