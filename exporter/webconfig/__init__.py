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
each with its YAML path and line. The parts: `file` (the schema), `tls` (the
SSL context), `auth` (bcrypt basic auth), `ratelimit` (rate_limit).
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exporter.webconfig.errors import WebConfigError

if TYPE_CHECKING:
    from exporter.webconfig.auth import Authenticator
    from exporter.webconfig.file import WebConfigFile
    from exporter.webconfig.ratelimit import RateLimiter

__all__ = ["Authenticator", "WebConfig", "WebConfigError", "load"]


def __getattr__(name: str) -> Any:
    # The parts load with the first file that needs them: a daemon without --web.config.file
    # never imports the schema, bcrypt auth or the TLS code (idle RSS).
    if name == "Authenticator":
        from exporter.webconfig.auth import Authenticator

        return Authenticator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

UNKNOWN_KEY = "unknown key (not part of the exporter-toolkit web config format)"


@dataclass
class WebConfig:
    """What the HTTP server needs: TLS, auth, extra headers; None/empty means off."""

    ssl_context: ssl.SSLContext | None = None
    authenticator: Authenticator | None = None
    headers: dict[str, str] = field(default_factory=dict)
    auth_excluded_paths: frozenset[str] = frozenset()
    rate_limiter: RateLimiter | None = None  # rate_limit: checked before everything else, auth included
    path: Path | None = None
    spec: WebConfigFile | None = None  # None: no file, every default

    async def allows(self, path: str, authorization: str | None) -> bool:
        """True when `path` needs no auth (no users, or listed in auth_excluded_paths: exact
        match) or the Authorization header carries a configured user and its password."""
        if self.authenticator is None or path in self.auth_excluded_paths:
            return True
        return await self.authenticator.check(authorization)

    def reload_certificates(self) -> None:
        """Re-read the certificate and key into the same context (rotation without restart).

        Connections opened after the call use the new pair. Raises WebConfigError, with the
        old pair still in use, when the new files do not load or do not match.
        """
        tls = self.spec.tls_server_config if self.spec is not None else None
        if self.ssl_context is None or tls is None or self.path is None:
            return
        from exporter.webconfig.tls import load_chain

        # A failed load can leave a context half-updated (new certificate, old key): try the
        # pair on a scratch context first, so a bad rotation keeps serving the old pair.
        load_chain(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), tls, self.path.parent)
        load_chain(self.ssl_context, tls, self.path.parent)

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
    from pydantic import ValidationError

    from exporter import yamlsource
    from exporter.webconfig.auth import Authenticator
    from exporter.webconfig.file import WebConfigFile, http2_problem, reads_text
    from exporter.webconfig.ratelimit import RateLimiter
    from exporter.webconfig.tls import server_context

    try:
        doc = yamlsource.read(text, str(file))
    except yamlsource.YAMLSyntaxError as err:
        raise WebConfigError(str(err)) from None
    for loc, scalar_text in doc.texts.items():
        if loc and reads_text(loc):
            doc.replace(loc, scalar_text)
    spec = None
    try:
        spec = WebConfigFile.model_validate(doc.data)
    except ValidationError as err:
        doc.problems += doc.validation_problems(err, UNKNOWN_KEY)
    if spec is not None and (problem := http2_problem(spec)) is not None:
        doc.problems.append(doc.problem(("tls_server_config", "cipher_suites"), problem))
    if doc.problems:
        raise WebConfigError("\n  ".join([f"{file}: invalid web config:", *doc.problems]))
    assert spec is not None
    tls = spec.tls_server_config
    return WebConfig(
        ssl_context=server_context(tls, file) if tls is not None else None,
        authenticator=Authenticator(spec.basic_auth_users) if spec.basic_auth_users else None,
        headers=dict(spec.http_server_config.headers),
        auth_excluded_paths=frozenset(spec.auth_excluded_paths),
        rate_limiter=(RateLimiter(spec.rate_limit.interval, spec.rate_limit.burst)
                      if spec.rate_limit.interval else None),
        path=file,
        spec=spec,
    )
