"""Headless Chromium through Playwright: load a page, run script, take a screenshot, collect errors.

Used to screenshot reports and NNI's web UI and, in the tests, to check that pages render without
script errors. Needs the ``playwright`` package (``pip install 'nas-estimators[browser]'``) and a
Chromium executable (the system's: Playwright's own browser download is not used).

Example:
    >>> with HeadlessChromium() as browser:                         # doctest: +SKIP
    ...     page = browser.open("file:///tmp/page.html")   # a Playwright page
    ...     page.evaluate("document.title"), browser.errors
"""

from __future__ import annotations

import os
import shutil
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_HINT = "install Chromium (Debian: apt-get install chromium)"
PLAYWRIGHT_HINT = "pip install 'nas-estimators[browser]'"


class BrowserError(RuntimeError):
    """Playwright or Chromium is missing, Chromium did not start, or a page failed (script error, timeout)."""


def find_chromium() -> str | None:
    """Path of a Chromium executable (``$CHROMIUM`` first), or None."""
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return explicit if shutil.which(explicit) else None
    return next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)


def require() -> Any:
    """The ``playwright.sync_api`` module; BrowserError (one line: what to install) without it or Chromium."""
    try:
        from playwright import sync_api
    except ImportError:
        raise BrowserError(f"Playwright is not installed; {PLAYWRIGHT_HINT}") from None
    if find_chromium() is None:
        raise BrowserError(f"Chromium not found; {INSTALL_HINT}")
    return sync_api


def _first_line(error: BaseException) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0]


class HeadlessChromium:
    """Headless Chromium as a context manager; ``open`` gives Playwright pages.

    ``errors`` collects the pages' script errors (uncaught exceptions, console.error), ``failed_requests``
    the resources that did not load (fonts from a CDN offline...). ``scale``: device pixels per CSS pixel,
    the size of screenshots. Playwright's errors (timeouts, failed scripts) leave the block as BrowserError.
    """

    def __init__(self, width: int = 1400, height: int = 1000, scale: float = 1.0) -> None:
        self._api, self.executable = require(), find_chromium()
        self.viewport, self.scale = {"width": width, "height": height}, scale
        self.errors: list[str] = []
        self.failed_requests: list[str] = []

    def __enter__(self) -> "HeadlessChromium":
        self._playwright = self._api.sync_playwright().start()
        try:  # --no-sandbox: Chromium refuses to start as root (containers, CI) with its sandbox on.
            self._browser = self._playwright.chromium.launch(
                executable_path=self.executable, args=["--no-sandbox", "--disable-dev-shm-usage"])
        except self._api.Error as error:
            self._playwright.stop()
            raise BrowserError(f"Chromium did not start: {_first_line(error)}") from None
        return self

    def open(self, url: str, settle: float = 0.5, timeout: float = 60.0) -> Any:
        """A new Playwright page showing ``url`` (loaded, then ``settle`` seconds more); ``timeout`` per action."""
        page = self._browser.new_page(viewport=self.viewport, device_scale_factor=self.scale)
        page.set_default_timeout(timeout * 1000)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {_first_line(error)}"))
        page.on("console", self._console)
        page.goto(url)
        page.wait_for_timeout(settle * 1000)
        return page

    def _console(self, message: Any) -> None:
        if message.type != "error":
            return
        if message.text.startswith("Failed to load resource"):  # a network failure, not a script error
            self.failed_requests.append(f"{message.text} {message.location.get('url', '')}".strip())
        else:
            self.errors.append(f"console.error: {message.text}")

    def __exit__(self, kind: type | None, error: BaseException | None, traceback: Any) -> None:
        self._browser.close()
        self._playwright.stop()
        if isinstance(error, self._api.Error):
            raise BrowserError(_first_line(error)) from None
