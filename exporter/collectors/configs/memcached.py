"""The memcached probe's target section."""

from __future__ import annotations

from exporter.schema import Address, Target


class Config(Target):
    """A memcached server at host:port."""

    address: Address = "127.0.0.1:11211"
