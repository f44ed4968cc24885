"""Helpers shared by test modules (pytest puts this folder on sys.path)."""

import shutil

import pytest

from nas_estimators.cli import main
from nas_estimators.integrations.browser import BrowserError, require

needs_graphviz = pytest.mark.skipif(shutil.which("dot") is None,
                                    reason="Graphviz's dot is not installed (Debian: apt-get install graphviz)")


def _browser_missing() -> str | None:
    try:
        require()
    except BrowserError as error:
        return str(error)
    return None


# Headless Chromium driven by Playwright; the reason says what to install.
_BROWSER_MISSING = _browser_missing()
needs_browser = pytest.mark.skipif(_BROWSER_MISSING is not None, reason=_BROWSER_MISSING or "")


def tiny_search(output, *extra, seed=0):
    """A real (tiny, fast) search through the command line; returns ``output``."""
    code = main(["search", "--epochs", "2", "--batch-size", "256", "--no-progress", "--seed", str(seed),
                 "--output", str(output), *extra])
    assert code == 0
    return output


def one_line_error(capsys, argv) -> str:
    """Run the command line expecting a usage error: exit status 2 and one line, no traceback."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "Traceback" not in error, error
    return error
