"""The HTTP probe's target section: the request, redirects, address family, body and TLS checks."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator

from exporter.schema import Regex, Target

_JSON_PATH = re.compile(r"^[^.\s]+(\.[^.\s]+)*$")


class Config(Target):
    """An HTTP(S) endpoint; `expected_status` empty means any 2xx."""

    url: str = Field(pattern=r"^https?://[^/?#]+")
    method: str = Field(default="GET", pattern=r"^[A-Z]+$")
    headers: dict[str, str] = {}
    body: str | None = None
    expected_status: list[int] = []
    follow_redirects: bool = True
    max_redirects: int = Field(default=10, ge=0, le=100)
    # None: the addresses in the resolver's order; ip4/ip6: that family first, the other
    # only when the name has no address of it and ip_protocol_fallback allows.
    ip_protocol: Literal["ip4", "ip6"] | None = None
    ip_protocol_fallback: bool = True
    # Body checks, on the final answer's first MiB (decoded as UTF-8).
    body_matches: list[Regex] = []
    body_not_matches: list[Regex] = []
    # A dotted path into the JSON body (list items by index: items.0.id) and the value it must equal.
    body_json: dict[str, Any] = {}
    # A PEM bundle to verify the server with instead of the system's CAs.
    ca_file: str | None = None
    insecure_skip_verify: bool = False

    @field_validator("expected_status")
    @classmethod
    def _codes(cls, codes: list[int]) -> list[int]:
        bad = [c for c in codes if not 100 <= c <= 599]
        if bad:
            raise ValueError(f"not HTTP status codes: {bad}")
        return codes

    @field_validator("body_json")
    @classmethod
    def _paths(cls, checks: dict[str, Any]) -> dict[str, Any]:
        bad = [path for path in checks if not _JSON_PATH.match(path)]
        if bad:
            raise ValueError(f"not dotted paths (a.b.0.c): {bad}")
        return checks
