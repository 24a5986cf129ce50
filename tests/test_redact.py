"""Secrets in DSNs and URLs are masked wherever text is shown to people."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.redact import MASK, redact, redact_url


@pytest.mark.parametrize(("text", "expected"), [
    ("redis://:s3cr3t@127.0.0.1:6379/0", "redis://:<secret>@127.0.0.1:6379/0"),
    ("rediss://default:p@ss@word@cache:6380/1", "rediss://default:<secret>@cache:6380/1"),
    ("postgresql://app:pw%40x@db:5432/app?sslmode=require&password=two",
     "postgresql://app:<secret>@db:5432/app?sslmode=require&password=<secret>"),
    ("host=db port=5432 password='a b c' user=app", "host=db port=5432 password='<secret>' user=app"),
    ("host=db password=abc123 user=app", "host=db password=<secret> user=app"),
    ("http://example.com:8080/health?token=abcd&x=1", "http://example.com:8080/health?token=<secret>&x=1"),
    ("amqp://guest:guest@localhost:5672/", "amqp://guest:<secret>@localhost:5672/"),
    ('{"password": "x y", "b": 1}', '{"password": "<secret>", "b": 1}'),
    ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "Authorization: Basic <secret>"),
])
def test_known_forms_are_masked(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize("text", [
    "redis://127.0.0.1:6379/0",
    "http://example.com:8080/path",
    "connection refused: 127.0.0.1:6379",
    "user@example.com wrote 1:2@3",
    "",
])
def test_text_without_secrets_is_unchanged(text: str) -> None:
    assert redact(text) == text


def test_user_name_stays_visible() -> None:
    assert redact_url("postgresql://reporting:hunter22@db/app") == "postgresql://reporting:<secret>@db/app"


def test_literal_secrets_are_masked_too() -> None:
    # A driver error may quote the bare password, which no pattern can recognise.
    assert redact("auth failed for 'hunter22'", ["hunter22"]) == f"auth failed for '{MASK}'"
    assert redact("a b", ["a"]) == "a b"  # too short to mask usefully


def test_redacting_twice_changes_nothing() -> None:
    once = redact("redis://:pw@h:1/0 password=x")
    assert redact(once) == once


_password = st.text(alphabet=string.ascii_letters + string.digits + "!$%^*()_+-=~.", min_size=4, max_size=40)


@given(user=st.text(alphabet=string.ascii_lowercase, max_size=10), password=_password,
       scheme=st.sampled_from(["redis", "rediss", "postgresql", "postgres", "amqp", "http", "https", "mysql"]),
       prefix=st.text(max_size=30), suffix=st.text(max_size=30))
def test_a_password_in_any_url_never_survives(user: str, password: str, scheme: str, prefix: str,
                                              suffix: str) -> None:
    url = f"{scheme}://{user}:{password}@db.internal:5432/app"
    out = redact(f"{prefix} {url} {suffix}")
    assert f":{password}@" not in out
    assert f"{scheme}://{user}:{MASK}@db.internal:5432/app" in out


@given(st.text())
def test_never_raises(text: str) -> None:
    assert isinstance(redact(text), str)
