"""The web config file's schema: exporter-toolkit's format, checked key by key.

A config that names something Python's ssl cannot do is refused here with a
message that says so, rather than served differently from what it asks.
"""

from __future__ import annotations

import re
import ssl
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

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

ClientAuthType = Literal[
    "NoClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert",
    "RequestClientCert", "RequireAnyClientCert", "RequireClientCert",
]
TLSVersionName = Literal["TLS10", "TLS11", "TLS12", "TLS13"]


class WebConfigError(ValueError):
    """The web config file cannot be used; the message lists every problem found."""


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
        if version_order(self.min_version) > version_order(self.max_version):
            problems.append(f"min_version {self.min_version} is above max_version {self.max_version}")
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
