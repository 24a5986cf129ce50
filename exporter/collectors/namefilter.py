"""Which devices, mounts and interfaces a collector reports: node_exporter's include/exclude rule."""

from __future__ import annotations

import re


def compile_filter(include: str | None, exclude: str | None) -> NameFilter:
    return NameFilter(re.compile(include) if include else None, re.compile(exclude) if exclude else None)


class NameFilter:
    """include/exclude regexes as node_exporter applies them: unanchored search, exclude wins."""

    __slots__ = ("_cache", "exclude", "include")

    def __init__(self, include: re.Pattern[str] | None, exclude: re.Pattern[str] | None) -> None:
        self.include = include
        self.exclude = exclude
        # Device and mount names repeat every scrape; decide each once.
        self._cache: dict[str, bool] = {}

    def __call__(self, name: str) -> bool:
        keep = self._cache.get(name)
        if keep is None:
            keep = (self.include is None or self.include.search(name) is not None) and (
                self.exclude is None or self.exclude.search(name) is None)
            if len(self._cache) < 4096:
                self._cache[name] = keep
        return keep
