"""Rules and dashboards, checked without a server: promtool, names against the metric reference,
the structure Grafana needs (no Grafana server can run here), and generated JSON up to date.

The end-to-end half (every panel and rule returns data from a real Prometheus scraping the
daemon) is tests/e2e/test_dashboards.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter import reference
from tests.support.binaries import require

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "rules"
RULE_FILES = [RULES / "recording.yml", RULES / "alerts.yml"]
RULE_TESTS = sorted((RULES / "tests").glob("*.yml"))
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
ALERTS_DOC = ROOT / "docs" / "alerts.md"

# Series the rules read that the user defines, not the exporter (rules/recording.yml, apm-objectives).
USER_DEFINED = {"apm:operation_latency_objective_seconds:override"}
# Grafana's built-in variables, and what the e2e test substitutes for them.
BUILTIN_VARIABLES = {"__rate_interval", "__interval", "__range"}


# --- reading rules and dashboards ------------------------------------------------------------

def rule_groups() -> list[dict[str, Any]]:
    return [g for path in RULE_FILES for g in yaml.safe_load(path.read_text())["groups"]]


def recording_rules() -> list[dict[str, Any]]:
    return [r for g in rule_groups() for r in g["rules"] if "record" in r]


def alert_rules() -> list[dict[str, Any]]:
    return [r for g in rule_groups() for r in g["rules"] if "alert" in r]


def dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in DASHBOARDS}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel that shows data (rows are layout only)."""
    for p in dashboard["panels"]:
        if p["type"] != "row":
            yield p


def panel_exprs() -> Iterator[tuple[str, str, str]]:
    """(dashboard file, panel title, expr) for every query of every panel."""
    for name, d in dashboards().items():
        for p in panels(d):
            for t in p["targets"]:
                yield name, p["title"], t["expr"]


def variable_queries() -> Iterator[tuple[str, str, str]]:
    for name, d in dashboards().items():
        for v in d["templating"]["list"]:
            if v["type"] == "query":
                yield name, v["name"], v["definition"]


# --- PromQL names --------------------------------------------------------------------------------

_STRINGS = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENT = re.compile(r"(?<![\w:.$])([A-Za-z_:][\w:]*+)(?!\s*\()")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left",
             "group_right", "inf", "nan", "atan2"}


def metric_names(expr: str) -> set[str]:
    """Metric names an expression reads: identifiers that are not functions, keywords, labels or durations."""
    text = _STRINGS.sub('""', expr)
    text = _MATCHERS.sub("", text)
    text = _RANGES.sub("", text)
    text = _GROUPING.sub("", text)
    return {n for n in _IDENT.findall(text) if n.lower() not in _KEYWORDS}


def test_metric_names_parser() -> None:
    expr = ('sum by (job, le) (rate(apm_x_bucket{job=~"$job", a="b c"}[$__rate_interval])) / on (job) '
            'group_left () (apm_y > bool 0.5) or vector(0) - time() + rec:a_b:rate5m offset 1h')
    assert metric_names(expr) == {"apm_x_bucket", "apm_y", "rec:a_b:rate5m"}


def known_names() -> set[str]:
    return reference.names() | {r["record"] for r in recording_rules()} | {"up"} | USER_DEFINED


def test_every_metric_name_in_rules_and_dashboards_exists_in_the_reference() -> None:
    known = known_names()
    used: dict[str, set[str]] = {}
    for rule in recording_rules() + alert_rules():
        for n in metric_names(rule["expr"]):
            used.setdefault(n, set()).add(rule.get("record") or rule["alert"])
    for name, title, expr in panel_exprs():
        for n in metric_names(expr):
            used.setdefault(n, set()).add(f"{name}: {title}")
    for name, var, query in variable_queries():
        m = re.fullmatch(r"label_values\(([\w:]+)(\{.*\})?, *(\w+)\)", query)
        assert m, f"{name}: variable {var}: {query!r} is not label_values(metric, label)"
        used.setdefault(m.group(1), set()).add(f"{name}: ${var}")
    unknown = {n: sorted(where) for n, where in used.items() if n not in known}
    assert not unknown, f"names not in exporter.reference.names() nor recorded: {unknown}"
    # And the guard has teeth: the core families are really used.
    for family in ("apm_operation_duration_seconds_bucket", "apm_cache_requests_total", "apm_pool_connections",
                   "apm_queue_depth", "apm_host_cpu_seconds_total", "apm_exporter_statsd_parse_errors_total"):
        assert family in used


def test_recording_rule_names_follow_level_metric_operations() -> None:
    for rule in recording_rules():
        level, metric, operations = (rule["record"].split(":") + ["", ""])[:3]
        assert rule["record"].count(":") == 2 and level and metric.startswith("apm_") and operations, rule["record"]


def test_every_recording_rule_is_read_by_a_dashboard_an_alert_or_another_rule() -> None:
    readers = [r["expr"] for r in recording_rules() + alert_rules()] + [e for _, _, e in panel_exprs()]
    read = set().union(*(metric_names(e) for e in readers))
    unused = {r["record"] for r in recording_rules()} - read
    assert not unused, f"recording rules nothing reads: {sorted(unused)}"


# --- promtool --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def promtool_bin() -> str:
    return require("promtool")


def test_promtool_check_rules_is_clean(promtool_bin: str) -> None:
    result = subprocess.run([promtool_bin, "check", "rules", *map(str, RULE_FILES)],
                            check=False, capture_output=True, text=True)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "SUCCESS" in out and "WARNING" not in out.upper(), out


def test_promtool_unit_tests_pass(promtool_bin: str) -> None:
    result = subprocess.run([promtool_bin, "test", "rules", *map(str, RULE_TESTS)],
                            check=False, capture_output=True, text=True, cwd=RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(RULE_TESTS), result.stdout


def test_every_alert_has_a_firing_and_a_not_firing_unit_test() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = {a["alert"] for a in alert_rules()}
    assert alerts - firing == set(), "alerts never tested firing"
    assert alerts - quiet == set(), "alerts never tested not firing"


def _anchor(heading: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_alert_has_summary_description_severity_and_a_runbook_section() -> None:
    anchors = {_anchor(line.lstrip("#")) for line in ALERTS_DOC.read_text().splitlines() if line.startswith("#")}
    for alert in alert_rules():
        name, ann = alert["alert"], alert.get("annotations", {})
        assert ann.get("summary") and ann.get("description"), name
        assert alert.get("labels", {}).get("severity") in ("critical", "warning"), name
        assert alert.get("for"), f"{name}: no `for`, one bad evaluation would page"
        url = ann.get("runbook_url", "")
        assert url.endswith(f"docs/alerts.md#{name.lower()}"), (name, url)
        assert name.lower() in anchors, f"docs/alerts.md has no section for {name}"
        section = ALERTS_DOC.read_text().split(f"## {name}", 1)[1].split("\n## ", 1)[0]
        for part in ("Meaning", "Impact", "Diagnosis", "Action"):
            assert f"**{part}.**" in section, f"docs/alerts.md {name}: no {part}"


# --- dashboards --------------------------------------------------------------------------------

def test_generated_dashboards_are_up_to_date() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "grafana" / "generate.py"), "--check"],
                            check=False, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_dashboards_cover_the_issue_list() -> None:
    assert {d["uid"] for d in dashboards().values()} == {
        "apm-overview", "apm-caches", "apm-pools", "apm-queues", "apm-host", "apm-exporter"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_structure(path: Path) -> None:
    d = json.loads(path.read_text())
    assert d["schemaVersion"] == 39 and d["uid"] and d["title"] and "apm" in d["tags"]
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert {"job", "instance"} <= set(variables)
    for v in variables.values():
        if v["type"] == "query":
            assert v["datasource"]["uid"] == "${datasource}" and v["multi"] and v["includeAll"], v["name"]
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for p in d["panels"]:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
    for p in panels(d):
        where = f"{path.name}: {p['title']}"
        assert p["type"] in ("timeseries", "stat", "table"), where
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, where
        assert len(p["description"]) > 20, where
        defaults = p["fieldConfig"]["defaults"]
        assert defaults.get("unit"), where
        steps = defaults["thresholds"]["steps"]
        assert steps[0]["value"] is None and all(s["value"] is not None for s in steps[1:]), where
        assert p["targets"], where
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), where
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}" and t["expr"].strip(), where
            for var in re.findall(r"\$(\w+)", t["expr"]):
                assert var in variables or var in BUILTIN_VARIABLES, f"{where}: ${var} is not defined"
    # Each label variable is used by the dashboard's panels.
    exprs = " ".join(t["expr"] for p in panels(d) for t in p["targets"])
    for name in variables:
        if name != "datasource":
            assert f"${name}" in exprs, f"{path.name}: variable ${name} is never used"


def test_provisioning_files_point_grafana_at_prometheus_and_the_dashboards() -> None:
    provisioning = ROOT / "grafana" / "provisioning"
    sources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    assert sources["apiVersion"] == 1
    assert [(d["type"], d["access"]) for d in sources["datasources"]] == [("prometheus", "proxy")]
    providers = yaml.safe_load((provisioning / "dashboards" / "apm.yml").read_text())
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["folder"] == "APM" and provider["options"]["path"]
