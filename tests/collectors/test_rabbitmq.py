"""RabbitMQ probe against a real RabbitMQ with the management plugin, fed by a real AMQP client (pika)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from exporter.collectors.rabbitmq import Config, RabbitMQCollector
from tests.collectors.helpers import collect_once, failure, run
from tests.support.servers import BlackHole, RabbitMQServer


def collector(url: str, **extra: object) -> RabbitMQCollector:
    return RabbitMQCollector(Config.model_validate({"name": "broker", "url": url, **extra}))


@pytest.fixture
def amqp(rabbitmq_server: RabbitMQServer) -> Iterator[Any]:
    """A channel on a fresh connection; the queues a test declares are deleted after it."""
    conn, channel = rabbitmq_server.channel()
    declared: list[str] = []
    channel.declared = declared
    yield channel
    cleanup = conn.channel()
    for name in declared:
        cleanup.queue_delete(name)
    conn.close()


def wait_until(rabbitmq: RabbitMQServer, queue: str, done: Callable[[dict[str, Any]], bool]) -> None:
    """The management API's figures lag by its statistics interval: poll until they show the test's work."""
    deadline = time.monotonic() + 30
    while True:
        row = next((q for q in rabbitmq.api("/api/queues") if q["name"] == queue), {})
        if done(row):
            return
        assert time.monotonic() < deadline, f"queue {queue} never showed the expected figures: {row}"
        time.sleep(0.1)


def test_depth_unacknowledged_consumers_and_message_counters(rabbitmq_server: RabbitMQServer, amqp: Any) -> None:
    for name in ("orders", "idle"):
        amqp.queue_declare(name)
        amqp.declared.append(name)
    for _ in range(7):
        amqp.basic_publish("", "orders", b"order")
    amqp.basic_qos(prefetch_count=2)  # the consumer holds two, unacknowledged; five stay ready
    amqp.basic_consume("orders", lambda *args: None, auto_ack=False)
    amqp.connection.process_data_events(0.5)
    wait_until(rabbitmq_server, "orders", lambda q: q.get("messages_unacknowledged") == 2
               and (q.get("message_stats") or {}).get("publish") == 7)

    got = run(lambda: collect_once(collector(rabbitmq_server.url)))
    assert got["queue_depth"][("orders",)] == 5
    assert got["queue_unacknowledged"][("orders",)] == 2
    assert got["queue_consumers"][("orders",)] == 1
    assert got["queue_messages_published_total"][("orders",)] == 7
    assert got["queue_messages_delivered_total"][("orders",)] == 2
    assert got["queue_messages_acknowledged_total"][("orders",)] == 0
    # A queue that never saw a message: zeros, not absent series.
    assert got["queue_depth"][("idle",)] == 0 and got["queue_messages_published_total"][("idle",)] == 0
    assert got["queue_consumers"][("idle",)] == 0


def test_acknowledged_and_redelivered(rabbitmq_server: RabbitMQServer, amqp: Any) -> None:
    amqp.queue_declare("retries")
    amqp.declared.append("retries")
    for _ in range(3):
        amqp.basic_publish("", "retries", b"job")
    first = amqp.basic_get("retries")
    amqp.basic_ack(first[0].delivery_tag)
    second = amqp.basic_get("retries")
    amqp.basic_nack(second[0].delivery_tag, requeue=True)  # back in the queue, redelivered next time
    again = amqp.basic_get("retries")
    assert again[0].redelivered
    amqp.basic_ack(again[0].delivery_tag)
    wait_until(rabbitmq_server, "retries", lambda q: (q.get("message_stats") or {}).get("ack") == 2
               and q.get("messages_ready") == 1)

    got = run(lambda: collect_once(collector(rabbitmq_server.url, include="retr.*")))
    assert set(got["queue_depth"]) == {("retries",)}  # `include` keeps the others out
    assert got["queue_depth"][("retries",)] == 1
    assert got["queue_messages_delivered_total"][("retries",)] == 3
    assert got["queue_messages_acknowledged_total"][("retries",)] == 2
    assert got["queue_messages_redelivered_total"][("retries",)] == 1


def test_wrong_password_is_an_error_with_the_password_masked(rabbitmq_server: RabbitMQServer) -> None:
    message = run(lambda: failure(collector(f"http://guest:n0t-the-pw@127.0.0.1:{rabbitmq_server.api_port}")))
    assert "401" in message and "n0t-the-pw" not in message


def test_a_silent_socket_times_out(black_hole: BlackHole) -> None:
    assert "TimeoutError" in run(lambda: failure(collector(f"http://u:pw@127.0.0.1:{black_hole.port}", timeout="300ms")))
