"""The `ssl.SSLContext` a web config's tls_server_config asks for."""

from __future__ import annotations

import _ssl
import ctypes
import os
import ssl
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

from exporter.webconfig.file import (
    CIPHER_SUITES,
    CURVES,
    TLS_VERSIONS,
    TLSServerConfig,
    version_order,
)
from exporter.webconfig.errors import WebConfigError


def server_context(tls: TLSServerConfig, file: Path) -> ssl.SSLContext:
    """A server context for `tls`; `file` (the web config) anchors relative paths and names errors."""
    base = file.parent
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        with warnings.catch_warnings():
            # TLS 1.0/1.1 are deprecated in Python too; the operator asked for them explicitly.
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = TLS_VERSIONS[tls.min_version]
            context.maximum_version = TLS_VERSIONS[tls.max_version]
    except ValueError as err:
        raise WebConfigError(f"{file}: tls_server_config: this OpenSSL cannot use "
                             f"{tls.min_version}..{tls.max_version}: {err}") from None
    # Renegotiation is a DoS lever and HTTP/1.1 over TLS never needs it.
    context.options |= ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_COMPRESSION
    if tls.prefer_server_cipher_suites:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    ciphers = ":".join(CIPHER_SUITES[name] for name in tls.cipher_suites if name in CIPHER_SUITES)
    if tls.cipher_suites and not ciphers:
        # Only TLS 1.3 names: as with Go, no suite is left for TLS 1.2 and older handshakes.
        context.minimum_version = ssl.TLSVersion.TLSv1_3
    elif version_order(tls.min_version) < version_order("TLS12"):
        # OpenSSL 3's default security level has no cipher left for TLS 1.0/1.1 (SHA-1 MACs);
        # an operator who asks for them explicitly gets them, and docs/security.md warns.
        ciphers = (ciphers or "DEFAULT") + ":@SECLEVEL=0"
    if ciphers:
        try:
            context.set_ciphers(ciphers)
        except ssl.SSLError as err:
            raise WebConfigError(
                f"{file}: tls_server_config.cipher_suites: none usable by this OpenSSL: {err}") from None
    if tls.curve_preferences:
        _set_groups(context, [CURVES[name] for name in dict.fromkeys(tls.curve_preferences)], file)
    context.set_alpn_protocols(["http/1.1"])
    load_chain(context, tls, base)
    if tls.client_allowed_sans is not None:
        _san_checking(context, frozenset(tls.client_allowed_sans))
    if tls.client_auth_type != "NoClientCert":
        context.verify_mode = (ssl.CERT_REQUIRED if tls.client_auth_type == "RequireAndVerifyClientCert"
                               else ssl.CERT_OPTIONAL)
        try:
            if tls.client_ca_file:
                context.load_verify_locations(cafile=str(_resolve(base, tls.client_ca_file)))
            elif tls.client_ca:
                context.load_verify_locations(cadata=tls.client_ca)
            else:
                # No client CAs: as Go does, verify against the system trust store (OpenSSL's
                # default paths, which SSL_CERT_FILE and SSL_CERT_DIR override).
                context.load_default_certs(ssl.Purpose.CLIENT_AUTH)
        except (OSError, ssl.SSLError) as err:
            where = tls.client_ca_file or "client_ca"
            raise WebConfigError(f"{file}: tls_server_config: cannot load client CA {where}: {_reason(err)}") from None
    return context


SSL_CTRL_SET_GROUPS_LIST = 92  # OpenSSL's SSL_CTX_set1_groups_list is this SSL_CTX_ctrl call


def _set_groups(context: ssl.SSLContext, groups: list[str], file: Path) -> None:
    """Restrict the key exchange to `groups` (OpenSSL names), as Go's CurvePreferences does.

    Python's ssl sets one group (set_ecdh_curve). For several, OpenSSL's
    SSL_CTX_set1_groups_list is called on the context's SSL_CTX, the first field after the
    object header of CPython's SSLContext; the pointer is trusted only once the options
    OpenSSL reads through it are the context's own.
    """
    where = f"{file}: tls_server_config.curve_preferences"
    if len(groups) == 1:
        try:
            context.set_ecdh_curve(groups[0])
        except (ValueError, ssl.SSLError) as err:
            raise WebConfigError(f"{where}: this OpenSSL cannot use {groups[0]}: {err}") from None
        return
    try:
        if sys.implementation.name != "cpython":
            raise OSError("not CPython")
        libssl = ctypes.CDLL(_ssl.__file__)  # resolves to the libssl the ssl module uses
        get_options, ctrl = libssl.SSL_CTX_get_options, libssl.SSL_CTX_ctrl
        get_options.argtypes, get_options.restype = [ctypes.c_void_p], ctypes.c_uint64
        ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_char_p]
        ctrl.restype = ctypes.c_long
        pointer = ctypes.c_void_p.from_address(id(context) + object.__basicsize__).value
        if not pointer or get_options(pointer) != context.options:
            raise OSError("the SSLContext layout is not the one expected")
    except (OSError, AttributeError) as err:
        raise WebConfigError(f"{where}: this Python's ssl can restrict the key exchange to one curve "
                             f"only ({err}); list one, or remove curve_preferences") from None
    if ctrl(pointer, SSL_CTRL_SET_GROUPS_LIST, 0, ":".join(groups).encode()) != 1:
        raise WebConfigError(f"{where}: this OpenSSL cannot use {', '.join(groups)}")


def _has_allowed_san(peer: ssl.SSLObject | ssl.SSLSocket, allowed: frozenset[str]) -> bool:
    cert = peer.getpeercert()
    if not cert:
        return False
    entries: Any = cert.get("subjectAltName", ())
    return any(str(entry[1]) in allowed for entry in entries)


def _san_checking(context: ssl.SSLContext, allowed: frozenset[str]) -> None:
    """Fail the handshake of a client whose verified certificate has none of `allowed`.

    Python's ssl has no verify callback, but a context builds its connections from
    `sslobject_class` (asyncio, memory BIOs) and `sslsocket_class` (blocking sockets):
    subclasses that check the SANs right after a successful handshake make the check part
    of the handshake for every server built on this context, whatever the server does.
    """

    def check(peer: ssl.SSLObject | ssl.SSLSocket) -> None:
        if peer.server_side and not _has_allowed_san(peer, allowed):
            raise ssl.SSLCertVerificationError(
                "client certificate has none of the names in client_allowed_sans")

    class SANCheckingObject(ssl.SSLObject):
        def do_handshake(self) -> None:
            super().do_handshake()
            check(self)

    class SANCheckingSocket(ssl.SSLSocket):
        def do_handshake(self, block: bool = False) -> None:
            super().do_handshake(block)
            check(self)

    context.sslobject_class = SANCheckingObject
    context.sslsocket_class = SANCheckingSocket


def _resolve(base: Path, name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else base / path


def _reason(err: BaseException) -> str:
    if isinstance(err, ssl.SSLError):
        return err.reason or str(err)
    if isinstance(err, OSError):
        return err.strerror or str(err)
    return str(err)


def _no_passphrase() -> bytes:
    # Without this OpenSSL would prompt on the terminal for an encrypted key.
    raise WebConfigError("encrypted private keys are not supported; store the key unencrypted "
                         "with restrictive permissions (0600, owned by the service user)")


def load_chain(context: ssl.SSLContext, tls: TLSServerConfig, base: Path) -> None:
    """Load the certificate and key into `context` (again, on rotation); raises WebConfigError."""
    if tls.cert_file and tls.key_file:
        cert_path, key_path = _resolve(base, tls.cert_file), _resolve(base, tls.key_file)
        try:
            context.load_cert_chain(str(cert_path), str(key_path), password=_no_passphrase)
        except WebConfigError:
            raise
        except (OSError, ssl.SSLError) as err:
            raise WebConfigError(
                f"tls_server_config: cannot load cert_file {cert_path} / key_file {key_path}: {_reason(err)}") from None
        return
    # Inline PEM: the ssl module only reads files, so write them to a private temporary
    # directory (mode 0700, removed at once).
    with tempfile.TemporaryDirectory(prefix="apm-exporter-tls-") as tmp:
        cert_path = Path(tmp) / "cert.pem"
        key_path = Path(tmp) / "key.pem"
        if tls.cert_file:
            cert_path = _resolve(base, tls.cert_file)
        else:
            cert_path.write_text(tls.cert or "", encoding="utf-8")
        if tls.key_file:
            key_path = _resolve(base, tls.key_file)
        else:
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(tls.key or "")
        try:
            context.load_cert_chain(str(cert_path), str(key_path), password=_no_passphrase)
        except WebConfigError:
            raise
        except (OSError, ssl.SSLError) as err:
            raise WebConfigError(f"tls_server_config: cannot load the certificate and key: {_reason(err)}") from None
