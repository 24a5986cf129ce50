"""Hide secrets in text that is shown to people: logs, errors, the landing page.

Probe targets are configured with DSNs and URLs that often carry a password
(`redis://:pw@host:6379/0`, `postgresql://app:pw@db/app`, libpq's
`host=db password=pw`). Anything that prints a target, or an error that may
quote one, passes it through `redact()` first. The functions are pure and never
raise, so calling them on a hot or error path is always safe.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

# What replaces a secret; the same marker Prometheus shows for <secret> fields.
MASK = "<secret>"

# scheme://user:password@host — the password is everything after the first ':' of the
# userinfo up to the last '@' before the host (passwords may contain '@' unencoded).
_URL_USERINFO = re.compile(
    r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/@?#]*:)(?P<secret>[^\s/?#]*)(?P<tail>@)"
)

# key=value secrets: libpq/ODBC DSNs, URL query strings and logfmt-looking text.
_SECRET_KEYS = (
    "password", "passwd", "pwd", "pass", "secret", "token", "api_key", "apikey",
    "access_token", "auth", "authorization", "sslpassword", "client_secret",
)
_KEY_VALUE = re.compile(
    r"(?P<head>(?<![A-Za-z0-9_\-])(?:" + "|".join(_SECRET_KEYS) + r")\s*=\s*)"
    r"(?P<secret>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^\s&;,'\"]+)",
    re.IGNORECASE,
)
# YAML/JSON-ish `password: value` as it would appear if a config fragment is echoed.
_KEY_COLON = re.compile(
    r"(?P<head>(?<![A-Za-z0-9_\-])[\"']?(?:" + "|".join(_SECRET_KEYS) + r")[\"']?\s*:\s+)"
    r"(?!(?:Basic|Bearer|Digest)\s)(?P<secret>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^\s,}'\"]+)",
    re.IGNORECASE,
)
# HTTP Authorization header values (Basic/Bearer credentials).
_AUTH_HEADER = re.compile(r"(?P<head>\b(?:Basic|Bearer|Digest)\s+)(?P<secret>[A-Za-z0-9+/=._~\-]{8,})")


# libpq key=value DSNs ("host=db password=secret"): to learn the password, so an
# error that quotes it in another form is masked too.
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def _mask(match: re.Match[str]) -> str:
    secret = match.group("secret")
    if not secret or secret == MASK:
        return match.group(0)
    quote = secret[0] if secret[0] in "'\"" and len(secret) > 1 and secret[-1] == secret[0] else ""
    tail = match.groupdict().get("tail") or ""
    return f"{match.group('head')}{quote}{MASK}{quote}{tail}"


def redact_url(url: str) -> str:
    """Return `url` with the password of its userinfo and secret query values masked.

    The user name stays: it helps to find which credential failed and is not a secret.
    """
    return redact(url)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask every password-looking part of `text`, plus each literal in `secrets`.

    `secrets` covers what no pattern can recognise, such as a driver error that
    quotes the bare password; values shorter than 4 characters are ignored there,
    since masking every "a" in a message would make it unreadable and protect little.
    """
    if not isinstance(text, str):
        text = str(text)
    out = _URL_USERINFO.sub(_mask, text)
    out = _AUTH_HEADER.sub(_mask, out)
    out = _KEY_VALUE.sub(_mask, out)
    out = _KEY_COLON.sub(_mask, out)
    # Longest first, so a secret that contains another is masked whole.
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        out = out.replace(secret, MASK)
    return out


def dsn_secrets(dsn: str) -> list[str]:
    """The passwords a URL or libpq DSN carries, to mask where a driver quotes them bare."""
    found = []
    try:
        password = urlsplit(dsn).password
    except ValueError:
        password = None
    if password:
        found.append(password)
    kv = _KV_PASSWORD.search(dsn)
    if kv:
        found.append(kv.group(2).strip("'"))
    return found


def describe_error(err: BaseException, secrets: Iterable[str] = ()) -> str:
    """`Type: message` with every secret masked: drivers like to echo DSNs in errors."""
    text = str(err) or type(err).__name__
    return f"{type(err).__name__}: {redact(text, secrets)}"
