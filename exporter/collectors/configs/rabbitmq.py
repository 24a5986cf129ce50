"""The RabbitMQ probe's target section: the management API's URL and which queues to export."""

from __future__ import annotations

from pydantic import Field

from exporter.schema import Regex, Target


class Config(Target):
    """A RabbitMQ management API: `url` is http(s)://[user:password@]host:15672 (default user guest)."""

    url: str = Field(default="http://guest:guest@127.0.0.1:15672", pattern=r"^https?://[^/?#]+")
    # Only queues of this vhost (default: every vhost the user may see).
    vhost: str | None = None
    # Only queues whose name matches (anchored at both ends).
    include: Regex = ".*"
    # The most queues exported; the rest are dropped (the series count stays bounded).
    max_queues: int = Field(default=500, ge=1, le=100_000)
    ca_file: str | None = None
    insecure_skip_verify: bool = False
