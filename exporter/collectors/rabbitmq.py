"""RabbitMQ: queue depth, consumers and message counters from the management API.

One GET of /api/queues per collect (the `rabbitmq_management` plugin, port 15672 by
default), asking only for the columns used. Per queue (label `queue`: its name, or
`<vhost>/<name>` outside the default vhost `/`):

- queue_depth: messages_ready, the messages waiting for a consumer (the family
  every other queue source fills);
- queue_unacknowledged: delivered to a consumer, not yet acknowledged;
- queue_consumers: consumers attached;
- queue_messages_published_total, _delivered_total, _acknowledged_total,
  _redelivered_total: message_stats counters, so rates come from rate() rather than
  the management API's own smoothed `*_details.rate`.

RabbitMQ refreshes these figures every `collect_statistics_interval` (5 s by
default), so a scrape sees them up to that old. Written on asyncio streams with
h11, like the HTTP probe: a timed-out collect leaves no thread behind.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import ssl
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from exporter import __version__, families
from exporter.collectors import BaseProbe, ProbeError
from exporter.collectors.configs.rabbitmq import Config
from exporter.collectors.http import tls_context
from exporter.model import Family
from exporter.redact import dsn_secrets

_CHUNK = 65536
# A reply bigger than this is not a queue list the probe should parse (about 30,000 queues).
_MAX_BODY = 32 * 1024 * 1024
_COLUMNS = ("name,vhost,messages_ready,messages_unacknowledged,consumers,message_stats.publish,"
            "message_stats.deliver_get,message_stats.ack,message_stats.redeliver")


class RabbitMQCollector(BaseProbe):
    """A fresh connection per collect, as the HTTP probe: reset() has nothing to drop."""

    def __init__(self, config: Config) -> None:
        self.config = config
        parts = urlsplit(config.url)
        self._tls = parts.scheme == "https"
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (443 if self._tls else 80)
        self._base = parts.path.rstrip("/")
        self.secrets = dsn_secrets(config.url)
        user, password = unquote(parts.username or "guest"), unquote(parts.password or "guest")
        self._auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self._include = re.compile(config.include)
        self._ssl = tls_context(config.ca_file, config.insecure_skip_verify) if self._tls else None

    def describe(self) -> str:
        return f"rabbitmq {self.config.url}"

    def address(self) -> tuple[str, int] | None:
        return self._host, self._port

    async def collect(self) -> list[Family]:
        vhost = f"/{quote(self.config.vhost, safe='')}" if self.config.vhost is not None else ""
        queues = await self._get(f"{self._base}/api/queues{vhost}?columns={_COLUMNS}")
        if not isinstance(queues, list):
            raise ProbeError(f"/api/queues answered with a {type(queues).__name__}, not a list of queues")
        return queue_families([q for q in queues if isinstance(q, dict)
                               and self._include.fullmatch(str(q.get("name", "")))][: self.config.max_queues])

    async def _get(self, target: str) -> Any:
        import h11

        reader, writer = await asyncio.open_connection(
            self._host, self._port, ssl=self._ssl, server_hostname=self._host if self._tls else None, limit=_CHUNK)
        try:
            conn = h11.Connection(h11.CLIENT)
            writer.write(conn.send(h11.Request(method="GET", target=target, headers=[
                ("Host", f"{self._host}:{self._port}"), ("User-Agent", f"apm-exporter/{__version__}"),
                ("Accept", "application/json"), ("Authorization", self._auth), ("Connection", "close")]))
                or b"")
            writer.write(conn.send(h11.EndOfMessage()) or b"")
            await writer.drain()
            status, body = 0, bytearray()
            while True:
                event: Any = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await reader.read(_CHUNK))
                elif isinstance(event, h11.Response):
                    status = event.status_code
                elif isinstance(event, h11.Data):
                    body += event.data
                    if len(body) > _MAX_BODY:
                        raise ProbeError(f"the reply to {target.split('?')[0]} is over {_MAX_BODY} bytes")
                elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                    break
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (OSError, ssl.SSLError):
                pass
        if status != 200:
            raise ProbeError(f"GET {target.split('?')[0]} answered {status}: {bytes(body[:120])!r}")
        try:
            return json.loads(body)
        except ValueError as err:
            raise ProbeError(f"GET {target.split('?')[0]}: not JSON ({err})") from None


def _label(queue: dict[str, Any]) -> str:
    vhost, name = str(queue.get("vhost", "/")), str(queue.get("name", ""))
    return name if vhost == "/" else f"{vhost}/{name}"


def queue_families(queues: list[dict[str, Any]]) -> list[Family]:
    def n(value: Any) -> float:
        return float(value) if isinstance(value, (int, float)) else 0.0

    rows = [((_label(q),), q, q.get("message_stats") or {}) for q in queues]
    return [
        families.QUEUE_DEPTH.family((label, n(q.get("messages_ready"))) for label, q, _ in rows),
        families.QUEUE_UNACKNOWLEDGED.family((label, n(q.get("messages_unacknowledged"))) for label, q, _ in rows),
        families.QUEUE_CONSUMERS.family((label, n(q.get("consumers"))) for label, q, _ in rows),
        # message_stats is absent until a queue has seen a message: its counters are then 0.
        families.QUEUE_PUBLISHED.family((label, n(s.get("publish"))) for label, _, s in rows),
        families.QUEUE_DELIVERED.family((label, n(s.get("deliver_get"))) for label, _, s in rows),
        families.QUEUE_ACKNOWLEDGED.family((label, n(s.get("ack"))) for label, _, s in rows),
        families.QUEUE_REDELIVERED.family((label, n(s.get("redeliver"))) for label, _, s in rows),
    ]
