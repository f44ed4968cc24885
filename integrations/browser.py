"""Headless Chromium through the DevTools protocol: load a page, run script, take a screenshot, collect errors.

Used to screenshot reports and NNI's web UI and, in the tests, to check that pages render without
script errors. Only Chromium itself and the ``websockets`` package (a dependency of NNI) are needed.

Example:
    >>> with HeadlessChromium() as browser:                         # doctest: +SKIP
    ...     page = browser.open("file:///tmp/report.html")
    ...     page.evaluate("document.title"), page.errors
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_HINT = "install Chromium (Debian: apt-get install chromium)"


class BrowserError(RuntimeError):
    """Chromium is missing, did not start, or a page did not load in time."""


def find_chromium() -> str | None:
    """Path of a Chromium executable (``$CHROMIUM`` first), or None."""
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return explicit if shutil.which(explicit) else None
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


class Page:
    """One browser tab: navigation, script evaluation, screenshots; ``errors`` holds every script error."""

    def __init__(self, socket: Any) -> None:
        self._socket = socket
        self._next_id = 0
        self.errors: list[str] = []  # script errors: uncaught exceptions, console.error, failed scripts
        self.failed_requests: list[str] = []  # resources that did not load (fonts from a CDN offline...)
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")

    def call(self, method: str, timeout: float = 30.0, **params: Any) -> dict:
        """Send one DevTools command and return its result, recording the events that arrive meanwhile."""
        self._next_id += 1
        request_id = self._next_id
        self._socket.send(json.dumps({"id": request_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            message = self._receive(deadline, method)
            if message.get("id") == request_id:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error'].get('message', message['error'])}")
                return message.get("result", {})

    def _receive(self, deadline: float, waiting_for: str) -> dict:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BrowserError(f"no answer from Chromium to {waiting_for} in time")
        try:
            message = json.loads(self._socket.recv(timeout=remaining))
        except TimeoutError:
            raise BrowserError(f"no answer from Chromium to {waiting_for} in time") from None
        self._record(message)
        return message

    def _record(self, message: dict) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            description = details.get("exception", {}).get("description") or details.get("text", "exception")
            self.errors.append(f"uncaught: {description.splitlines()[0]}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            texts = [str(arg.get("value", arg.get("description", ""))) for arg in params.get("args", [])]
            self.errors.append("console.error: " + " ".join(texts))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            text = f"{entry.get('source', 'log')}: {entry.get('text', '')} {entry.get('url', '')}".strip()
            (self.failed_requests if entry.get("source") == "network" else self.errors).append(text)

    def goto(self, url: str, settle: float = 0.5, timeout: float = 60.0) -> None:
        """Load ``url`` and wait for its load event, then ``settle`` seconds for scripts to draw."""
        self.call("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'", timeout=timeout)
        time.sleep(settle)
        self.pump(0.05)

    def pump(self, seconds: float) -> None:
        """Collect the events (errors) that arrive during ``seconds``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                self._record(json.loads(self._socket.recv(timeout=max(deadline - time.monotonic(), 0.001))))
            except TimeoutError:
                return

    def evaluate(self, expression: str, timeout: float = 30.0) -> Any:
        """The JSON value of a JavaScript expression (promises are awaited)."""
        result = self.call("Runtime.evaluate", timeout=timeout, expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text", "")
            raise BrowserError(f"script failed: {text.splitlines()[0] if text else expression}")
        return result.get("result", {}).get("value")

    def wait_for(self, condition: str, timeout: float = 60.0, interval: float = 0.25) -> None:
        """Poll a JavaScript condition until it is true; BrowserError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not self.evaluate(f"Boolean({condition})"):
            if time.monotonic() > deadline:
                raise BrowserError(f"timed out after {timeout:.0f} s waiting for {condition}")
            self.pump(interval)

    def text(self) -> str:
        """The visible text of the page."""
        return self.evaluate("document.body ? document.body.innerText : ''")

    def screenshot(self, path: str | os.PathLike[str], full_page: bool = True, max_height: int = 20000,
                   scale: float = 1.0) -> Path:
        """Write a PNG of the page (the whole scrollable page when ``full_page``), ``scale`` times its size."""
        params: dict[str, Any] = {"format": "png"}
        if full_page or scale != 1.0:
            size = self.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
                                 if full_page else "[window.innerWidth, window.innerHeight]")
            params.update(captureBeyondViewport=full_page,
                          clip={"x": 0, "y": 0, "width": size[0], "height": min(size[1], max_height), "scale": scale})
        data = self.call("Page.captureScreenshot", timeout=120, **params)["data"]
        path = Path(path)
        path.write_bytes(base64.b64decode(data))
        return path


class HeadlessChromium:
    """A headless Chromium process with one page; a context manager that ends the process on exit."""

    def __init__(self, width: int = 1400, height: int = 1000, executable: str | None = None) -> None:
        self.executable = executable or find_chromium()
        if self.executable is None:
            raise BrowserError(f"Chromium not found; {INSTALL_HINT}")
        self.width, self.height = width, height
        self._process: subprocess.Popen | None = None
        self._profile: tempfile.TemporaryDirectory | None = None
        self._sockets: list[Any] = []
        self._log: Any = None

    def __enter__(self) -> "HeadlessChromium":
        self._profile = tempfile.TemporaryDirectory(prefix="nas-estimators-chromium-")
        # --no-sandbox: Chromium refuses to start as root (containers, CI) with its sandbox on.
        command = [self.executable, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                   "--disable-dev-shm-usage", "--hide-scrollbars", f"--window-size={self.width},{self.height}",
                   "--remote-debugging-port=0", f"--user-data-dir={self._profile.name}", "about:blank"]
        self._log = open(Path(self._profile.name, "chromium.log"), "w+")  # a file: a full pipe would stall it
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=self._log)
        self._port = self._read_port()
        return self

    def _read_port(self) -> int:
        # Chromium writes the port it chose into DevToolsActivePort in its profile folder.
        assert self._process is not None and self._profile is not None
        port_file = Path(self._profile.name, "DevToolsActivePort")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self._process.poll() is None:
            if port_file.is_file():
                first_line = port_file.read_text().split("\n", 1)[0].strip()
                if first_line.isdigit():
                    return int(first_line)
            time.sleep(0.05)
        self._log.seek(0)
        output = self._log.read()[-500:].strip()
        self.close()
        raise BrowserError(f"Chromium did not start: {output or 'no output'}")

    def open(self, url: str, settle: float = 0.5, timeout: float = 60.0) -> Page:
        """A new page showing ``url`` (loaded, then ``settle`` seconds more)."""
        from websockets.sync.client import connect

        request = urllib.request.Request(f"http://127.0.0.1:{self._port}/json/new?about:blank", method="PUT")
        with urllib.request.urlopen(request, timeout=30) as answer:
            target = json.load(answer)
        socket = connect(target["webSocketDebuggerUrl"], max_size=None, open_timeout=30)
        self._sockets.append(socket)
        page = Page(socket)
        page.call("Emulation.setDeviceMetricsOverride", width=self.width, height=self.height,
                  deviceScaleFactor=1, mobile=False)
        page.goto(url, settle=settle, timeout=timeout)
        return page

    def close(self) -> None:
        for socket in self._sockets:
            try:
                socket.close()
            except Exception:  # noqa: BLE001  (a dead socket needs no closing)
                pass
        self._sockets.clear()
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._profile is not None:
            self._profile.cleanup()
            self._profile = None

    def __exit__(self, *exc_info: object) -> None:
        self.close()
