"""The delay between attempts on a failing probe target, on an injectable clock.

After a failure the scrape job does not touch the target again for an increasing
delay and reports `BackoffError` at once instead, which the scraper shows as
`up 0` without a connect attempt per scrape against a dead server. The clock is
a parameter so tests step through the delays instead of sleeping through them.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from exporter.collectors import ProbeError

BACKOFF_INITIAL = 1.0
BACKOFF_MAX = 60.0


class BackoffError(ProbeError):
    """Raised instead of contacting a target that failed a moment ago."""


class Backoff:
    """Exponential delay between attempts on a failing target: 1s, 2s, 4s … up to a minute.

    Success resets it, so a target that comes back is read on the first attempt
    after the current delay.
    """

    def __init__(self, initial: float = BACKOFF_INITIAL, maximum: float = BACKOFF_MAX,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.initial = initial
        self.maximum = maximum
        self._clock = clock
        self._delay = 0.0
        self._until = 0.0
        self._reason = ""

    def check(self) -> None:
        """Raise BackoffError while the delay after the last failure has not passed."""
        left = self._until - self._clock()
        if left > 0:
            raise BackoffError(f"backoff: next attempt in {left:.1f}s after: {self._reason}")

    def failed(self, reason: str) -> None:
        self._delay = self.initial if self._delay == 0 else min(self._delay * 2, self.maximum)
        self._until = self._clock() + self._delay
        self._reason = reason

    def succeeded(self) -> None:
        self._delay = 0.0
        self._until = 0.0
        self._reason = ""

    @property
    def delay(self) -> float:
        """The delay applied after the last failure (0 when the last attempt succeeded)."""
        return self._delay
