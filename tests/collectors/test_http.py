"""HTTP probe against real HTTP and HTTPS servers (the stdlib's http.server, real certificates)."""

from __future__ import annotations

import asyncio
import datetime as dt
import http.server
import json
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.backoff import BackoffError
from exporter.collectors import ProbeError
from exporter.collectors.http import PHASES, REASONS, Config, HTTPCollector
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
        elif self.path.startswith("/hops/"):  # /hops/N redirects N more times, each a different way
            left = int(self.path.rsplit("/", 1)[1])
            if left:
                location = f"/hops/{left - 1}" if left % 2 else str(left - 1)  # absolute path, then relative
                self._answer((301, 302, 307, 308)[left % 4], headers={"Location": location})
            else:
                self._answer(200, b"arrived")
        elif self.path == "/loop":
            self._answer(302, headers={"Location": "/loop"})
        elif self.path.startswith("/elsewhere"):  # to the same server under another name
            port = self.server.server_address[1]
            self._answer(302, headers={"Location": f"http://localhost:{port}/ok"})
        elif self.path.startswith("/to-tls/"):  # to the HTTPS site on the port in the path
            self._answer(301, headers={"Location": f"https://127.0.0.1:{self.path.rsplit('/', 1)[1]}/ok"})
        elif self.path == "/health":
            self._answer(200, json.dumps({"status": "ok", "version": 3, "checks": [
                {"name": "db", "healthy": True}, {"name": "cache", "healthy": False}]}).encode())
        elif self.path == "/form":
            self._answer(303 if self.command == "POST" else 200, b"thanks", headers={"Location": "/form"})
        elif self.path == "/created":
            self._answer(201 if self.command == "POST" else 405)
        else:
            self._answer(404, b"not here")

    do_GET = do_HEAD = do_POST = _route


class IPv6Server(http.server.HTTPServer):
    address_family = socket.AF_INET6


class Site:
    """A real HTTP(S) server on a free port, serving from one thread started before the test."""

    def __init__(self, context: ssl.SSLContext | None = None, host: str = "127.0.0.1") -> None:
        kind = IPv6Server if ":" in host else http.server.HTTPServer
        self.server = kind((host, 0), Handler)
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
                           (site.url("/moved"), {}), (site.url("/moved"), {"expected_status": [302], "follow_redirects": False})):
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
    assert ok["http_probe_body_bytes"] == {("api",): 200_000}  # read to the end in 64 KiB reads
    assert missing["http_probe_body_bytes"] == {("api",): len(b"not here")}
    assert missing["http_probe_status_code"] == {("api",): 404}
    assert missing["http_probe_success"] == {("api",): 0}
    assert missing["operation_duration_seconds"][("api", "error")].count == 2
    assert moved["http_probe_status_code"] == {("api",): 200}  # followed to /ok
    assert moved["http_probe_redirects"] == {("api",): 1}
    assert moved["http_probe_success"] == {("api",): 1}
    assert moved_expected["http_probe_status_code"] == {("api",): 302}  # not followed
    assert moved_expected["http_probe_success"] == {("api",): 1}
    assert missing["http_probe_failed"][("api", "status")] == 1
    assert ok["http_probe_failed"] == {("api", reason): 0 for reason in REASONS}
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


def _info(got: dict) -> dict[str, str]:
    (labels,) = got["http_probe_info"]
    return dict(zip(("target", "final_url", "http_version", "tls_version"), labels))


def test_a_redirect_chain_is_followed_to_its_final_url(site: Site) -> None:
    async def main() -> dict:
        return values(await probe(site.url("/hops/4").replace("://", "://probe:pw@")).collect())

    got = run(main)
    assert got["http_probe_status_code"] == {("api",): 200}
    assert got["http_probe_redirects"] == {("api",): 4}
    assert got["http_probe_success"] == {("api",): 1}
    # Credentials and query never reach a label.
    assert _info(got)["final_url"] == site.url("/hops/0")
    assert [s[1] for s in Handler.seen] == ["/hops/4", "/hops/3", "/hops/2", "/hops/1", "/hops/0"]
    assert {s[2] for s in Handler.seen} != {""}  # the same host: basic auth on every hop


def test_post_redirected_by_303_becomes_get_and_credentials_stay_on_their_host(site: Site) -> None:
    async def main() -> tuple[dict, dict]:
        form = values(await probe(site.url("/form"), method="POST", body="a=1").collect())
        other = values(await probe(site.url("/elsewhere").replace("://", "://probe:pw@"),
                                   headers={"Cookie": "s=1"}).collect())
        return form, other

    form, other = run(main)
    assert form["http_probe_status_code"] == {("api",): 200}
    assert [s[:2] for s in Handler.seen[:2]] == [("POST", "/form"), ("GET", "/form")]
    assert Handler.seen[1][3] == b""  # the body is not sent again
    assert other["http_probe_redirects"] == {("api",): 1}
    assert _info(other)["final_url"] == site.url("/ok", host="localhost")
    assert Handler.seen[2][2] != "" and Handler.seen[3][2] == ""  # Authorization dropped for the other host


def test_a_redirect_loop_past_the_limit_fails_with_its_reason(site: Site) -> None:
    async def main() -> tuple[dict, dict]:
        looped = values(await probe(site.url("/loop"), max_redirects=3).collect())
        unlimited = values(await probe(site.url("/hops/4"), max_redirects=3).collect())
        return looped, unlimited

    looped, short = run(main)
    assert looped["http_probe_success"] == {("api",): 0}
    assert looped["http_probe_failed"][("api", "redirects")] == 1
    assert looped["http_probe_failed"][("api", "status")] == 0  # the limit is the reason, not the 302
    assert looped["http_probe_redirects"] == {("api",): 3}
    assert looped["http_probe_status_code"] == {("api",): 302}
    assert looped["operation_duration_seconds"][("api", "error")].count == 1
    assert [s[1] for s in Handler.seen[:4]] == ["/loop"] * 4  # the request and 3 redirects, then stop
    assert short["http_probe_failed"][("api", "redirects")] == 1  # 4 hops need max_redirects 4


def test_body_checks_fail_the_probe_with_their_reason(site: Site) -> None:
    cases = {
        "pass": {"body_matches": ['"status": "ok"'], "body_not_matches": ["error"],
                 "body_json": {"status": "ok", "version": 3, "checks.0.healthy": True, "checks.1.name": "cache"}},
        "body_matches": {"body_matches": ['"status": "ok"', "maintenance"]},
        "body_not_matches": {"body_not_matches": ["cache"]},
        "body_json": {"body_json": {"checks.1.healthy": True}},
        "json_missing_path": {"body_json": {"checks.5.healthy": False}},
        "json_bool_is_not_int": {"body_json": {"checks.0.healthy": 1}},
    }

    async def main() -> dict[str, dict]:
        return {case: values(await probe(site.url("/health"), **extra).collect()) for case, extra in cases.items()}

    got = run(main)
    assert got["pass"]["http_probe_success"] == {("api",): 1}
    for case in ("body_matches", "body_not_matches", "body_json", "json_missing_path", "json_bool_is_not_int"):
        reason = case if case.startswith("body_") else "body_json"
        failed = {r for (_, r), v in got[case]["http_probe_failed"].items() if v}
        assert failed == {reason}, case
        assert got[case]["http_probe_success"] == {("api",): 0}, case
        assert got[case]["http_probe_status_code"] == {("api",): 200}, case

    not_json = run(lambda: probe(site.url("/ok"), body_json={"a": 1}).collect())
    assert values(not_json)["http_probe_failed"][("api", "body_json")] == 1


def test_phases_add_up_over_the_hops(site: Site, tls_site: Site, certificate: tuple[Path, Path, float]) -> None:
    cert, _, _ = certificate

    async def main() -> tuple[dict, dict]:
        plain = values(await probe(site.url("/hops/2")).collect())
        tls = values(await probe(tls_site.url("/ok", host="localhost"), ca_file=str(cert)).collect())
        return plain, tls

    plain, tls = run(main)
    for got in (plain, tls):
        phases = {phase: v for (_, phase), v in got["http_probe_phase_seconds"].items()}
        assert set(phases) == set(PHASES)
        assert all(v >= 0 for v in phases.values())
        assert phases["connect"] > 0 and phases["processing"] > 0
        assert sum(phases.values()) <= got["operation_duration_seconds"][("api", "ok")].sum
    assert plain["http_probe_phase_seconds"][("api", "tls")] == 0
    assert tls["http_probe_phase_seconds"][("api", "tls")] > 0
    assert tls["http_probe_phase_seconds"][("api", "resolve")] > 0  # localhost is a name: looked up
    assert _info(plain)["tls_version"] == "" and _info(plain)["http_version"] == "1.0"  # http.server's default
    assert _info(tls)["tls_version"] in ("TLSv1.2", "TLSv1.3")
    assert plain["http_probe_ip_protocol"] == {("api",): 4}


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, float, float]:
    """A CA that expires in 3 days, a server certificate from it for 127.0.0.1 that expires in 30
    days, the server's chain file (leaf, then the CA), and both notAfters."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder = tmp_path_factory.mktemp("chain")
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "short-lived CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
          .not_valid_after(now + dt.timedelta(days=3))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    import ipaddress
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (folder / "ca.pem").write_bytes(ca.public_bytes(pem))
    (folder / "chain.pem").write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    (folder / "key.pem").write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    return (folder / "ca.pem", folder / "chain.pem", folder / "key.pem",
            (now + dt.timedelta(days=3)).timestamp(), (now + dt.timedelta(days=30)).timestamp())


def test_the_earliest_expiry_of_the_served_chain(chain: tuple[Path, Path, Path, float, float]) -> None:
    ca, chain_file, key, ca_expiry, leaf_expiry = chain
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain_file, key)
    site = Site(context)
    try:
        async def main() -> tuple[dict, dict]:
            verified = values(await probe(site.url("/ok"), ca_file=str(ca)).collect())
            skipped = values(await probe(site.url("/ok"), insecure_skip_verify=True).collect())
            return verified, skipped

        verified, skipped = run(main)
    finally:
        site.close()
    # The CA the server sends expires first: the leaf alone (getpeercert) would say 30 days.
    assert ca_expiry < leaf_expiry
    assert verified["http_probe_tls_cert_expiry_timestamp_seconds"] == {("api",): ca_expiry}
    assert skipped["http_probe_tls_cert_expiry_timestamp_seconds"] == {("api",): ca_expiry}


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback (::1) on this machine")
def test_ip_protocol_preference_and_fallback(site: Site) -> None:
    six = Site(host="::1")
    try:
        async def main() -> tuple[dict, dict, str, str]:
            over_six = values(await probe(f"http://[::1]:{six.port}/ok", ip_protocol="ip6").collect())
            # localhost has only 127.0.0.1 here: ip6 preferred, no such address, falls back to ip4.
            fell_back = values(await probe(site.url("/ok", host="localhost"), ip_protocol="ip6").collect())
            with pytest.raises(ProbeError) as strict:
                await probe(site.url("/ok", host="localhost"), ip_protocol="ip6",
                            ip_protocol_fallback=False).collect()
            with pytest.raises(ProbeError) as literal:
                await probe(f"http://[::1]:{six.port}/ok", ip_protocol="ip4", ip_protocol_fallback=False).collect()
            return over_six, fell_back, str(strict.value), str(literal.value)

        over_six, fell_back, strict, literal = run(main)
    finally:
        six.close()
    assert over_six["http_probe_ip_protocol"] == {("api",): 6}
    assert over_six["http_probe_status_code"] == {("api",): 200}
    assert _info(over_six)["final_url"] == f"http://[::1]:{six.port}/ok"
    assert fell_back["http_probe_ip_protocol"] == {("api",): 4}
    assert "no ip6 address" in strict and "no ip4 address" in literal


def test_config_errors_name_their_yaml_line() -> None:
    from exporter import config
    from exporter.config import ConfigError

    text = ("probes:\n"
            "  http:\n"
            "    - name: api\n"
            "      url: http://127.0.0.1/\n"
            "      body_matches: ['(unclosed']\n"        # 5
            "      body_json: {'a..b': 1}\n"             # 6
            "      ip_protocol: ipv6\n"                  # 7
            "      max_redirects: -1\n")                 # 8
    with pytest.raises(ConfigError) as err:
        config.parse(text, "c.yaml", {})
    found = err.value.problems
    for line, key in ((5, "body_matches"), (6, "body_json"), (7, "ip_protocol"), (8, "max_redirects")):
        assert any(p.startswith(f"c.yaml:{line}: probes.http[0].{key}") for p in found), (key, found)


def test_a_redirect_from_http_to_https(site: Site, tls_site: Site, certificate: tuple[Path, Path, float]) -> None:
    cert, _, not_after = certificate
    got = run(lambda: probe(site.url(f"/to-tls/{tls_site.port}"), ca_file=str(cert)).collect())
    got = values(got)
    assert got["http_probe_status_code"] == {("api",): 200}
    assert _info(got)["final_url"] == tls_site.url("/ok")
    assert _info(got)["tls_version"].startswith("TLSv1.")
    assert got["http_probe_tls_cert_expiry_timestamp_seconds"] == {("api",): not_after}
    assert got["http_probe_phase_seconds"][("api", "tls")] > 0  # the second hop's handshake
