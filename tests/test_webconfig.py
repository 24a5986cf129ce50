"""The web config file: validation, TLS contexts against real TLS clients, basic auth.

The TLS tests serve the context `webconfig.load()` builds on a plain socket and
connect with real clients (Python's ssl and the openssl CLI); the end-to-end
tests in tests/e2e/test_security.py do the same through the daemon.
"""

from __future__ import annotations

import asyncio
import base64
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from exporter import webconfig
from exporter.webconfig import Authenticator, WebConfig, WebConfigError
from exporter.webconfig.ratelimit import RateLimiter
from tests.support.tls import PKI, make_pki

# Cost 4 keeps the suite fast; the cost does not change what is checked.
FAST = 4


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def hashed(password: str, rounds: int = FAST) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=rounds)).decode()


def check(auth: Authenticator, header: str | None) -> bool:
    return asyncio.run(auth.check(header))


def allows(config: WebConfig, path: str, header: str | None = None) -> bool:
    return asyncio.run(config.allows(path, header))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


def write(directory: Path, text: str, name: str = "web.yml") -> Path:
    path = directory / name
    path.write_text(text)
    return path


def tls_file(pki: PKI, directory: Path, extra: str = "") -> Path:
    # Copy the pair next to the file: relative paths must resolve against the file's directory.
    shutil.copy(pki.server.cert, directory / "server.crt")
    shutil.copy(pki.server.key, directory / "server.key")
    shutil.copy(pki.ca.cert, directory / "ca.crt")
    return write(directory, "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n" + extra)


# --- loading and errors ------------------------------------------------------------


def test_no_file_means_plain_http_without_auth() -> None:
    for nothing in (None, ""):
        config = webconfig.load(nothing)
        assert config.ssl_context is None and config.authenticator is None and config.headers == {}
        assert allows(config, "/metrics")


def test_empty_file_and_empty_tls_section_mean_plain_http(tmp_path: Path) -> None:
    assert webconfig.load(write(tmp_path, "")).ssl_context is None
    assert webconfig.load(write(tmp_path, "tls_server_config: {}\n")).ssl_context is None


def test_full_toolkit_file_loads(pki: PKI, tmp_path: Path) -> None:
    path = tls_file(pki, tmp_path, """\
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: ca.crt
  min_version: TLS13
http_server_config:
  http2: false
  headers:
    X-Frame-Options: deny
    Strict-Transport-Security: max-age=31536000
basic_auth_users:
  prometheus: {hash}
auth_excluded_paths: [/-/healthy]
""".format(hash=hashed("s3cret")))
    config = webconfig.load(path)
    assert config.ssl_context is not None
    assert config.ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert config.ssl_context.minimum_version == ssl.TLSVersion.TLSv1_3
    assert config.headers == {"X-Frame-Options": "deny", "Strict-Transport-Security": "max-age=31536000"}
    assert allows(config, "/metrics", basic("prometheus", "s3cret"))
    assert not allows(config, "/metrics") and not allows(config, "/")
    assert allows(config, "/-/healthy")
    assert not allows(config, "/-/healthy/")  # exact match only


def test_every_problem_is_reported_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, """\
tls_server_config:
  cert_file: a.crt
  key_file: a.key
  min_version: TLS99
http_server_config:
  headers:
    X-Powered-By: me
basic_auth_users:
  alice: plaintext
unknown_key: 1
""")
    with pytest.raises(WebConfigError) as caught:
        webconfig.load(path)
    message = str(caught.value)
    assert f"{path}:4: tls_server_config.min_version:" in message
    assert (f"{path}:7: http_server_config.headers.X-Powered-By: "
            "HTTP header 'X-Powered-By' can not be configured") in message
    assert f"{path}:9: basic_auth_users.alice: not a bcrypt hash" in message
    assert f"{path}:10: unknown_key: unknown key" in message
    # The rejected plaintext password is never echoed back.
    assert "plaintext" not in message


@pytest.mark.parametrize(("extra", "expected"), [
    # What Python's ssl cannot do, refused with a message that says so (docs/security.md lists them).
    ("  client_auth_type: RequireAnyClientCert\n", "cannot ask for a client certificate without verifying it"),
    ("  client_auth_type: RequestClientCert\n", "cannot ask for a client certificate without verifying it"),
    ("  client_auth_type: RequireClientCert\n", "cannot ask for a client certificate without verifying it"),
    # What exporter-toolkit refuses.
    ("  client_ca_file: ca.crt\n", "client CAs are configured without a client_auth_type"),
    ("  client_auth_type: Sometimes\n", "client_auth_type"),
    ("  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n", "unknown cipher suite(s) TLS_RSA_WITH_RC4_128_SHA"),
    # Go moved RSA key exchange to its insecure list, which the toolkit does not accept.
    ("  cipher_suites: [TLS_RSA_WITH_AES_128_GCM_SHA256]\n", "unknown cipher suite(s) TLS_RSA_WITH_AES_128_GCM"),
    ("  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA2048]\n", "unknown cipher suite(s)"),
    ("  curve_preferences: [CurveP1024]\n", "unknown curve(s) CurveP1024"),
    ("  min_version: TLS14\n", "min_version"),
    ("  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384]\n  max_version: TLS12\n",
     "lacks an HTTP/2-required suite"),
    # Files the toolkit starts with and then serves nobody.
    ("  client_allowed_sans: [a]\n", "client_allowed_sans needs a client certificate"),
    ("  min_version: TLS13\n  max_version: TLS12\n", "min_version TLS13 is above max_version TLS12"),
    ("  cipher_suites: [TLS_AES_128_GCM_SHA256]\n  max_version: TLS12\nhttp_server_config:\n  http2: false\n",
     "no suite is left"),
])
def test_unusable_tls_settings_are_refused_clearly(pki: PKI, tmp_path: Path, extra: str, expected: str) -> None:
    with pytest.raises(WebConfigError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        webconfig.load(tls_file(pki, tmp_path, extra))


# Files from exporter-toolkit's own test data (web/testdata/*.good.yml) and the documentation's
# examples, with our certificate; each must load as the toolkit loads it.
TOOLKIT_GOOD = {
    "allCiphers": """\
  client_auth_type: "VerifyClientCertIfGiven"
  cipher_suites:
  - TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
  - TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
  - TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
  - TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
  - TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
  - TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
  - TLS_AES_128_GCM_SHA256
  - TLS_AES_256_GCM_SHA384
  - TLS_CHACHA20_POLY1305_SHA256
  - TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA
  - TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA
  - TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA
  - TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA
""",
    "someCiphers": """\
  client_auth_type: "VerifyClientCertIfGiven"
  cipher_suites:
  - TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
  - TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
  min_version: TLS12
  max_version: TLS12
""",
    "someCiphers_noOrder": """\
  cipher_suites:
  - TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
  - TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
  prefer_server_cipher_suites: false
  min_version: TLS12
  max_version: TLS12
""",
    "noHTTP2Cipher_without_http2": """\
  cipher_suites:
    - TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
  max_version: TLS12
http_server_config:
  http2: false
""",
    "someCurves": """\
  client_auth_type: "VerifyClientCertIfGiven"
  curve_preferences:
    - CurveP521
""",
    "allCurves": """\
  client_auth_type: "VerifyClientCertIfGiven"
  curve_preferences:
    - CurveP256
    - CurveP384
    - CurveP521
    - X25519
""",
    "requireandverifyclientcert_system_store": """\
  client_auth_type: RequireAndVerifyClientCert
""",
    "client_san": """\
  client_auth_type: "VerifyClientCertIfGiven"
  client_ca_file: ca.crt
  client_allowed_sans:
    - "spiffe://test/prometheus"
""",
    "headers": """\
http_server_config:
  headers:
    X-Frame-Options: deny
    Strict-Transport-Security: max-age=31536000; includeSubDomains
    X-Content-Type-Options: nosniff
    X-XSS-Protection: 1
    Content-Security-Policy: "default-src 'self' *.test.example.net"
""",
    "rate_limiter": """\
rate_limit:
  burst: 10
  interval: 1s
""",
}


@pytest.mark.parametrize("name", list(TOOLKIT_GOOD))
def test_files_exporter_toolkit_accepts_are_accepted(pki: PKI, tmp_path: Path, name: str) -> None:
    config = webconfig.load(tls_file(pki, tmp_path, TOOLKIT_GOOD[name]))
    assert config.ssl_context is not None


@pytest.mark.parametrize(("text", "where"), [
    ("tls_server_config:\n  cert_filse: server.crt\n", "2: tls_server_config.cert_filse"),  # the toolkit's junk_key
    ("http_server_config:\n  header: {X-Frame-Options: deny}\n", "2: http_server_config.header"),
    ("rate_limit:\n  burts: 10\n", "2: rate_limit.burts"),
    ("basic_auth_user:\n  alice: x\n", "1: basic_auth_user"),
])
def test_an_unknown_key_anywhere_refuses_the_file(tmp_path: Path, text: str, where: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(WebConfigError, match=f"{path}:{where}: unknown key"):
        webconfig.load(path)


def test_header_values_that_are_not_strings_in_yaml_are_their_text(tmp_path: Path) -> None:
    # Go's YAML decoding gives a string field the scalar's text, so the toolkit sends these as written.
    config = webconfig.load(write(tmp_path, "http_server_config:\n  headers:\n    X-XSS-Protection: 1\n"
                                            "    Strict-Transport-Security: 0x10\n"))
    assert config.headers == {"X-XSS-Protection": "1", "Strict-Transport-Security": "0x10"}


@pytest.mark.parametrize(("text", "expected"), [
    ("http_server_config:\n  http2: \"true\"\n", "http_server_config.http2: Input should be a valid boolean"),
    ("rate_limit:\n  burst: \"10\"\n  interval: 1s\n", "rate_limit.burst: Input should be a valid integer"),
    ("rate_limit:\n  burst: 1\n  interval: 1d\n", "rate_limit.interval: .*invalid duration '1d'"),
])
def test_types_are_as_strict_as_go_decoding(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(WebConfigError, match=expected):
        webconfig.load(write(tmp_path, text))


@pytest.mark.parametrize(("interval", "seconds"), [("1s", 1.0), ("1m30s", 90.0), ("250ms", 0.25),
                                                   ("1.5h", 5400.0), (2_000_000_000, 2.0)])
def test_rate_limit_interval_is_a_go_duration(tmp_path: Path, interval: object, seconds: float) -> None:
    config = webconfig.load(write(tmp_path, f"rate_limit:\n  burst: 3\n  interval: {interval}\n"))
    assert config.rate_limiter is not None and config.rate_limiter._interval == seconds


def test_rate_limiter_is_a_token_bucket_that_starts_full() -> None:
    now = [100.0]
    limiter = RateLimiter(interval=2.0, burst=3, clock=lambda: now[0])
    assert [limiter.allow() for _ in range(4)] == [True, True, True, False]
    now[0] += 1.0  # half an interval: half a token
    assert not limiter.allow()
    now[0] += 1.0
    assert limiter.allow() and not limiter.allow()
    now[0] += 60.0  # refills to the burst, no further
    assert [limiter.allow() for _ in range(4)] == [True, True, True, False]
    assert not RateLimiter(interval=1.0, burst=0, clock=lambda: now[0]).allow()  # as x/time/rate: never


def test_missing_key_file_names_the_resolved_path(tmp_path: Path) -> None:
    path = write(tmp_path, "tls_server_config:\n  cert_file: nope.crt\n  key_file: nope.key\n")
    with pytest.raises(WebConfigError, match=f"cannot load cert_file {tmp_path}/nope.crt"):
        webconfig.load(path)


def test_encrypted_key_is_refused_instead_of_prompting(pki: PKI, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(pki.server.key.read_bytes(), None)
    (tmp_path / "enc.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase")))
    shutil.copy(pki.server.cert, tmp_path / "server.crt")
    path = write(tmp_path, "tls_server_config:\n  cert_file: server.crt\n  key_file: enc.key\n")
    with pytest.raises(WebConfigError, match="encrypted private keys are not supported"):
        webconfig.load(path)


def test_inline_certificate_and_key(pki: PKI, tmp_path: Path) -> None:
    indent = lambda text: "\n".join("    " + line for line in text.splitlines())  # noqa: E731
    path = write(tmp_path, "tls_server_config:\n  cert: |\n{}\n  key: |\n{}\n".format(
        indent(pki.server.cert.read_text()), indent(pki.server.key.read_text())))
    config = webconfig.load(path)
    with tls_server(config) as port:
        assert handshake(port, pki)["version"] == "TLSv1.3"


def test_header_value_must_be_one_the_toolkit_allows(tmp_path: Path) -> None:
    path = write(tmp_path, "http_server_config:\n  headers:\n    X-Frame-Options: allow-from x\n")
    expected = "invalid value 'allow-from x' for X-Frame-Options: expected one of deny, sameorigin"
    with pytest.raises(WebConfigError, match=expected):
        webconfig.load(path)


def test_a_key_given_twice_is_refused_as_the_toolkit_strict_decoding_does(tmp_path: Path) -> None:
    path = write(tmp_path, "auth_excluded_paths: [/-/healthy]\nauth_excluded_paths: [/metrics]\n")
    with pytest.raises(WebConfigError, match=f"{path}:2: auth_excluded_paths: duplicate key"):
        webconfig.load(path)


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(WebConfigError, match=r"web.yml:2: invalid YAML"):
        webconfig.load(write(tmp_path, "basic_auth_users:\n  a: b: c\n"))


# --- basic auth ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def auth() -> Authenticator:
    # htpasswd hashes the first 72 bytes of a longer password (bcrypt reads no more).
    return Authenticator({"alice": hashed("correct horse"), "bob": hashed("b" * 72)})


def test_right_password_passes_and_anything_else_fails(auth: Authenticator) -> None:
    assert check(auth, basic("alice", "correct horse"))
    assert not check(auth, basic("alice", "correct horsE"))
    assert not check(auth, basic("alice", ""))
    assert not check(auth, basic("mallory", "correct horse"))
    assert not check(auth, None)
    assert not check(auth, "")
    assert not check(auth, "Bearer abc")
    assert not check(auth, "Basic !!!notbase64")
    assert not check(auth, "Basic " + base64.b64encode(b"no-colon").decode())
    assert not check(auth, "Basic " + base64.b64encode(b"\xff\xfe:x").decode())
    assert check(auth, "basic " + basic("alice", "correct horse").split()[1])  # scheme is case-insensitive


def test_passwords_longer_than_bcrypt_reads_do_not_crash(auth: Authenticator) -> None:
    # bcrypt reads 72 bytes; the hash was made from those, as htpasswd does.
    assert check(auth, basic("bob", "b" * 80))
    assert check(auth, basic("bob", "b" * 72))


def test_a_cached_success_never_lets_a_wrong_password_through() -> None:
    auth = Authenticator({"alice": hashed("right")})
    assert check(auth, basic("alice", "right"))
    assert check(auth, basic("alice", "right"))  # from the cache
    assert auth.failures["wrong_password"] == 0
    for wrong in ("righ", "right ", "RIGHT", "right\x00", ""):
        assert not check(auth, basic("alice", wrong))
    # Each wrong password went through bcrypt and was refused there: none was answered from the cache.
    assert auth.failures["wrong_password"] == 5
    assert len(auth._cache) == 1


def test_cache_key_separates_user_from_password() -> None:
    auth = Authenticator({"ab": hashed("c"), "a": hashed("x")})
    assert check(auth, basic("ab", "c"))
    # "a" + "bc" concatenates to the same bytes as "ab" + "c": it must not hit the cached entry.
    assert auth._cache_key("a", b"bc") != auth._cache_key("ab", b"c")
    assert not check(auth, basic("a", "bc"))


def test_cache_is_bounded() -> None:
    users = {f"user{i}": hashed(f"pw{i}") for i in range(5)}
    auth = Authenticator(users, cache_size=2)
    for i in range(5):
        assert check(auth, basic(f"user{i}", f"pw{i}"))
    assert len(auth._cache) == 2


def test_failures_are_counted_by_reason() -> None:
    auth = Authenticator({"alice": hashed("right")})
    check(auth, None)
    check(auth, "Basic ###")
    check(auth, basic("nobody", "x"))
    check(auth, basic("alice", "wrong"))
    assert dict(auth.failures) == {"missing": 1, "malformed": 1, "unknown_user": 1, "wrong_password": 1}


def test_unknown_users_cost_the_costliest_configured_hash_and_nothing_is_hashed_at_start(
        monkeypatch: pytest.MonkeyPatch) -> None:
    cheap, costly = hashed("a", rounds=4), hashed("b", rounds=6)
    checked: list[bytes] = []
    real_checkpw = bcrypt.checkpw

    def recording_checkpw(password: bytes, hashed_password: bytes) -> bool:
        checked.append(hashed_password)
        return real_checkpw(password, hashed_password)

    def no_hashing(*args: object) -> bytes:
        raise AssertionError("bcrypt.hashpw ran: start-up would wait on it")

    monkeypatch.setattr(bcrypt, "checkpw", recording_checkpw)
    monkeypatch.setattr(bcrypt, "hashpw", no_hashing)
    auth = Authenticator({"alice": cheap, "bob": costly})
    # Bob's own password sent for a user who does not exist: checked (for the time it takes), refused.
    assert not check(auth, basic("mallory", "b"))
    assert not check(auth, basic("alice", "wrong"))
    assert checked == [costly.encode(), cheap.encode()]
    assert auth.failures["unknown_user"] == 1 and auth.failures["wrong_password"] == 1


def test_check_keeps_the_event_loop_running_during_bcrypt() -> None:
    # Cost 12 takes a few hundred milliseconds: long enough that, had bcrypt run on the loop,
    # the ticker could not finish first.
    auth = Authenticator({"alice": hashed("right", rounds=12)})
    order: list[str] = []

    async def ticker() -> None:
        for _ in range(20):
            await asyncio.sleep(0)
        order.append("ticker")

    async def verify() -> None:
        assert not await auth.check(basic("alice", "wrong"))
        order.append("bcrypt")

    async def main() -> None:
        await asyncio.gather(verify(), ticker())
        assert await auth.check(basic("alice", "right"))
        assert await auth.check(basic("alice", "right"))

    try:
        asyncio.run(main())
    finally:
        auth.close()
    assert order == ["ticker", "bcrypt"]


# --- TLS against real clients ---------------------------------------------------------


@contextmanager
def tls_server(config: WebConfig) -> Iterator[int]:
    """Serve `config.ssl_context` on a free port; each connection that completes the handshake gets 'ok'."""
    assert config.ssl_context is not None
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            try:
                with config.ssl_context.wrap_socket(conn, server_side=True) as tls:  # type: ignore[union-attr]
                    tls.sendall(b"ok")
            except (ssl.SSLError, OSError):
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        listener.close()


def handshake(port: int, pki: PKI, *, client: Any = None, max_version: ssl.TLSVersion | None = None,
              ciphers: str | None = None) -> dict[str, Any]:
    context = ssl.create_default_context(cafile=str(pki.ca.cert))
    if max_version is not None:
        context.maximum_version = max_version
    if ciphers:
        context.set_ciphers(ciphers)
    if client is not None:
        context.load_cert_chain(str(client.cert), str(client.key))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            # TLS 1.3 sends the client certificate verdict after the handshake: read to see it.
            body = tls.recv(64)
            return {"version": tls.version(), "cipher": tls.cipher()[0], "body": body}


def refused(port: int, pki: PKI, client: Any) -> bool:
    """The server ended the connection without serving it: an alert, a reset or a bare EOF."""
    try:
        return handshake(port, pki, client=client)["body"] == b""
    except (ssl.SSLError, ConnectionError):
        return True


def test_tls12_and_tls13_handshakes_succeed(pki: PKI, tmp_path: Path) -> None:
    config = webconfig.load(tls_file(pki, tmp_path))
    with tls_server(config) as port:
        assert handshake(port, pki) == {"version": "TLSv1.3", "cipher": "TLS_AES_256_GCM_SHA384", "body": b"ok"}
        assert handshake(port, pki, max_version=ssl.TLSVersion.TLSv1_2)["version"] == "TLSv1.2"


def test_min_version_tls13_refuses_a_tls12_client(pki: PKI, tmp_path: Path) -> None:
    config = webconfig.load(tls_file(pki, tmp_path, "  min_version: TLS13\n"))
    with tls_server(config) as port:
        with pytest.raises(ssl.SSLError, match="PROTOCOL_VERSION|protocol version"):
            handshake(port, pki, max_version=ssl.TLSVersion.TLSv1_2)
        assert handshake(port, pki)["version"] == "TLSv1.3"


def openssl_tls11(port: int) -> str:
    # Python's client refuses TLS 1.1 itself (OpenSSL 3 security level), which would prove
    # nothing about the server; the openssl CLI at security level 0 offers TLS 1.1 for real.
    openssl = shutil.which("openssl")
    assert openssl, "the openssl CLI is needed (apt-get install openssl)"
    result = subprocess.run(
        [openssl, "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"],
        input=b"", capture_output=True, timeout=30)
    return (result.stdout + result.stderr).decode(errors="replace")


def test_tls11_client_is_refused_by_the_default_min_version(pki: PKI, tmp_path: Path) -> None:
    # Control: the same client completes a TLS 1.1 handshake when the file allows TLS 1.1 ...
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    with tls_server(webconfig.load(tls_file(pki, legacy, "  min_version: TLS11\n"))) as port:
        output = openssl_tls11(port)
        assert "Protocol  : TLSv1.1" in output and "Cipher is (NONE)" not in output
    # ... and the default (TLS12) answers it with a protocol_version alert.
    with tls_server(webconfig.load(tls_file(pki, tmp_path))) as port:
        output = openssl_tls11(port)
        assert "alert protocol version" in output
        assert "Cipher is (NONE)" in output


def test_client_certificate_required_and_verified(pki: PKI, tmp_path: Path) -> None:
    config = webconfig.load(tls_file(
        pki, tmp_path, "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"))
    with tls_server(config) as port:
        assert handshake(port, pki, client=pki.client)["body"] == b"ok"
        for client in (None, pki.rogue_client):
            # TLS 1.3: the server's alert arrives on the first read after the handshake.
            with pytest.raises((ssl.SSLError, ConnectionResetError)) as caught:
                handshake(port, pki, client=client)
            if isinstance(caught.value, ssl.SSLError):
                assert caught.value.reason in ("TLSV13_ALERT_CERTIFICATE_REQUIRED", "TLSV1_ALERT_UNKNOWN_CA")


def test_verify_if_given_accepts_no_certificate_but_rejects_a_rogue_one(pki: PKI, tmp_path: Path) -> None:
    config = webconfig.load(tls_file(
        pki, tmp_path, "  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.crt\n"))
    with tls_server(config) as port:
        assert handshake(port, pki)["body"] == b"ok"
        assert handshake(port, pki, client=pki.client)["body"] == b"ok"
        with pytest.raises(ssl.SSLError, match="UNKNOWN_CA|unknown ca"):
            handshake(port, pki, client=pki.rogue_client)


def test_client_allowed_sans(pki: PKI, tmp_path: Path) -> None:
    config = webconfig.load(tls_file(pki, tmp_path, """\
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: ca.crt
  client_allowed_sans: ["spiffe://test/prometheus"]
"""))
    with tls_server(config) as port:
        assert handshake(port, pki, client=pki.client)["body"] == b"ok"
        # Signed by the trusted CA, but with a name not on the list: the server ends the
        # handshake (under TLS 1.3 the client learns it on its first read).
        assert refused(port, pki, pki.other_client)


def test_client_allowed_sans_with_verify_if_given_refuses_a_client_without_a_certificate(
        pki: PKI, tmp_path: Path) -> None:
    # As with the toolkit: the SAN check needs a certificate, so "if given" becomes "required".
    config = webconfig.load(tls_file(pki, tmp_path, """\
  client_auth_type: VerifyClientCertIfGiven
  client_ca_file: ca.crt
  client_allowed_sans: ["spiffe://test/prometheus"]
"""))
    with tls_server(config) as port:
        assert handshake(port, pki, client=pki.client)["body"] == b"ok"
        assert refused(port, pki, None)
        assert refused(port, pki, pki.other_client)


def test_client_allowed_sans_on_asyncio(pki: PKI, tmp_path: Path) -> None:
    """The daemon's server is asyncio: the check must hold there too (SSLObject, memory BIOs)."""
    config = webconfig.load(tls_file(pki, tmp_path, """\
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: ca.crt
  client_allowed_sans: ["spiffe://test/prometheus"]
"""))
    served: list[str] = []

    async def main() -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            served.append("ok")
            writer.write(b"ok")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=config.ssl_context)
        port = server.sockets[0].getsockname()[1]
        loop = asyncio.get_running_loop()
        try:
            good = await loop.run_in_executor(None, lambda: handshake(port, pki, client=pki.client))
            assert good["body"] == b"ok"
            assert await loop.run_in_executor(None, lambda: refused(port, pki, pki.other_client))
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(main())
    assert served == ["ok"]


def test_cipher_suites_restrict_tls12(pki: PKI, tmp_path: Path) -> None:
    config = webconfig.load(tls_file(pki, tmp_path, "  cipher_suites: [TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256]\n"
                                                    "http_server_config:\n  http2: false\n"))
    with tls_server(config) as port:
        assert handshake(port, pki, max_version=ssl.TLSVersion.TLSv1_2)["cipher"] == "ECDHE-ECDSA-CHACHA20-POLY1305"
        with pytest.raises(ssl.SSLError):
            handshake(port, pki, max_version=ssl.TLSVersion.TLSv1_2, ciphers="ECDHE-ECDSA-AES128-GCM-SHA256")


def test_tls13_suite_names_are_accepted_and_only_tls12_ones_restrict(pki: PKI, tmp_path: Path) -> None:
    config = webconfig.load(tls_file(pki, tmp_path, "  cipher_suites: [TLS_AES_128_GCM_SHA256, "
                                                    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]\n"))
    with tls_server(config) as port:
        assert handshake(port, pki)["cipher"] == "TLS_AES_256_GCM_SHA384"  # TLS 1.3 offers all three, as Go
        assert handshake(port, pki, max_version=ssl.TLSVersion.TLSv1_2)["cipher"] == "ECDHE-ECDSA-AES128-GCM-SHA256"
    only13 = tmp_path / "only13"
    only13.mkdir()
    config = webconfig.load(tls_file(pki, only13, "  cipher_suites: [TLS_AES_128_GCM_SHA256]\n"
                                                  "http_server_config:\n  http2: false\n"))
    with tls_server(config) as port:
        assert handshake(port, pki)["version"] == "TLSv1.3"
        with pytest.raises(ssl.SSLError):  # as Go: no TLS 1.2 suite was left
            handshake(port, pki, max_version=ssl.TLSVersion.TLSv1_2)


def handshake_with_curve(port: int, pki: PKI, curve: str) -> bytes:
    context = ssl.create_default_context(cafile=str(pki.ca.cert))
    context.set_ecdh_curve(curve)  # the client offers this key-exchange group only
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            return tls.recv(64)


@pytest.mark.parametrize("curves", [["CurveP384"], ["CurveP384", "X25519"]])
def test_curve_preferences_restricts_the_key_exchange(pki: PKI, tmp_path: Path, curves: list[str]) -> None:
    config = webconfig.load(tls_file(pki, tmp_path, f"  curve_preferences: [{', '.join(curves)}]\n"))
    with tls_server(config) as port:
        assert handshake_with_curve(port, pki, "secp384r1") == b"ok"
        if "X25519" in curves:
            assert handshake_with_curve(port, pki, "X25519") == b"ok"
        with pytest.raises(ssl.SSLError, match="HANDSHAKE_FAILURE|handshake failure"):
            handshake_with_curve(port, pki, "prime256v1")


def trust_directory(pki: PKI, directory: Path) -> Path:
    """A directory in OpenSSL's hashed layout holding the test CA: a stand-in system trust store."""
    directory.mkdir()
    digest = subprocess.run(["openssl", "x509", "-hash", "-noout", "-in", str(pki.ca.cert)],
                            capture_output=True, text=True, check=True).stdout.strip()
    shutil.copy(pki.ca.cert, directory / f"{digest}.0")
    return directory


@pytest.mark.parametrize("auth_type", ["VerifyClientCertIfGiven", "RequireAndVerifyClientCert"])
def test_client_auth_without_client_ca_verifies_against_the_system_trust_store(
        pki: PKI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, auth_type: str) -> None:
    monkeypatch.setenv("SSL_CERT_DIR", str(trust_directory(pki, tmp_path / "trust")))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "no-bundle.pem"))  # only the directory above
    config = webconfig.load(tls_file(pki, tmp_path, f"  client_auth_type: {auth_type}\n"))
    with tls_server(config) as port:
        assert handshake(port, pki, client=pki.client)["body"] == b"ok"
        assert refused(port, pki, pki.rogue_client)
    # Control: the same file with a store that lacks the CA refuses the same client certificate.
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path / "empty"))
    other = tmp_path / "other"
    other.mkdir()
    config = webconfig.load(tls_file(pki, other, f"  client_auth_type: {auth_type}\n"))
    with tls_server(config) as port:
        assert refused(port, pki, pki.client)


def test_reload_certificates_rotates_without_restart(pki: PKI, tmp_path: Path) -> None:
    config = webconfig.load(tls_file(pki, tmp_path))
    with tls_server(config) as port:
        first = serial_seen(port, pki)
        fresh = make_pki(tmp_path / "fresh")
        # Same CA would be nicer but a new one shows the swap just as well: trust both.
        shutil.copy(fresh.server.cert, tmp_path / "server.crt")
        shutil.copy(fresh.server.key, tmp_path / "server.key")
        config.reload_certificates()
        second = serial_seen(port, fresh)
        assert second != first
        # A certificate whose key was not rotated with it: refused, and the running pair stays.
        shutil.copy(pki.server.cert, tmp_path / "server.crt")
        with pytest.raises(WebConfigError, match="cannot load"):
            config.reload_certificates()
        assert serial_seen(port, fresh) == second


def serial_seen(port: int, pki: PKI) -> str:
    context = ssl.create_default_context(cafile=str(pki.ca.cert))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            cert = tls.getpeercert()
            tls.recv(16)
            return str(cert["serialNumber"])
