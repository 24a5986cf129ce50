"""A daemon loads the code of the probes it has targets for, and no other probe's.

Every probe's config section is part of the config model, but its wire code and what
it alone needs are not: importing all of them cost the default daemon about 2 MiB
of its 40 MiB budget. Each daemon here is started as a user starts it (cli.main on
the repository's config.yaml, StatsD on a free port), scraped, and asked which of
the collectors' modules it has loaded.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import yaml

from exporter.collectors import REGISTRY, Lazy
from tests.support.daemon import loaded_after_gets
from tests.support.net import free_port

ROOT = Path(__file__).resolve().parent.parent
# The protocol clients and parsers the probes share.
_SHARED = {f"exporter.collectors.{name}" for name in ("resp", "pgwire", "pgsession", "pgtypes", "httphead", "streams")}


def _probe_code() -> dict[str, str]:
    """Each probe's implementation module, by section name."""
    return {name: entry.factory.module for name, entry in REGISTRY.items() if isinstance(entry.factory, Lazy)}


def _loaded(path: Path, probes: dict[str, Any]) -> set[str]:
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["statsd"]["listeners"] = [f"udp://127.0.0.1:{free_port(socket.SOCK_DGRAM)}"]
    if probes:
        config["probes"] = probes
    path.write_text(yaml.safe_dump(config))
    return set(loaded_after_gets(path, "exporter.collectors", ["/metrics"]))


def test_every_probe_is_named_by_its_module() -> None:
    # What the two tests below rely on: a probe left out of this would be loaded unchecked.
    assert set(_probe_code()) == {name for name, entry in REGISTRY.items() if entry.targets}


def test_the_shipped_config_loads_no_probe_code(tmp_path: Path) -> None:
    loaded = _loaded(tmp_path / "config.yaml", {})
    assert loaded & (set(_probe_code().values()) | _SHARED) == set()


def test_a_redis_target_loads_the_redis_probe_and_no_other(tmp_path: Path) -> None:
    # The target need not answer: the probe's code is loaded when its collector is built.
    default = _loaded(tmp_path / "default.yaml", {})
    loaded = _loaded(tmp_path / "redis.yaml", {"redis": [{"name": "cache", "url": f"redis://127.0.0.1:{free_port()}/0"}]})
    assert loaded & set(_probe_code().values()) == {"exporter.collectors.redis"}
    # What the redis probe alone brings: its module and its RESP client (with that client's stream helper).
    assert loaded - default == {"exporter.collectors.redis", "exporter.collectors.resp", "exporter.collectors.streams"}
