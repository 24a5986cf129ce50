"""HTTP probe against real HTTP and HTTPS servers (the stdlib's http.server, openssl certificates)."""

from __future__ import annotations

import asyncio
import http.server
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.backoff import BackoffError
from exporter.collectors import ProbeError
from exporter.collectors.http import Config, HTTPCollector
from exporter.scrape import Scraper
from tests.collectors.helpers import Clock, framed, run, values
from tests.support.binaries import require
from tests.support.net import free_port
from tests.support.servers import BlackHole


class Handler(http.server.BaseHTTPRequestHandler):
    seen: list[tuple[str, str, str, bytes]] = []

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _route(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        Handler.seen.append((self.command, self.path, self.headers.get("Authorization", ""), body))
        if self.path.startswith("/ok"):
            self._answer(200, b"x" * 200_000)
        elif self.path == "/moved":
            self._answer(302, headers={"Location": "/ok"})
        elif self.path == "/created":
            self._answer(201 if self.command == "POST" else 405)
        else:
            self._answer(404, b"not here")

    do_GET = do_HEAD = do_POST = _route


class Site:
    """A real HTTP(S) server on a free port, serving from one thread started before the test."""

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        if context is not None:
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.scheme = "https" if context else "http"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})
        self.thread.start()
        Handler.seen.clear()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join()
        self.server.server_close()


@pytest.fixture
def site() -> Iterator[Site]:
    s = Site()
    yield s
    s.close()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, float]:
    """A self-signed certificate for 127.0.0.1 valid for 30 days, its key, and its notAfter."""
    openssl = require("openssl")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    end = subprocess.run([openssl, "x509", "-noout", "-enddate", "-in", str(cert)],
                         check=True, capture_output=True, text=True).stdout.strip()
    return cert, key, ssl.cert_time_to_seconds(end.split("=", 1)[1])


@pytest.fixture
def tls_site(certificate: tuple[Path, Path, float]) -> Iterator[Site]:
    cert, key, _ = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    s = Site(context)
    yield s
    s.close()


def probe(url: str, **extra: object) -> HTTPCollector:
    return HTTPCollector(Config.model_validate({"name": "api", "url": url, **extra}))


def test_latency_status_and_success(site: Site) -> None:
    async def main() -> list[dict]:
        results = []
        for url, extra in ((site.url("/ok?x=1"), {}), (site.url("/missing"), {}),
                           (site.url("/moved"), {}), (site.url("/moved"), {"expected_status": [302]})):
            collector = probe(url, **extra)
            await collector.collect()
            results.append(values(await collector.collect()))
        return results

    ok, missing, moved, moved_expected = run(main)
    assert ok["http_probe_status_code"] == {("api",): 200}
    assert ok["http_probe_success"] == {("api",): 1}
    assert ok["operation_duration_seconds"][("api", "ok")].count == 2
    assert ok["operation_duration_seconds"][("api", "error")].count == 0
    assert "http_probe_tls_cert_expiry_timestamp_seconds" not in ok
    assert missing["http_probe_status_code"] == {("api",): 404}
    assert missing["http_probe_success"] == {("api",): 0}
    assert missing["operation_duration_seconds"][("api", "error")].count == 2
    assert moved["http_probe_status_code"] == {("api",): 302}  # not followed
    assert moved["http_probe_success"] == {("api",): 0}
    assert moved_expected["http_probe_success"] == {("api",): 1}
    assert [s[:2] for s in Handler.seen[:2]] == [("GET", "/ok?x=1"), ("GET", "/ok?x=1")]


def test_method_body_and_basic_auth_reach_the_server(site: Site) -> None:
    async def main() -> dict:
        collector = probe(site.url("/created").replace("://", "://probe:pa%24s@"), method="POST",
                          body='{"ping": 1}', headers={"Content-Type": "application/json"},
                          expected_status=[201])
        return values(await collector.collect())

    got = run(main)
    assert got["http_probe_success"] == {("api",): 1}
    method, path, auth, body = Handler.seen[-1]
    assert (method, path, body) == ("POST", "/created", b'{"ping": 1}')
    import base64
    assert base64.b64decode(auth.split()[1]) == b"probe:pa$s"


def test_head_request(site: Site) -> None:
    got = run(lambda: probe(site.url("/ok"), method="HEAD").collect())
    assert values(got)["http_probe_status_code"] == {("api",): 200}


def test_tls_certificate_expiry(tls_site: Site, certificate: tuple[Path, Path, float]) -> None:
    cert, _, not_after = certificate

    async def main() -> tuple[dict, dict, str]:
        verified = values(await probe(tls_site.url("/ok"), ca_file=str(cert)).collect())
        skipped = values(await probe(tls_site.url("/ok", host="localhost"), insecure_skip_verify=True).collect())
        with pytest.raises(ProbeError) as err:  # the system CAs do not trust our self-signed certificate
            await framed(probe(tls_site.url("/ok"))).attempt()
        return verified, skipped, str(err.value)

    verified, skipped, error = run(main)
    assert verified["http_probe_tls_cert_expiry_timestamp_seconds"] == {("api",): not_after}
    assert skipped["http_probe_tls_cert_expiry_timestamp_seconds"] == {("api",): not_after}
    assert verified["http_probe_status_code"] == {("api",): 200}
    assert "CERTIFICATE_VERIFY_FAILED" in error


def test_a_server_that_goes_away_and_comes_back(site: Site) -> None:
    port = site.port

    async def main() -> None:
        clock = Clock()
        job = framed(probe(f"http://user:hidden-pw@127.0.0.1:{port}/ok"), clock)
        assert values(await job.attempt())["http_probe_success"] == {("api",): 1}
        site.close()
        with pytest.raises(ProbeError, match="ConnectionRefused") as err:
            await job.attempt()
        assert "hidden-pw" not in str(err.value)
        with pytest.raises(BackoffError):
            await job.attempt()
        replacement = http.server.HTTPServer(("127.0.0.1", port), Handler)
        thread = threading.Thread(target=replacement.serve_forever, kwargs={"poll_interval": 0.05})
        thread.start()
        try:
            clock.advance(job.backoff.delay)
            got = values(await job.attempt())
            assert got["http_probe_status_code"] == {("api",): 200}
            assert got["operation_duration_seconds"][("api", "error")].count == 1  # the refused attempt
        finally:
            replacement.shutdown()
            thread.join()
            replacement.server_close()

    asyncio.run(main())  # not run(): the replacement server's thread starts inside


def test_a_server_that_never_answers(black_hole: BlackHole) -> None:
    async def main() -> None:
        collector = probe(f"http://{black_hole.address}/", timeout="200ms")
        with pytest.raises(ProbeError, match="TimeoutError"):
            await asyncio.wait_for(framed(collector).attempt(), timeout=10)
        tls = probe(f"https://{black_hole.address}/", timeout="200ms")  # stuck in the TLS handshake
        with pytest.raises(ProbeError, match="TimeoutError"):
            await asyncio.wait_for(framed(tls).attempt(), timeout=10)

    run(main)
    assert black_hole.connections == 2


def test_a_request_without_an_answer_still_exports_its_error_observation(black_hole: BlackHole) -> None:
    """docs/probes.md: a failed connect is an outcome="error" too; it must reach /metrics with up 0."""
    refused = probe(f"http://127.0.0.1:{free_port()}/", timeout="1s")
    silent = HTTPCollector(Config.model_validate({"name": "silent", "url": f"http://{black_hole.address}/",
                                                  "timeout": "200ms"}))
    scraper = Scraper([framed(refused), framed(silent)])

    async def main() -> dict:
        try:
            return values(await scraper.collect())
        finally:
            await scraper.close()

    got = run(main)
    assert got["up"] == {("http", "api"): 0, ("http", "silent"): 0}
    latency = got["operation_duration_seconds"]
    assert latency[("api", "error")].count == 1 and latency[("api", "ok")].count == 0
    assert latency[("api", "error")].sum < 1.0  # refused at once, not timed out
    assert latency[("silent", "error")].count == 1  # cut off at its deadline by the job: an error too
    assert "http_probe_status_code" not in got  # no answer: no status to show


def test_config_rejects_what_cannot_work() -> None:
    from pydantic import ValidationError

    for bad in ({"url": "ftp://x"}, {"url": "http://x", "method": "get"},
                {"url": "http://x", "expected_status": [99]}):
        with pytest.raises(ValidationError):
            Config.model_validate({"name": "x", **bad})
