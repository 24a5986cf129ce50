"""Load the YAML config into typed, frozen sections; report every problem as path:line.

The collectors' and probes' sections are assembled from collectors.REGISTRY, so a
new collector's options are validated, documented in the JSON Schema and
reloadable without touching this file.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, create_model, field_validator

from exporter import yamlsource
from exporter.collectors import REGISTRY
from exporter.otlp.config import OtlpConfig
from exporter.schema import Address, Section, unique_names
from exporter.statsd.config import StatsdConfig
from exporter.yamlsource import Location, dotted

DEFAULT_LISTEN_ADDRESS = ":9725"
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(Exception):
    """Every problem found in a config file, each as 'file:line: path: message'."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: {len(problems)} problem(s) in the configuration")
        self.source = source
        self.problems = problems

    def __str__(self) -> str:
        return "\n".join(self.problems)


class WebSection(Section):
    # ":9725" listens on every interface, as other exporters do.
    listen_address: Address = DEFAULT_LISTEN_ADDRESS
    telemetry_path: str = Field("/metrics", pattern=r"^/[^?#\s]*$")
    # Scrapes served at once; more wait, so a flood of clients cannot pile up work.
    max_concurrent_scrapes: int = Field(4, ge=1, le=256)


def _collector_sections() -> tuple[type[Section], type[Section]]:
    plain = {name: (e.config, e.config()) for name, e in REGISTRY.items() if not e.targets}
    probes: dict[str, Any] = {name: (list[e.config], []) for name, e in REGISTRY.items()  # type: ignore[name-defined]
                              if e.targets}
    validators = {"_unique_names": field_validator(*probes, check_fields=False)(_unique_names)} if probes else {}
    collectors = create_model("Collectors", __base__=Section, **plain)  # type: ignore[call-overload]
    targets = create_model("Probes", __base__=Section, __validators__=validators, **probes)  # type: ignore[call-overload]
    return collectors, targets


def _unique_names(cls: Any, targets: list[Any]) -> list[Any]:
    return unique_names(targets, "target")


Collectors, Probes = _collector_sections()


class Config(Section):
    # Prefix of every built-in family; dashboards and rules assume the default.
    namespace: str = Field("apm", pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")
    web: WebSection = WebSection()  # type: ignore[call-arg]  # pydantic fills the defaults
    collectors: Collectors = Collectors()  # type: ignore[valid-type]
    probes: Probes = Probes()  # type: ignore[valid-type]
    statsd: StatsdConfig = StatsdConfig()
    otlp: OtlpConfig = OtlpConfig()


def load(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(source, [f"{source}: cannot read: {err}"]) from None
    return parse(text, source, os.environ if env is None else env)


def parse(text: str, source: str = "<config>", env: Mapping[str, str] | None = None) -> Config:
    env = os.environ if env is None else env

    def interpolate(text: str, loc: Location, line: int, problems: list[str]) -> str:
        """`${NAME}` and `${NAME:-default}` from the environment; an unset NAME is a problem."""
        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            problems.append(f"{source}:{line}: {dotted(loc)}: environment variable {name} is not set")
            return ""

        return _ENV.sub(replace, text) if "${" in text else text

    try:
        doc = yamlsource.read(text, source, interpolate)
    except yamlsource.YAMLSyntaxError as err:
        raise ConfigError(source, [str(err)]) from None
    config = None
    try:
        config = Config.model_validate(doc.data)
    except ValidationError as err:
        doc.problems += doc.validation_problems(err, "unknown key (check the spelling; see docs/configuration.md)")
    if doc.problems:
        raise ConfigError(source, doc.problems)
    assert config is not None
    return config


def json_schema() -> str:
    schema = Config.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "apm-exporter configuration"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
