"""Config loading: every problem with its file:line and path, env interpolation, the schema."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from exporter import config
from exporter.config import ConfigError
from tests.support.daemon import executable

ROOT = Path(__file__).resolve().parent.parent


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        config.parse(text, "c.yaml", env or {})
    return info.value.problems


def test_empty_file_gives_the_defaults() -> None:
    cfg = config.parse("", "c.yaml", {})
    assert cfg.namespace == "apm"
    assert cfg.web.listen_address == ":9725"
    assert cfg.collectors.host.enabled


def test_every_problem_is_reported_with_line_and_path() -> None:
    text = (
        "web:\n"
        "  listen_address: nowhere\n"       # 2
        "collectors:\n"
        "  host:\n"
        "    enabled: perhaps\n"            # 5
        "    timeout: -3s\n"                # 6
        "  hots: {}\n"                      # 7
        "namespace: 9bad\n"                 # 8
    )
    found = problems(text)
    assert len(found) == 5, found
    assert any(p.startswith("c.yaml:2: web.listen_address: invalid address") for p in found)
    assert any(p.startswith("c.yaml:5: collectors.host.enabled:") for p in found)
    assert any(p.startswith("c.yaml:6: collectors.host.timeout:") for p in found)
    assert any(p.startswith("c.yaml:7: collectors.hots: unknown key") for p in found)
    assert any(p.startswith("c.yaml:8: namespace:") for p in found)


def test_yaml_syntax_error_names_the_line() -> None:
    found = problems("web:\n  listen_address: [unclosed\n")
    assert len(found) == 1 and found[0].startswith("c.yaml:3: invalid YAML") or found[0].startswith("c.yaml:2")


def test_duplicate_keys_are_errors() -> None:
    found = problems("web:\n  telemetry_path: /a\n  telemetry_path: /b\n")
    assert found == ["c.yaml:3: web.telemetry_path: duplicate key"]


def test_env_interpolation_and_missing_variables() -> None:
    cfg = config.parse("web:\n  telemetry_path: /${SUB}/${MISSING:-m}\n", "c.yaml", {"SUB": "x"})
    assert cfg.web.telemetry_path == "/x/m"
    found = problems("web:\n  telemetry_path: /${NOPE}\n")
    assert found == ["c.yaml:2: web.telemetry_path: environment variable NOPE is not set"]


def test_top_level_must_be_a_mapping() -> None:
    assert problems("- a\n- b\n")[0].startswith("c.yaml:1:")


def test_repository_config_is_valid() -> None:
    config.load(ROOT / "config.yaml")


def test_shipped_json_schema_is_generated_from_the_code() -> None:
    shipped = (ROOT / "docs" / "config.schema.json").read_text()
    assert shipped == config.json_schema(), "regenerate: apm-exporter schema > docs/config.schema.json"
    schema = json.loads(shipped)
    assert {"web", "collectors", "probes", "statsd", "namespace"} <= set(schema["properties"])


def test_check_config_cli(tmp_path: Path) -> None:
    good = subprocess.run([*executable(), "check-config", str(ROOT / "config.yaml")], capture_output=True, text=True)
    assert good.returncode == 0, good.stderr
    bad_file = tmp_path / "bad.yaml"
    bad_file.write_text("collectors:\n  host:\n    enabled: perhaps\n  nope: 1\n")
    bad = subprocess.run([*executable(), "check-config", str(bad_file)], capture_output=True, text=True)
    assert bad.returncode == 1
    assert f"{bad_file}:3: collectors.host.enabled" in bad.stderr
    assert f"{bad_file}:4: collectors.nope: unknown key" in bad.stderr
