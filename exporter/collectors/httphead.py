"""A probe's response head read without h11, when it is plain and arrives whole.

h11's state machine, event objects and per-header checks cost a plain HTTP probe about
110 us of its ~450 us of CPU per read (building the request 45 us, parsing a 2 KB answer
65 us). What a health endpoint answers is nearly always the same shape: one head in the
first read, a 2xx-5xx status, Content-Length or a body to the close. `parse_head` reads
exactly that, with h11's own grammar for the status line and each field, and returns None
for anything else (a 1xx, Transfer-Encoding, bare LF line ends, a folded or malformed line,
repeated Content-Length, a head past h11's 16 KiB, a CONNECT): the probe then hands
the bytes to h11, so whatever is unusual is still read, or refused, exactly as h11 reads it.
"""

from __future__ import annotations

import re
from typing import NamedTuple

# h11's limit on a head (h11._connection.DEFAULT_MAX_INCOMPLETE_EVENT_SIZE).
MAX_HEAD = 16 * 1024
# h11/_abnf.py: status_line, with the versions and codes this path takes (others go to h11).
_STATUS = re.compile(rb"HTTP/(1\.[01]) ([2-5][0-9][0-9])(?: [ \t!-~\x80-\xff]*)?")
# h11/_abnf.py: header_field = field_name ":" OWS field_value OWS.
_FIELD = re.compile(rb"([-!#$%&'*+.^_`|~0-9A-Za-z]+):[ \t]*"
                    rb"((?:[!-~\x80-\xff]+(?:[ \t]+[!-~\x80-\xff]+)*)?)[ \t]*")
_DIGITS = re.compile(rb"[0-9]+")


class Head(NamedTuple):
    """What the probe reads of a response head."""

    status: int
    http_version: str
    location: str | None
    length: int | None  # body bytes to read; None: to the close of the connection
    end: int  # where the body starts in the data


def parse_head(data: bytes, method: str) -> Head | None:
    """The head at the start of `data` if it is complete and plain, else None (read it with h11)."""
    end = data.find(b"\r\n\r\n", 0, MAX_HEAD + 4)
    if end < 0 or method == "CONNECT":
        return None
    lines = data[:end].split(b"\r\n")
    status = _STATUS.fullmatch(lines[0])
    if status is None:
        return None
    location: str | None = None
    length: int | None = None
    seen_length = False
    for line in lines[1:]:
        field = _FIELD.fullmatch(line)
        if field is None:
            return None
        name = field[1].lower()
        if name == b"content-length":
            if seen_length or len(field[2]) > 20 or not _DIGITS.fullmatch(field[2]):  # h11's 20 digits
                return None
            seen_length = True
            length = int(field[2])
        elif name == b"transfer-encoding":
            return None
        elif name == b"location":
            location = field[2].decode("latin-1")  # the last one wins, as the h11 path reads them
    code = int(status[2])
    if method == "HEAD" or code in (204, 304):
        length = 0  # no body, whatever the head says (RFC 9112 6.3; h11 reads it so)
    return Head(code, status[1].decode(), location, length, end + 4)
