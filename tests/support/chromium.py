"""A real headless Chromium driven over the DevTools protocol: DOM, console, network, screenshots.

Debian's `chromium` (`--headless=new --no-sandbox --disable-gpu`, as root) with
`--remote-debugging-port=0`; the page target's websocket speaks CDP. The
session records every console message, log entry (CSP violations land there),
uncaught exception and network request, so a test can assert that a page had
no errors and loaded nothing from elsewhere.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import websocket

from tests.support.binaries import require


class Browser:
    def __init__(self, width: int = 1280, height: int = 900) -> None:
        self.binary = require("chromium")
        self.profile = Path(tempfile.mkdtemp(prefix="apm-chromium-"))
        self.proc = subprocess.Popen(
            [self.binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--remote-debugging-port=0",
             "--remote-allow-origins=*", f"--user-data-dir={self.profile}", f"--window-size={width},{height}",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions",
             "--disable-background-networking", "--disable-component-update", "--disable-sync", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.port = self._devtools_port()
        self.events: list[dict[str, Any]] = []
        self._replies: dict[int, dict[str, Any]] = {}
        self._cond = threading.Condition()
        self._next = 0
        target = self._page_target()
        self.ws = websocket.create_connection(target["webSocketDebuggerUrl"], timeout=30, suppress_origin=True)
        # The reader blocks on recv() for as long as the page is quiet (a test may wait a minute
        # for the daemon before it opens anything); a recv timeout would end the reader for good.
        self.ws.settimeout(None)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")

    def _devtools_port(self) -> int:
        assert self.proc.stderr is not None
        deadline = time.monotonic() + 90  # a cold start on a loaded 2-core machine
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline().decode(errors="replace")
            m = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
            if m:
                # Keep draining stderr so chromium never blocks on a full pipe.
                threading.Thread(target=self.proc.stderr.read, daemon=True).start()
                return int(m.group(1))
            if not line and self.proc.poll() is not None:
                break
        self.close()
        raise RuntimeError("chromium did not start its DevTools endpoint")

    def _page_target(self, timeout: float = 60.0) -> dict[str, Any]:
        """The about:blank page's target: DevTools listens before the page exists, so on a busy
        machine the first /json/list can come back without it."""
        deadline = time.monotonic() + timeout
        while True:
            page = next((t for t in self._json("list") if t["type"] == "page"), None)
            if page is not None:
                return page  # type: ignore[no-any-return]
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"chromium opened no page target in {timeout:g}s")
            time.sleep(0.05)

    def _json(self, what: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/{what}", timeout=10) as r:
            return json.load(r)

    def _read(self) -> None:
        while True:
            try:
                message = json.loads(self.ws.recv())
            except (websocket.WebSocketException, OSError, ValueError):
                return
            with self._cond:
                if "id" in message:
                    self._replies[message["id"]] = message
                else:
                    self.events.append(message)
                self._cond.notify_all()

    def call(self, method: str, timeout: float = 60.0, **params: Any) -> dict[str, Any]:
        with self._cond:
            self._next += 1
            ident = self._next
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        with self._cond:
            if not self._cond.wait_for(lambda: ident in self._replies, timeout):
                raise TimeoutError(f"no reply to {method}")
            reply = self._replies.pop(ident)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def wait_for_event(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30.0,
                       start: int = 0) -> dict[str, Any]:
        with self._cond:
            found: list[dict[str, Any]] = []

            def seen() -> bool:
                found[:] = [e for e in self.events[start:] if predicate(e)]
                return bool(found)

            if not self._cond.wait_for(seen, timeout):
                raise TimeoutError("the expected DevTools event never came")
            return found[0]

    def open(self, url: str, timeout: float = 60.0) -> None:
        start = len(self.events)
        self.call("Page.navigate", url=url)
        self.wait_for_event(lambda e: e["method"] == "Page.loadEventFired", timeout, start)

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=False)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def errors(self) -> list[str]:
        """Console errors, error log entries (CSP violations, failed loads) and uncaught exceptions."""
        out = []
        for e in self.events:
            p = e.get("params", {})
            if e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in p["args"]))
            elif e["method"] == "Log.entryAdded" and p["entry"]["level"] == "error":
                out.append(f"log ({p['entry']['source']}): {p['entry']['text']}")
            elif e["method"] == "Runtime.exceptionThrown":
                out.append("exception: " + p["exceptionDetails"].get("text", ""))
        return out

    def requests(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events if e["method"] == "Network.requestWillBeSent"]

    def close(self) -> None:
        try:
            if hasattr(self, "ws"):
                self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            shutil.rmtree(self.profile, ignore_errors=True)
