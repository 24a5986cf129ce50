"""Log a failure once when it starts and once when it ends, not once per scrape.

A collector runs every scrape; a dead target or an unreadable file would
otherwise write the same warning every 15 seconds. The scraper (per job), the
host collector (per section), the SQL probe (per query) and the process
collector (per pidfile) keep one of these each, keyed by what can fail.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterable

from exporter.redact import redact


class StateLog:
    """What is failing now, with a log line at each change of state.

    `err` is masked with `secrets` before it is logged: a driver's error may quote them.
    A `recovered` message of None leaves recoveries unlogged.
    """

    def __init__(self, logger: logging.Logger, failed: str, recovered: str | None,
                 secrets: Iterable[str] = ()) -> None:
        self._log = logger
        self._failed_message = failed
        self._recovered_message = recovered
        self._secrets = list(secrets)
        self._failing: set[Hashable] = set()

    def failing(self, key: Hashable) -> bool:
        return key in self._failing

    def failed(self, key: Hashable, err: str, **extra: object) -> None:
        if key not in self._failing:
            self._failing.add(key)
            self._log.warning(self._failed_message, extra={**extra, "err": redact(err, self._secrets)})

    def ok(self, key: Hashable, **extra: object) -> None:
        if key in self._failing:
            self._failing.discard(key)
            if self._recovered_message is not None:
                self._log.info(self._recovered_message, extra=extra)
