"""The status page in a real headless Chromium, against the daemon started as a user starts it.

Known traffic goes in (StatsD lines with known latencies, three bad lines), one Redis target is
real and one points at a closed port. The browser then shows what a person reads: the operation
row with the p99 PromQL's histogram_quantile gives over those buckets and the rate over the
window the page names, the broken target as DOWN with its error, the parse errors counted. The
page must log no error (CSP violations included), load nothing but itself, and refresh in place.
A screenshot is kept in the test's directory.
"""

from __future__ import annotations

import base64
import json
import math
import re
import socket
import ssl
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from exporter.families import LATENCY_BUCKETS
from exporter.tools._cli import ms
from exporter.tools.quantiles import histogram_quantile
from tests.support.chromium import Browser
from tests.support.daemon import Daemon
from tests.support.net import free_port
from tests.support.servers import RedisServer
from tests.support.tls import make_pki

STEP = "0.5"  # seconds between the daemon's status samples (APM_STATUS_STEP_SECONDS)
OK_MS, SLOW_MS = [12.0] * 180, [420.0] * 20  # checkout: 180 fast, 20 slow errors


@pytest.fixture
def browser() -> Iterator[Browser]:
    b = Browser()
    yield b
    b.close()


def expected_p99(latencies_ms: list[float]) -> float:
    bounds = (*LATENCY_BUCKETS, math.inf)
    return histogram_quantile(0.99, [(b, float(sum(1 for v in latencies_ms if v / 1000 <= b))) for b in bounds])


def status(daemon: Daemon, headers: dict[str, str] | None = None) -> dict[str, Any]:
    code, _, body = daemon.get("/api/v1/status", headers)
    assert code == 200, body
    return json.loads(body)


def wait_for(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.1)


def send(port: int, lines: list[str]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for i in range(0, len(lines), 25):
            s.sendto("\n".join(lines[i:i + 25]).encode(), ("127.0.0.1", port))


ROWS_JS = """
(sel => [...document.querySelectorAll(sel + ' tbody tr')].map(tr => [...tr.cells].map(td => td.innerText.trim())))
"""


def rows(browser: Browser, section: str) -> list[list[str]]:
    return browser.evaluate(f"{ROWS_JS}('#{section}')")  # type: ignore[no-any-return]


def test_the_page_shows_known_traffic_in_a_real_browser(
        daemon_factory: Callable[..., Daemon], redis_server: RedisServer, browser: Browser, tmp_path: Path) -> None:
    udp = free_port(socket.SOCK_DGRAM)
    daemon = daemon_factory({
        "statsd": {"listeners": [f"udp://127.0.0.1:{udp}"]},
        "collectors": {"host": {"enabled": True}},
        "probes": {"redis": [{"name": "sessions", "url": redis_server.url},
                             {"name": "broker", "url": f"redis://127.0.0.1:{free_port()}/0", "timeout": "1s"}]},
    }, env={"APM_STATUS_STEP_SECONDS": STEP})
    lines = [f"apm.operation:{v}|ms|#operation:checkout,outcome:ok" for v in OK_MS]
    lines += [f"apm.operation:{v}|ms|#operation:checkout,outcome:error" for v in SLOW_MS]
    lines += ["apm.operation:1.5|ms|#operation:search,outcome:ok"] * 40
    lines += ["this is not statsd", "neither:is|this", "apm.operation:abc|ms"]
    # The page counts what arrived within its window, which opens at the daemon's first status
    # sample: traffic that lands before that sample (a first sample late on a loaded machine)
    # is rightly not counted, so the traffic goes in once the window is open (two samples).
    wait_for(lambda: status(daemon)["window_seconds"] is not None, "the daemon never took two status samples")
    send(udp, lines)
    seen: list[dict[str, float]] = [{}]

    def counted() -> dict[str, float]:
        seen[0] = {o["operation"]: o["count"] for o in status(daemon)["operations"]
                   if o["operation"] in ("checkout", "search")}
        return seen[0]

    try:
        wait_for(lambda: counted() == {"checkout": 200, "search": 40}, "", timeout=90)
    except TimeoutError:
        raise TimeoutError(f"the daemon's status never counted the traffic; last seen: {seen[0]}") from None
    # A window of some seconds, so the page's "last N s" (to 0.1 s) pins the rate to about 1%.
    wait_for(lambda: (status(daemon)["window_seconds"] or 0) >= 5, "the window never grew")
    # A probe's first read also imports its driver: on a loaded machine it can miss its timeout
    # and back off, so the page is read once the daemon itself has both targets where the test
    # put them (the page must then show the same), not after a fixed number of samples.
    def targets_settled() -> bool:
        got = {t["target"]: t for t in status(daemon)["targets"]}
        return (got.get("sessions", {}).get("up") == 1
                and got.get("broker", {}).get("up") == 0 and bool(got["broker"]["last_error"]))

    wait_for(targets_settled, "the daemon never had sessions up and broker down with its error", timeout=90)

    browser.open(daemon.url + "/")
    shot = browser.screenshot(tmp_path / "status-page.png")
    print(f"screenshot: {shot}")

    title = browser.evaluate("document.querySelector('#operations h2').innerText")
    m = re.search(r"last ([\d.]+) (s|min)", title)
    assert m, title
    window = float(m.group(1)) * (60 if m.group(2) == "min" else 1)
    header = browser.evaluate("[...document.querySelectorAll('#operations thead th')].map(th => th.innerText)")
    ops = {r[0]: dict(zip(header, r, strict=True)) for r in rows(browser, "operations")}
    assert list(ops).index("checkout") < list(ops).index("search")  # slowest first
    checkout = ops["checkout"]
    assert checkout["count"] == "200"
    assert checkout["errors"] == "10.00%"
    assert checkout["p99"] == ms(expected_p99(OK_MS + SLOW_MS))
    # The rate over the window the page names: that name is rounded to 0.1 s, the rate to 0.01.
    shown = float(checkout["rate/s"])
    assert abs(shown - 200 / window) <= 200 * 0.05 / (window * (window - 0.05)) + 0.005, (shown, window)
    assert float(ops["search"]["rate/s"]) == pytest.approx(shown / 5, abs=0.01)

    targets = {r[1]: r for r in rows(browser, "targets")}
    assert targets["broker"][2] == "DOWN" and "ConnectionError" in targets["broker"][5]
    assert targets["sessions"][2] == "up"
    assert ["DOWN", "up"] == [r[2] for r in rows(browser, "targets")]  # down first

    statsd = browser.evaluate("document.querySelector('#statsd').innerText")
    reasons = dict(re.findall(r"(malformed_line|invalid_value|invalid_type)\t(\d+)", statsd))
    assert sum(map(int, reasons.values())) == 3, statsd

    assert browser.evaluate("document.querySelector('.score').innerText").isdigit()
    links = browser.evaluate("[...document.querySelectorAll('nav a')].map(a => a.getAttribute('href'))")
    assert {"/metrics", "/-/healthy", "/-/ready", "/api/v1/status"} <= set(links)

    # It refreshes in place: the script fetches the page again and swaps the content.
    marked = len(browser.events)
    browser.evaluate("document.querySelector('main').dataset.old = '1'")
    browser.wait_for_event(lambda e: e["method"] == "Network.responseReceived"
                           and e["params"]["type"] == "Fetch" and e["params"]["response"]["status"] == 200,
                           timeout=60, start=marked)
    wait_for(lambda: browser.evaluate("document.querySelector('main').dataset.old") is None,
             "the page never swapped in the refreshed content", timeout=60)

    assert browser.errors() == []
    assert all(url.startswith(daemon.url + "/") or url.startswith("data:") for url in browser.requests()), \
        browser.requests()
    code, headers, _ = daemon.get("/")
    assert "default-src 'none'" in headers["Content-Security-Policy"]


def test_tls_and_basic_auth_cover_the_page_and_the_api(daemon_factory: Callable[..., Daemon], tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {pki.server.cert}\n  key_file: {pki.server.key}\n"
                   f"basic_auth_users:\n  ops: {bcrypt.hashpw(b'secret', bcrypt.gensalt(4)).decode()}\n")
    daemon = daemon_factory(None, "--web.config.file", str(web), wait=False)
    context = ssl.create_default_context(cafile=str(pki.ca.cert))
    good = {"Authorization": "Basic " + base64.b64encode(b"ops:secret").decode()}

    def get(path: str, headers: dict[str, str]) -> int:
        request = urllib.request.Request(f"https://127.0.0.1:{daemon.port}{path}", headers=headers)
        try:
            with urllib.request.urlopen(request, context=context, timeout=10) as r:
                return int(r.status)
        except urllib.error.HTTPError as err:
            return err.code
        except OSError:
            return 0

    wait_for(lambda: get("/-/ready", good) == 200, "the TLS daemon never became ready")
    for path in ("/", "/api/v1/status"):
        assert get(path, {}) == 401, path
        assert get(path, {"Authorization": "Basic " + base64.b64encode(b"ops:wrong").decode()}) == 401
        assert get(path, good) == 200, path
    with pytest.raises(OSError):  # plain HTTP on the TLS port gets no page
        urllib.request.urlopen(f"http://127.0.0.1:{daemon.port}/", timeout=5).read()
