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
    ("  client_auth_type: RequireAnyClientCert\n  client_ca_file: ca.crt\n", "accepts certificates nobody verified"),
    ("  client_auth_type: RequestClientCert\n  client_ca_file: ca.crt\n", "accepts certificates nobody verified"),
    ("  client_ca_file: ca.crt\n", "client CAs are configured without a client_auth_type"),
    ("  client_auth_type: RequireAndVerifyClientCert\n", "needs client_ca_file"),
    ("  client_allowed_sans: [a]\n  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.crt\n",
     "client_allowed_sans requires client_auth_type RequireAndVerifyClientCert"),
    ("  min_version: TLS13\n  max_version: TLS12\n", "min_version TLS13 is above max_version TLS12"),
    ("  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n", "unknown or insecure cipher suite(s) TLS_RSA_WITH_RC4_128_SHA"),
    ("  curve_preferences: [X25519]\n", "curve_preferences is not supported"),
])
def test_unusable_tls_settings_are_refused_clearly(pki: PKI, tmp_path: Path, extra: str, expected: str) -> None:
    with pytest.raises(WebConfigError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        webconfig.load(tls_file(pki, tmp_path, extra))


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
    config = webconfig.load(
        tls_file(pki, tmp_path, "  cipher_suites: [TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256]\n"))
    with tls_server(config) as port:
        assert handshake(port, pki, max_version=ssl.TLSVersion.TLSv1_2)["cipher"] == "ECDHE-ECDSA-CHACHA20-POLY1305"
        with pytest.raises(ssl.SSLError):
            handshake(port, pki, max_version=ssl.TLSVersion.TLSv1_2, ciphers="ECDHE-ECDSA-AES128-GCM-SHA256")


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
