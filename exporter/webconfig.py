"""TLS and basic auth for the HTTP server, from a `--web.config.file`.

The file has the Prometheus exporter-toolkit format, so the one an operator
already writes for node_exporter works here unchanged:

    tls_server_config:
      cert_file: server.crt          # relative paths are relative to this file
      key_file: server.key
      min_version: TLS12             # TLS10 | TLS11 | TLS12 (default) | TLS13
      client_auth_type: RequireAndVerifyClientCert
      client_ca_file: ca.crt
    http_server_config:
      headers: {X-Frame-Options: deny}
    basic_auth_users:
      prometheus: $2b$12$...         # bcrypt hash (htpasswd -nBC 12 '' | tr -d ':\\n')
    auth_excluded_paths: [/-/healthy]

`load()` validates it once into a `WebConfig`: an `ssl.SSLContext` (or None for
plain HTTP), an `Authenticator` (or None without users), the extra response
headers and the paths left open on purpose. Every problem is reported at once,
each with its YAML path and line.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
import ssl
import tempfile
import threading
import warnings
from collections import Counter, OrderedDict
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from exporter.schema import Section

# Go's crypto/tls names (what the toolkit format uses) -> OpenSSL names. TLS 1.3 suites are
# not configurable there either; these only restrict TLS 1.2 and older handshakes.
# RC4 and 3DES suites are left out on purpose: a config naming them is refused.
CIPHER_SUITES: dict[str, str] = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256": "AES128-SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": "ECDHE-ECDSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": "ECDHE-RSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
}
# Go also accepts the short names it used before the RFC 8446 spelling.
CIPHER_SUITES["TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305"] = CIPHER_SUITES["TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"]
CIPHER_SUITES["TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305"] = CIPHER_SUITES["TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"]

TLS_VERSIONS: dict[str, ssl.TLSVersion] = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}

# The toolkit lets only these headers be set, with these values where the set is closed;
# keeping the same list keeps one web config file valid for every exporter.
EXTRA_HEADERS: dict[str, tuple[str, ...]] = {
    "Strict-Transport-Security": (),
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": (),
    "Content-Security-Policy": (),
}

_BCRYPT_HASH = re.compile(r"^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$")
# Verified (user, password) pairs remembered so each scrape does not pay bcrypt's cost.
DEFAULT_CACHE_SIZE = 1024
# Verifications waiting for the bcrypt thread beyond this are refused outright, so a flood of
# wrong passwords costs the attacker a connection each but cannot queue unbounded CPU work.
MAX_PENDING_VERIFICATIONS = 32

ClientAuthType = Literal[
    "NoClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert",
    "RequestClientCert", "RequireAnyClientCert", "RequireClientCert",
]
TLSVersionName = Literal["TLS10", "TLS11", "TLS12", "TLS13"]


class WebConfigError(ValueError):
    """The web config file cannot be used; the message lists every problem found."""


# --- the file's schema ----------------------------------------------------------


class TLSServerConfig(Section):
    cert_file: str | None = None
    key_file: str | None = None
    # Inline PEM instead of files (toolkit >= 0.11).
    cert: str | None = None
    key: str | None = Field(default=None, repr=False)
    client_ca_file: str | None = None
    client_ca: str | None = None
    client_auth_type: ClientAuthType = "NoClientCert"
    client_allowed_sans: list[str] | None = None
    min_version: TLSVersionName = "TLS12"
    max_version: TLSVersionName = "TLS13"
    cipher_suites: list[str] = []
    prefer_server_cipher_suites: bool = True
    curve_preferences: list[str] = []

    @field_validator("client_auth_type")
    @classmethod
    def _verifiable(cls, value: str) -> str:
        if value in ("RequestClientCert", "RequireAnyClientCert", "RequireClientCert"):
            # Python's ssl module cannot ask for a certificate without verifying it, and an
            # unverified certificate proves nothing about who connects.
            raise ValueError(
                f"{value} is not supported: it accepts certificates nobody verified; use "
                "RequireAndVerifyClientCert (or VerifyClientCertIfGiven) with client_ca_file")
        return value

    @field_validator("cipher_suites")
    @classmethod
    def _known_ciphers(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in CIPHER_SUITES]
        if unknown:
            raise ValueError(f"unknown or insecure cipher suite(s) {', '.join(unknown)}; "
                             f"supported: {', '.join(sorted(CIPHER_SUITES))}")
        return value

    @field_validator("curve_preferences")
    @classmethod
    def _no_curves(cls, value: list[str]) -> list[str]:
        if value:
            raise ValueError("curve_preferences is not supported (Python's ssl cannot set the "
                             "key exchange groups); remove it to use OpenSSL's defaults")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> TLSServerConfig:
        problems = []
        if not (self.cert_file or self.cert):
            problems.append("missing one of cert or cert_file")
        if not (self.key_file or self.key):
            problems.append("missing one of key or key_file")
        if self.cert_file and self.cert:
            problems.append("set only one of cert and cert_file")
        if self.key_file and self.key:
            problems.append("set only one of key and key_file")
        has_ca = bool(self.client_ca_file or self.client_ca)
        if has_ca and self.client_auth_type == "NoClientCert":
            problems.append("client CAs are configured without a client_auth_type: "
                            "set RequireAndVerifyClientCert or VerifyClientCertIfGiven")
        if not has_ca and self.client_auth_type != "NoClientCert":
            problems.append(f"client_auth_type {self.client_auth_type} needs client_ca_file "
                            "(the CA that signs client certificates)")
        if self.client_allowed_sans is not None and self.client_auth_type != "RequireAndVerifyClientCert":
            problems.append("client_allowed_sans requires client_auth_type RequireAndVerifyClientCert")
        if _version_order(self.min_version) > _version_order(self.max_version):
            problems.append(f"min_version {self.min_version} is above max_version {self.max_version}")
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _version_order(name: str) -> int:
    return list(TLS_VERSIONS).index(name)


def _check_header_name(name: str) -> str:
    if name not in EXTRA_HEADERS:
        raise ValueError(f"HTTP header {name!r} can not be configured; allowed: {', '.join(EXTRA_HEADERS)}")
    return name


def _single_line(value: str) -> str:
    if any(c in value for c in "\r\n\0"):
        raise ValueError("a header value must be a single line")
    return value


class HTTPServerConfig(Section):
    # Accepted for file compatibility; the server speaks HTTP/1.1 only.
    http2: bool = True
    headers: dict[Annotated[str, AfterValidator(_check_header_name)],
                  Annotated[str, AfterValidator(_single_line)]] = {}

    @field_validator("headers")
    @classmethod
    def _allowed_values(cls, value: dict[str, str]) -> dict[str, str]:
        for name, header_value in value.items():
            allowed = EXTRA_HEADERS[name]
            if allowed and header_value not in allowed:
                raise ValueError(f"invalid value {header_value!r} for {name}: expected one of {', '.join(allowed)}")
        return value


def _check_bcrypt(value: str) -> str:
    match = _BCRYPT_HASH.match(value)
    if match is None:
        raise ValueError("not a bcrypt hash ($2a$/$2b$/$2y$); create one with: htpasswd -nBC 12 USER")
    if not 4 <= int(match.group(1)) <= 31:
        raise ValueError("bcrypt cost must be within 4..31")
    return value


def _check_user(value: str) -> str:
    if ":" in value or not value:
        raise ValueError("a basic auth user name must be non-empty and cannot contain ':'")
    return value


# Per entry, so an error points at the user's own line; messages never quote the value.
BcryptHash = Annotated[str, AfterValidator(_check_bcrypt)]
UserName = Annotated[str, AfterValidator(_check_user)]


class WebConfigFile(Section):
    """The whole file, as the toolkit defines it."""

    tls_server_config: TLSServerConfig | None = None
    http_server_config: HTTPServerConfig = HTTPServerConfig()
    basic_auth_users: dict[UserName, BcryptHash] = Field(default={}, repr=False)
    # Paths served without basic auth (exact match), e.g. kubelet probes of /-/healthy.
    # TLS still applies to them.
    auth_excluded_paths: list[str] = []

    @field_validator("auth_excluded_paths")
    @classmethod
    def _absolute_paths(cls, value: list[str]) -> list[str]:
        bad = [p for p in value if not p.startswith("/")]
        if bad:
            raise ValueError(f"paths must start with '/': {', '.join(bad)}")
        return value

    @field_validator("tls_server_config", mode="before")
    @classmethod
    def _empty_tls(cls, value: Any) -> Any:
        # The toolkit treats a tls_server_config with nothing in it as plain HTTP.
        if isinstance(value, dict) and not any(value.get(k) for k in (
                "cert_file", "key_file", "cert", "key", "client_ca_file", "client_ca", "client_auth_type")):
            return None
        return value


# --- basic auth -------------------------------------------------------------------


class Authenticator:
    """Checks `Authorization: Basic` headers against bcrypt hashes.

    bcrypt takes 50-250 ms by design, far too slow to pay on every scrape, so a
    successful verification is remembered. The cache key is an HMAC, under a
    random per-process key, of the user and the exact password sent: a different
    password gives a different key, so only bcrypt can say yes to it. Failures are
    never cached. Unknown users are checked against a decoy hash of the same cost,
    so response time does not tell which user names exist. One bcrypt runs at a
    time (the toolkit does the same), so wrong passwords cannot take every core.
    """

    def __init__(self, users: Mapping[str, str], cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        import bcrypt  # optional dependency (extra "auth"): only needed once users are configured

        self._bcrypt = bcrypt
        self._users = {user: hashed.encode() for user, hashed in users.items()}
        cost = max((int(h[4:6]) for h in self._users.values()), default=10)
        self._decoy = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(rounds=cost))
        self._key = secrets.token_bytes(32)
        self._cache: OrderedDict[bytes, None] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._bcrypt_lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._pending = 0
        # Refusals by reason (missing, malformed, unknown_user, wrong_password, overloaded),
        # for the daemon to export as apm_exporter_http_auth_failures_total.
        self.failures: Counter[str] = Counter()

    @property
    def users(self) -> frozenset[str]:
        return frozenset(self._users)

    def check(self, authorization_header: str | None) -> bool:
        """True if the header carries a configured user and its password. Blocks on bcrypt."""
        parsed = self._parse(authorization_header)
        if parsed is None:
            return False
        user, password = parsed
        key = self._cache_key(user, password)
        if self._cached(key):
            return True
        return self._verify(user, password, key)

    async def check_async(self, authorization_header: str | None) -> bool:
        """`check()` for the event loop: bcrypt runs in a worker thread, never on the loop."""
        parsed = self._parse(authorization_header)
        if parsed is None:
            return False
        user, password = parsed
        key = self._cache_key(user, password)
        if self._cached(key):
            return True
        with self._lock:
            if self._pending >= MAX_PENDING_VERIFICATIONS:
                self.failures["overloaded"] += 1
                return False
            self._pending += 1
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bcrypt")
            executor = self._executor
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(executor, self._verify, user, password, key)
        finally:
            with self._lock:
                self._pending -= 1

    def close(self) -> None:
        """Stop the bcrypt worker thread (on reload and shutdown)."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def _parse(self, header: str | None) -> tuple[str, bytes] | None:
        if not header:
            self.failures["missing"] += 1
            return None
        scheme, _, encoded = header.strip().partition(" ")
        try:
            if scheme.lower() != "basic":
                raise ValueError
            raw = base64.b64decode(encoded.strip(), validate=True)
            user_bytes, sep, password = raw.partition(b":")
            if not sep:
                raise ValueError
            user = user_bytes.decode("utf-8")
        except (ValueError, binascii.Error, UnicodeDecodeError):
            self.failures["malformed"] += 1
            return None
        return user, password

    def _cache_key(self, user: str, password: bytes) -> bytes:
        encoded = user.encode("utf-8")
        # Length-prefixed so ("ab", "c") and ("a", "bc") never share a key.
        return hmac.digest(self._key, len(encoded).to_bytes(4, "big") + encoded + password, hashlib.sha256)

    def _cached(self, key: bytes) -> bool:
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return True
        return False

    def _verify(self, user: str, password: bytes, key: bytes) -> bool:
        hashed = self._users.get(user)
        # bcrypt only reads the first 72 bytes; hashes made by htpasswd were made from those.
        candidate = password[:72]
        with self._bcrypt_lock:
            if hashed is None:
                self._bcrypt.checkpw(candidate, self._decoy)
                ok = False
            else:
                ok = self._bcrypt.checkpw(candidate, hashed)
        if not ok:
            self.failures["unknown_user" if hashed is None else "wrong_password"] += 1
            return False
        with self._lock:
            self._cache[key] = None
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return True


# --- the result -------------------------------------------------------------------


@dataclass
class WebConfig:
    """What the HTTP server needs: TLS, auth, extra headers; None/empty means off."""

    ssl_context: ssl.SSLContext | None = None
    authenticator: Authenticator | None = None
    headers: dict[str, str] = field(default_factory=dict)
    auth_excluded_paths: frozenset[str] = frozenset()
    client_allowed_sans: frozenset[str] | None = None
    path: Path | None = None
    spec: WebConfigFile = field(default_factory=WebConfigFile)

    def requires_auth(self, path: str) -> bool:
        """False only for paths the operator listed in auth_excluded_paths (exact match)."""
        return self.authenticator is not None and path.split("?", 1)[0] not in self.auth_excluded_paths

    def peer_allowed(self, peer: ssl.SSLObject | ssl.SSLSocket | None) -> bool:
        """True if the peer's certificate names one of client_allowed_sans (or none are set).

        The SSL context already enforces this during the handshake (see _san_checking);
        this is for callers that want to ask again.
        """
        if self.client_allowed_sans is None:
            return True
        return peer is not None and _has_allowed_san(peer, self.client_allowed_sans)

    def reload_certificates(self) -> None:
        """Re-read the certificate and key into the same context (rotation without restart).

        Connections opened after the call use the new pair. Raises WebConfigError, with the
        old pair still in use, when the new files do not load or do not match.
        """
        tls = self.spec.tls_server_config
        if self.ssl_context is None or tls is None or self.path is None:
            return
        # A failed load can leave a context half-updated (new certificate, old key): try the
        # pair on a scratch context first, so a bad rotation keeps serving the old pair.
        _load_chain(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), tls, self.path.parent)
        _load_chain(self.ssl_context, tls, self.path.parent)

    def close(self) -> None:
        if self.authenticator is not None:
            self.authenticator.close()


def load(path: str | os.PathLike[str] | None) -> WebConfig:
    """Read and validate a web config file; None or "" means plain HTTP without auth."""
    if path is None or str(path) == "":
        return WebConfig()
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as err:
        raise WebConfigError(f"{file}: cannot read web config file: {err.strerror or err}") from None
    return parse(text, file)


def parse(text: str, file: Path) -> WebConfig:
    """Validate `text` (the content of `file`, whose directory anchors relative paths)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{file}:{mark.line + 1}" if mark is not None else str(file)
        problem = getattr(err, "problem", None) or str(err)
        raise WebConfigError(f"{where}: invalid YAML: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise WebConfigError(f"{file}:1: the web config must be a mapping (tls_server_config, basic_auth_users, ...)")
    try:
        spec = WebConfigFile.model_validate(data)
    except ValidationError as err:
        raise WebConfigError(_describe(err, node, file)) from None

    context = None
    if spec.tls_server_config is not None:
        context = _ssl_context(spec.tls_server_config, file)
    authenticator = Authenticator(spec.basic_auth_users) if spec.basic_auth_users else None
    tls = spec.tls_server_config
    return WebConfig(
        ssl_context=context,
        authenticator=authenticator,
        headers=dict(spec.http_server_config.headers),
        auth_excluded_paths=frozenset(spec.auth_excluded_paths),
        client_allowed_sans=(frozenset(tls.client_allowed_sans)
                             if tls is not None and tls.client_allowed_sans is not None else None),
        path=file,
        spec=spec,
    )


def _describe(err: ValidationError, node: yaml.Node | None, file: Path) -> str:
    lines = [f"{file}: invalid web config:"]
    for problem in err.errors():
        loc = [part for part in problem["loc"]
               if not (isinstance(part, str) and (part.startswith("function-") or part == "[key]"))]
        line = _line_of(node, loc)
        where = ".".join(str(p) for p in loc) or "(top level)"
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = "unknown key (not part of the exporter-toolkit web config format)"
            if loc and loc[-1] == "rate_limit":
                message = "rate_limit is not supported by apm-exporter; remove it"
        lines.append(f"  {file}:{line}: {where}: {message}" if line else f"  {where}: {message}")
    return "\n".join(lines)


def _line_of(node: yaml.Node | None, loc: list[Any]) -> int | None:
    """1-based line of the deepest YAML node that `loc` reaches."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for depth, part in enumerate(loc):
        child = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == str(part):
                    # The key's own line for the last step: an unknown key has no useful value.
                    child = key if depth == len(loc) - 1 else value
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
        if child is None:
            break
        node, line = child, child.start_mark.line + 1
    return line


def _ssl_context(tls: TLSServerConfig, file: Path) -> ssl.SSLContext:
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
    ciphers = ":".join(CIPHER_SUITES[name] for name in tls.cipher_suites)
    if _version_order(tls.min_version) < _version_order("TLS12"):
        # OpenSSL 3's default security level has no cipher left for TLS 1.0/1.1 (SHA-1 MACs);
        # an operator who asks for them explicitly gets them, and docs/security.md warns.
        ciphers = (ciphers or "DEFAULT") + ":@SECLEVEL=0"
    if ciphers:
        try:
            context.set_ciphers(ciphers)
        except ssl.SSLError as err:
            raise WebConfigError(
                f"{file}: tls_server_config.cipher_suites: none usable by this OpenSSL: {err}") from None
    context.set_alpn_protocols(["http/1.1"])
    _load_chain(context, tls, base)
    if tls.client_allowed_sans is not None:
        _san_checking(context, frozenset(tls.client_allowed_sans))
    if tls.client_auth_type != "NoClientCert":
        context.verify_mode = (ssl.CERT_REQUIRED if tls.client_auth_type == "RequireAndVerifyClientCert"
                               else ssl.CERT_OPTIONAL)
        try:
            if tls.client_ca_file:
                context.load_verify_locations(cafile=str(_resolve(base, tls.client_ca_file)))
            else:
                context.load_verify_locations(cadata=tls.client_ca)
        except (OSError, ssl.SSLError) as err:
            where = tls.client_ca_file or "client_ca"
            raise WebConfigError(f"{file}: tls_server_config: cannot load client CA {where}: {_reason(err)}") from None
    return context


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


def _load_chain(context: ssl.SSLContext, tls: TLSServerConfig, base: Path) -> None:
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
