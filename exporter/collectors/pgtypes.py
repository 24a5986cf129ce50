"""PostgreSQL's text output decoded into the Python values psycopg gives for the same types.

The probes read text-format rows (simple queries have no binary format); what
their code and the SQL probe's users expect is psycopg's types: a bool is a
bool (not the truthy "f"), a count an int, numeric a Decimal, a timestamp a
datetime (its label reads as psycopg's did), an interval a timedelta. The
session asks for DateStyle ISO, so dates parse as ISO 8601; the interval parser
reads the default IntervalStyle (postgres). A type without a decoder here
(text, name, uuid, inet, arrays, bytea, …) stays the server's text, and so does
a value a decoder cannot read (`infinity`, a year beyond 9999): a label then
shows what psql shows rather than failing the query.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

Decode = Callable[[str], Any]

_INTERVAL = re.compile(
    r"^(?:([+-]?\d+) years? ?)?(?:([+-]?\d+) mons? ?)?(?:([+-]?\d+) days? ?)?"
    r"(?:([+-])?(\d+):(\d\d):(\d\d(?:\.\d+)?))?$")


def _bool(text: str) -> bool:
    return text == "t"


def _interval(text: str) -> timedelta:
    """`1 year 2 mons 3 days 04:05:06.5`: a year is 365 days and a month 30, as psycopg counts them."""
    match = _INTERVAL.match(text)
    if match is None or not text:
        raise ValueError(text)
    years, months, days, sign, hours, minutes, seconds = match.groups()
    clock = timedelta(hours=int(hours or 0), minutes=int(minutes or 0), seconds=float(seconds or 0))
    return timedelta(days=int(years or 0) * 365 + int(months or 0) * 30 + int(days or 0)) + (
        -clock if sign == "-" else clock)


def _lenient(decode: Decode) -> Decode:
    def read(text: str) -> Any:
        try:
            return decode(text)
        except ValueError:
            return text
    return read


_DECODERS: dict[int, Decode] = {
    16: _bool,  # bool
    20: int, 21: int, 23: int, 26: int, 28: int,  # int8, int2, int4, oid, xid
    700: float, 701: float,  # float4, float8 (NaN and ±Infinity read as Python's)
    1700: Decimal,  # numeric
    114: json.loads, 3802: json.loads,  # json, jsonb
    1082: _lenient(date.fromisoformat),
    1083: _lenient(time.fromisoformat), 1266: _lenient(time.fromisoformat),  # time, timetz
    1114: _lenient(datetime.fromisoformat), 1184: _lenient(datetime.fromisoformat),  # timestamp, timestamptz
    1186: _lenient(_interval),
}


def _text(text: str) -> str:
    return text


def decoder(oid: int) -> Decode:
    """The decoder of a column's type; the text itself for a type without one."""
    return _DECODERS.get(oid, _text)
