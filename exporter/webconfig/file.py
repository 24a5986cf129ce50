"""The web config file's schema: exporter-toolkit's format, checked key by key.

A config that names something Python's ssl cannot do is refused here with a
message that says so, rather than served differently from what it asks.
"""

from __future__ import annotations

import re
import ssl
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import AfterValidator, BeforeValidator, Field, StrictBool, StrictInt, field_validator, model_validator

from exporter.durations import GO_UNIT_SECONDS, parse_duration
from exporter.schema import Section
from exporter.yamlsource import Location

# Go's crypto/tls names, as exporter-toolkit accepts them (the secure list, tls.CipherSuites()),
# -> OpenSSL's names. They restrict TLS 1.2 and older; RSA key exchange, RC4, 3DES and CBC-SHA256
# suites are Go's "insecure" list, which the toolkit refuses, and so do we.
CIPHER_SUITES: dict[str, str] = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
}
# TLS 1.3 suites are accepted and, as Go does, ignored: TLS 1.3 always offers all three.
TLS13_CIPHER_SUITES = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")
# Go's net/http refuses to serve HTTP/2 over TLS 1.2 without one of these (exporter-toolkit fails
# to start on such a file while http2 is on), so the same file is refused here too.
HTTP2_REQUIRED_SUITES = ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256")
# The toolkit's curve names -> OpenSSL's group names.
CURVES: dict[str, str] = {"CurveP256": "prime256v1", "CurveP384": "secp384r1", "CurveP521": "secp521r1",
                          "X25519": "X25519"}

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

ClientAuthType = Literal[
    "NoClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert",
    "RequestClientCert", "RequireAnyClientCert", "RequireClientCert",
]
TLSVersionName = Literal["TLS10", "TLS11", "TLS12", "TLS13"]


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
    prefer_server_cipher_suites: StrictBool = True
    curve_preferences: list[str] = []

    @field_validator("client_auth_type")
    @classmethod
    def _verifiable(cls, value: str) -> str:
        if value in ("RequestClientCert", "RequireAnyClientCert", "RequireClientCert"):
            raise ValueError(
                f"{value} cannot be served: Python's ssl cannot ask for a client certificate without "
                "verifying it; use RequireAndVerifyClientCert (or VerifyClientCertIfGiven), with "
                "client_ca_file or the system trust store")
        return value

    @field_validator("cipher_suites")
    @classmethod
    def _known_ciphers(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in CIPHER_SUITES and name not in TLS13_CIPHER_SUITES]
        if unknown:
            raise ValueError(f"unknown cipher suite(s) {', '.join(unknown)} (exporter-toolkit accepts Go's "
                             f"secure suites: {', '.join([*CIPHER_SUITES, *TLS13_CIPHER_SUITES])})")
        return value

    @field_validator("curve_preferences")
    @classmethod
    def _known_curves(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in CURVES]
        if unknown:
            raise ValueError(f"unknown curve(s) {', '.join(unknown)}; known: {', '.join(CURVES)}")
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
        # A verifying client_auth_type without client CAs verifies against the system trust store.
        has_ca = bool(self.client_ca_file or self.client_ca)
        if has_ca and self.client_auth_type == "NoClientCert":
            problems.append("client CAs are configured without a client_auth_type: "
                            "set RequireAndVerifyClientCert or VerifyClientCertIfGiven")
        if self.client_allowed_sans is not None and self.client_auth_type == "NoClientCert":
            # The toolkit starts, then fails every handshake: no certificate is asked for to check.
            problems.append("client_allowed_sans needs a client certificate: set client_auth_type "
                            "RequireAndVerifyClientCert (or VerifyClientCertIfGiven)")
        if version_order(self.min_version) > version_order(self.max_version):
            # The toolkit starts and then refuses every handshake; refusing the file says why.
            problems.append(f"min_version {self.min_version} is above max_version {self.max_version}: "
                            "no client could connect")
        if (self.cipher_suites and not any(name in CIPHER_SUITES for name in self.cipher_suites)
                and version_order(self.max_version) < version_order("TLS13")):
            problems.append("cipher_suites names only TLS 1.3 suites, which are not configurable, and "
                            "max_version is below TLS13: no suite is left for any handshake")
        if problems:
            raise ValueError("; ".join(problems))
        return self


def version_order(name: str) -> int:
    """TLS versions by age, to compare min_version with max_version."""
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
    http2: StrictBool = True
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


def _go_duration(value: Any) -> Any:
    """Go's time.Duration as the toolkit's YAML decoding reads it: text ("1s", "1m30s", "250ms")
    or an integer number of nanoseconds; seconds here."""
    if isinstance(value, bool):
        return value  # refused by the float type
    if isinstance(value, int):
        return value / 1e9
    if isinstance(value, str):
        return parse_duration(value, GO_UNIT_SECONDS)
    raise ValueError("expected a duration such as 1s, 500ms or 1m")


class RateLimit(Section):
    """Requests allowed per `interval`, with bursts of `burst` (golang.org/x/time/rate's bucket);
    an interval of 0 (the default) means no limit."""

    burst: StrictInt = 0
    interval: Annotated[float, BeforeValidator(_go_duration), Field(ge=0)] = 0.0


# Per entry, so an error points at the user's own line; messages never quote the value.
BcryptHash = Annotated[str, AfterValidator(_check_bcrypt)]
UserName = Annotated[str, AfterValidator(_check_user)]


class WebConfigFile(Section):
    """The whole file, as the toolkit defines it."""

    tls_server_config: TLSServerConfig | None = None
    http_server_config: HTTPServerConfig = HTTPServerConfig()
    rate_limit: RateLimit = RateLimit()
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
        # The toolkit treats a tls_server_config that sets none of these as plain HTTP; a key it
        # does not know (a misspelled cert_file) still refuses the file.
        if (isinstance(value, dict) and set(value) <= set(TLSServerConfig.model_fields)
                and not any(value.get(k) for k in _TLS_ENABLING)):
            return None
        return value

_TLS_ENABLING = ("cert_file", "key_file", "cert", "key", "client_ca_file", "client_ca", "client_auth_type")


def http2_problem(spec: WebConfigFile) -> str | None:
    """Go's net/http will not serve HTTP/2 over TLS 1.2 without one of HTTP2_REQUIRED_SUITES, and
    exporter-toolkit fails to start on such a file while http2 is on: the same file is refused."""
    tls = spec.tls_server_config
    if (tls is not None and tls.cipher_suites and spec.http_server_config.http2
            and version_order(tls.min_version) < version_order("TLS13")
            and not any(name in HTTP2_REQUIRED_SUITES for name in tls.cipher_suites)):
        return (f"lacks an HTTP/2-required suite (one of {', '.join(HTTP2_REQUIRED_SUITES)}), so "
                "exporter-toolkit refuses this file while http_server_config.http2 is on: add one, "
                "or set http2: false")
    return None


def reads_text(loc: Location) -> bool:
    """True when the file's schema reads a string at `loc`: Go's YAML decoding gives a string field
    the scalar's own text (`X-XSS-Protection: 1` is "1"), so the toolkit accepts any scalar there."""
    annotation: Any = WebConfigFile
    for part in loc:
        annotation = _bare(annotation)
        if isinstance(annotation, type) and issubclass(annotation, Section):
            field = annotation.model_fields.get(str(part))
            if field is None:
                return False
            annotation = field.annotation
        elif get_origin(annotation) in (dict, list):
            annotation = get_args(annotation)[-1 if get_origin(annotation) is dict else 0]
        else:
            return False
    annotation = _bare(annotation)
    return annotation is str or get_origin(annotation) is Literal


def _bare(annotation: Any) -> Any:
    """`X` for Annotated[X, ...] and for X | None."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            annotation = next(a for a in get_args(annotation) if a is not type(None))
        else:
            return annotation
