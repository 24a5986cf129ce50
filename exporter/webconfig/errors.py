"""The web config's one exception, apart so that the daemon can catch it without loading the parser."""

from __future__ import annotations


class WebConfigError(ValueError):
    """The web config file cannot be used; the message lists every problem found."""
