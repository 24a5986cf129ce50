"""Name, unit and label translation, checked against what Prometheus's OTLP translation produces."""

from __future__ import annotations

import pytest

from exporter.otlp.names import BadName, label_name, metric_name


@pytest.mark.parametrize(("name", "unit", "counter", "gauge", "expected"), [
    ("http.server.request.duration", "s", False, False, "http_server_request_duration_seconds"),
    ("system.memory.usage", "By", False, True, "system_memory_usage_bytes"),
    ("requests", "1", True, False, "requests_total"),
    ("requests.total", "", True, False, "requests_total"),
    ("cpu.utilization", "1", False, True, "cpu_utilization_ratio"),
    ("cpu.utilization.ratio", "1", False, True, "cpu_utilization_ratio"),
    ("db.client.connections.usage", "{connection}", False, False, "db_client_connections_usage"),
    ("throughput", "By/s", False, True, "throughput_bytes_per_second"),
    ("latency_seconds", "s", False, False, "latency_seconds"),
    ("2xx.responses", "", True, False, "_2xx_responses_total"),
    ("queue--size", "", False, True, "queue_size"),
    ("temperature", "Cel", False, True, "temperature_celsius"),
    ("odd", "widgets", False, True, "odd_widgets"),
])
def test_metric_names_follow_prometheus(name: str, unit: str, counter: bool, gauge: bool, expected: str) -> None:
    assert metric_name(name, unit, counter=counter, ratio_gauge=gauge)[0] == expected


def test_unit_word_is_reported_only_when_the_name_ends_with_it() -> None:
    assert metric_name("rpc.duration", "ms", counter=False, ratio_gauge=False) == ("rpc_duration_milliseconds",
                                                                                     "milliseconds")
    assert metric_name("bytes.sent", "By", counter=True, ratio_gauge=False) == ("bytes_sent_total", "")


@pytest.mark.parametrize("name", ["", "...", "é"])
def test_a_name_without_letters_or_digits_is_refused(name: str) -> None:
    with pytest.raises(BadName) as err:
        metric_name(name, "", counter=False, ratio_gauge=False)
    assert err.value.reason == "empty_name"


@pytest.mark.parametrize(("key", "expected"), [
    ("http.route", "http_route"), ("k8s.pod.name", "k8s_pod_name"), ("0day", "key_0day"),
    ("_private", "key_private"), ("__reserved", "key__reserved"), ("", ""), ("a-b c", "a_b_c"),
])
def test_attribute_keys_become_label_names_as_prometheus_does(key: str, expected: str) -> None:
    assert label_name(key) == expected
