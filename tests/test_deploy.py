"""The deployment files are checked with the tools their users rely on.

- systemd: `systemd-analyze verify` and `systemd-analyze security --offline=true`
  (the exposure level must match the one docs/deploy.md states).
- Kubernetes: every rendered manifest against the Kubernetes 1.30 schemas
  (`kubernetes-validate --strict`), the ServiceMonitor, PodMonitor and PrometheusRule against
  the Prometheus Operator's CRD schemas (tests/fixtures/prometheus-operator-crds.yaml,
  tests/fixtures/prometheusrule-crd.yaml), the PrometheusRule in step with rules/, the
  monitors' relabelings applied by a real Prometheus (stable `instance` and `pod` labels),
  the pod security settings the docs promise, and the ConfigMaps' config files
  against the real config loader.
- kustomize: rendered here by a small Python renderer of the features our
  kustomizations use, cross-checked against `kubectl kustomize` when it is installed.
- Dockerfile: ENTRYPOINT and CMD against the real CLI's argument parser.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from exporter import cli, config
from tests.support.binaries import require
from tests.support.fleet import ConfiguredPrometheus, agent_config
from tests.support.net import free_port

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
UNIT = DEPLOY / "systemd" / "apm-exporter.service"
KUBERNETES_VERSION = "1.30.0"


# --- systemd -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def unit_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The unit with ExecStart pointing at a real apm-exporter, as after the documented install."""
    directory = tmp_path_factory.mktemp("systemd")
    launcher = directory / "apm-exporter"
    launcher.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m exporter \"$@\"\n")
    launcher.chmod(0o755)
    text = UNIT.read_text().replace("/opt/apm-exporter/bin/apm-exporter", str(launcher))
    copy_path = directory / UNIT.name
    copy_path.write_text(text)
    return copy_path


def test_unit_verifies_clean(unit_copy: Path) -> None:
    analyze = require("systemd-analyze")
    result = subprocess.run([analyze, "verify", str(unit_copy)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stdout + result.stderr


def security_exposure(unit: Path) -> tuple[float, str]:
    analyze = require("systemd-analyze")
    result = subprocess.run([analyze, "security", "--offline=true", "--no-pager", str(unit)],
                            capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d) (\w+)", result.stdout)
    assert match, result.stdout + result.stderr
    return float(match.group(1)), match.group(2)


def test_unit_exposure_is_ok_and_documented(unit_copy: Path) -> None:
    level, verdict = security_exposure(unit_copy)
    assert verdict in ("PERFECT", "SAFE", "OK"), (level, verdict)
    # docs/deploy.md states the figure; keep it true.
    assert f"exposure level **{level} {verdict}**" in (ROOT / "docs" / "deploy.md").read_text()


def test_unit_reload_and_secrets() -> None:
    text = UNIT.read_text()
    assert "ExecReload=/bin/kill -HUP $MAINPID" in text
    assert "EnvironmentFile=-/etc/default/apm-exporter" in text
    for option in ("NoNewPrivileges=yes", "CapabilityBoundingSet=\n", "ProtectSystem=strict", "DynamicUser=yes",
                   "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6", "MemoryDenyWriteExecute=yes"):
        assert option in text
    # The ExecStart flags are real flags of the CLI.
    exec_start = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    args = [a for a in shlex.split(exec_start.removeprefix("ExecStart="))[1:] if not a.startswith("$")]
    parsed = cli._run_parser().parse_args(args)
    assert parsed.config_file == "/etc/apm-exporter/config.yaml"


def test_environment_file_is_key_value_only() -> None:
    for number, line in enumerate((DEPLOY / "systemd" / "apm-exporter.env").read_text().splitlines(), 1):
        if line.strip() and not line.lstrip().startswith("#"):
            assert re.match(r"^[A-Z_][A-Z0-9_]*=", line), f"line {number}: {line!r}"


# --- kustomize, rendered in Python ----------------------------------------------------

_KNOWN_KEYS = {"apiVersion", "kind", "resources", "namespace", "labels", "configMapGenerator", "images"}
_WORKLOADS = {"Deployment", "DaemonSet", "StatefulSet", "Job"}


def _config_map_hash(data: dict[str, str]) -> str:
    """kustomize's name suffix: sha256 of the JSON of kind, name and data, first 10 hex, 5 letters remapped.

    kustomize v5 looks the name up with a path its YAML library does not split, so "name" is
    always "" in what it hashes; matched against `kubectl kustomize` in test_render_matches_kubectl.
    """
    encoded = json.dumps({"data": data, "kind": "ConfigMap", "name": ""}, sort_keys=True,
                         separators=(",", ":"), ensure_ascii=False)
    encoded = encoded.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return hashlib.sha256(encoded.encode()).hexdigest()[:10].translate(str.maketrans("013ae", "ghkmt"))


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    if doc["kind"] in _WORKLOADS:
        return doc["spec"]["template"]["spec"]
    return doc["spec"] if doc["kind"] == "Pod" else None


def render(directory: Path) -> list[dict[str, Any]]:
    """Build a kustomization the way kustomize does, for the subset of features we use."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - _KNOWN_KEYS
    assert not unknown, f"{directory}: the Python renderer does not implement {unknown}"
    docs: list[dict[str, Any]] = []
    for entry in kustomization.get("resources", []):
        path = directory / entry
        if path.is_dir():
            docs.extend(render(path))
        else:
            docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    renames: dict[str, str] = {}
    for generator in kustomization.get("configMapGenerator", []):
        data = {Path(f).name: (directory / f).read_text() for f in generator["files"]}
        name = f"{generator['name']}-{_config_map_hash(data)}"
        renames[generator["name"]] = name
        docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})
    for doc in docs:
        pod = _pod_spec(doc)
        if pod is None:
            continue
        for volume in pod.get("volumes", []):
            if "configMap" in volume and volume["configMap"]["name"] in renames:
                volume["configMap"]["name"] = renames[volume["configMap"]["name"]]
        for container in pod.get("containers", []) + pod.get("initContainers", []):
            for image in kustomization.get("images", []):
                repo, _, tag = container["image"].partition(":")
                if repo == image["name"]:
                    container["image"] = f"{image.get('newName', repo)}:{image.get('newTag', tag or 'latest')}"
    if "namespace" in kustomization:
        for doc in docs:
            doc["metadata"]["namespace"] = kustomization["namespace"]
    for label in kustomization.get("labels", []):
        pairs = label["pairs"]
        for doc in docs:
            doc["metadata"].setdefault("labels", {}).update(pairs)
            if not label.get("includeSelectors"):
                continue
            if doc["kind"] == "Service":
                doc["spec"].setdefault("selector", {}).update(pairs)
            elif doc["kind"] in _WORKLOADS:
                doc["spec"]["selector"].setdefault("matchLabels", {}).update(pairs)
                doc["spec"]["template"]["metadata"].setdefault("labels", {}).update(pairs)
    return docs


def key(doc: dict[str, Any]) -> tuple[str, str, str]:
    return doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"]


@pytest.fixture(scope="module")
def rendered() -> dict[tuple[str, str, str], dict[str, Any]]:
    docs = render(K8S)
    by_key = {key(d): d for d in docs}
    assert len(by_key) == len(docs), "two resources share kind, namespace and name"
    return by_key


def test_render_matches_kubectl(rendered: dict[tuple[str, str, str], dict[str, Any]]) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed; the Python render stands alone")
    result = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    theirs = {key(d): d for d in yaml.safe_load_all(result.stdout) if d}
    assert theirs == rendered


def test_render_has_every_piece(rendered: dict[tuple[str, str, str], dict[str, Any]]) -> None:
    kinds = sorted(k for k, _, _ in rendered)
    assert kinds == ["ConfigMap", "ConfigMap", "DaemonSet", "Deployment", "PodMonitor", "PrometheusRule",
                     "Service", "ServiceAccount", "ServiceMonitor"]


# --- validation against schemas -----------------------------------------------------------


def test_every_manifest_validates_against_kubernetes(rendered: dict[tuple[str, str, str], dict[str, Any]]) -> None:
    checked = 0
    for doc in rendered.values():
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        checked += 1
    assert checked == 6


def test_kubernetes_validate_cli_on_every_source_file() -> None:
    # The same check as a user would run it, on the files as written (before kustomize).
    tool = shutil.which("kubernetes-validate")
    if tool is None:
        pytest.skip("the kubernetes-validate script is not on PATH (the API test above covers the render)")
    files = [str(p) for p in sorted(K8S.rglob("*.yaml"))
             if p.name not in ("kustomization.yaml", "config.yaml")]
    result = subprocess.run([tool, "-k", KUBERNETES_VERSION, "--strict", *files],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    # The CRs are only warned about (no schema in the tool); everything else passed.
    for line in result.stdout.splitlines():
        assert line.startswith("INFO") or "monitoring.coreos.com" in line, line


def _strict(schema: Any) -> Any:
    """Reject unknown fields wherever the schema lists properties (kubectl --validate=strict)."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items() if k != "default"}
        if "properties" in schema and "additionalProperties" not in schema:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@pytest.fixture(scope="module")
def crd_schemas() -> dict[str, Any]:
    vendored = yaml.safe_load((ROOT / "tests" / "fixtures" / "prometheus-operator-crds.yaml").read_text())
    return {"ServiceMonitor": _strict(copy.deepcopy(vendored["servicemonitor"])),
            "PodMonitor": _strict(copy.deepcopy(vendored["podmonitor"]))}


def test_monitors_validate_against_the_operator_crds(rendered: dict[tuple[str, str, str], dict[str, Any]],
                                                     crd_schemas: dict[str, Any]) -> None:
    monitors = [d for d in rendered.values() if d["kind"] in ("ServiceMonitor", "PodMonitor")]
    assert sorted(d["kind"] for d in monitors) == ["PodMonitor", "ServiceMonitor"]
    for doc in monitors:
        jsonschema.validate(doc, crd_schemas[doc["kind"]])


def test_crd_schema_catches_a_typo(rendered: dict[tuple[str, str, str], dict[str, Any]],
                                   crd_schemas: dict[str, Any]) -> None:
    monitor = copy.deepcopy(next(d for d in rendered.values() if d["kind"] == "ServiceMonitor"))
    monitor["spec"]["endpoints"][0]["scrapeTimout"] = "10s"
    with pytest.raises(jsonschema.ValidationError, match="scrapeTimout"):
        jsonschema.validate(monitor, crd_schemas["ServiceMonitor"])
    monitor = copy.deepcopy(next(d for d in rendered.values() if d["kind"] == "ServiceMonitor"))
    monitor["spec"]["endpoints"][0]["interval"] = "30 seconds"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(monitor, crd_schemas["ServiceMonitor"])


# --- the PrometheusRule: rules/ for the Operator ------------------------------------------------


def test_prometheusrule_is_generated_from_rules() -> None:
    result = subprocess.run([sys.executable, str(K8S / "rules" / "generate.py"), "--check"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    rule = yaml.safe_load((K8S / "rules" / "prometheusrule.yaml").read_text())
    groups = [g for name in ("recording.yml", "alerts.yml")
              for g in yaml.safe_load((ROOT / "rules" / name).read_text())["groups"]]
    assert rule["spec"]["groups"] == groups


def test_prometheusrule_groups_pass_promtool(tmp_path: Path) -> None:
    promtool = require("promtool")
    rule = yaml.safe_load((K8S / "rules" / "prometheusrule.yaml").read_text())
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}, sort_keys=False))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def rule_schema() -> Any:
    vendored = yaml.safe_load((ROOT / "tests" / "fixtures" / "prometheusrule-crd.yaml").read_text())
    return _strict(vendored["prometheusrule"])


def test_prometheusrule_validates_against_the_operator_crd(
        rendered: dict[tuple[str, str, str], dict[str, Any]], rule_schema: Any) -> None:
    rule = rendered[("PrometheusRule", "monitoring", "apm-exporter")]
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["app.kubernetes.io/name"] == "apm-exporter"
    jsonschema.validate(rule, rule_schema)
    typo = copy.deepcopy(rule)
    typo["spec"]["groups"][0]["rules"][0]["labels_"] = {"a": "b"}
    with pytest.raises(jsonschema.ValidationError, match="labels_"):
        jsonschema.validate(typo, rule_schema)
    bad_duration = copy.deepcopy(rule)
    next(r for g in bad_duration["spec"]["groups"] for r in g["rules"] if "for" in r)["for"] = "5 minutes"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad_duration, rule_schema)


# --- the monitors' relabelings, applied by a real Prometheus -------------------------------------

_RELABEL_KEYS = {"sourceLabels": "source_labels", "targetLabel": "target_label", "separator": "separator",
                 "regex": "regex", "replacement": "replacement", "modulus": "modulus", "action": "action"}


def relabel_configs(relabelings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A monitor's relabelings as Prometheus relabel_configs (what the Operator writes for them)."""
    return [{_RELABEL_KEYS[k]: (v.lower() if k == "action" else v) for k, v in r.items()} for r in relabelings]


def test_monitors_give_stable_instance_and_pod_labels(
        rendered: dict[tuple[str, str, str], dict[str, Any]], tmp_path: Path) -> None:
    # Kubernetes service discovery as Prometheus sees it: a DaemonSet pod replaced on node-a
    # (new pod name, new address) and a sidecar pod whose IP a later pod reuses.
    node = [("10.0.0.7", "node-a", "apm-exporter-node-x1x2"), ("10.0.0.8", "node-a", "apm-exporter-node-y3y4"),
            ("10.0.0.9", "node-b", "apm-exporter-node-z5z6")]
    sidecar = [("10.1.0.5", "node-a", "example-app-6d4b7-abcde"), ("10.1.0.5", "node-b", "example-app-6d4b7-fghij")]
    monitors = {
        "node": rendered[("ServiceMonitor", "monitoring", "apm-exporter-node")]["spec"]["endpoints"][0],
        "sidecar": rendered[("PodMonitor", "", "example-app-apm")]["spec"]["podMetricsEndpoints"][0],
    }
    scrape_configs = [
        {"job_name": job, "relabel_configs": relabel_configs(monitors[job]["relabelings"]),
         "static_configs": [{"targets": [f"{ip}:{free_port()}"],
                             "labels": {"__meta_kubernetes_pod_node_name": node_name,
                                        "__meta_kubernetes_pod_name": pod}}
                            for ip, node_name, pod in pods]}
        for job, pods in (("node", node), ("sidecar", sidecar))]
    prom = ConfiguredPrometheus(tmp_path, {"global": {"scrape_interval": "1h"}, "scrape_configs": scrape_configs})
    want = sorted([("node", n, pod, n) for _, n, pod in node] + [("sidecar", pod, pod, None) for _, _, pod in sidecar])
    prom.start()
    try:
        deadline = time.monotonic() + 30  # discovery hands targets over within about 5 s
        while True:
            seen = sorted((t["labels"]["job"], t["labels"]["instance"], t["labels"].get("pod"), t["labels"].get("node"))
                          for t in prom.api("targets", state="active")["activeTargets"])
            if len(seen) == len(want) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        prom.stop()
    assert seen == want


# --- docs/deploy.md's fleet: the configuration the fleet e2e test runs ----------------------------


def fleet_docs_config(name: str) -> dict[str, Any]:
    """The YAML block of docs/deploy.md that starts with `# <name>`."""
    blocks = re.findall(r"```yaml\n(# (\S+)\n.*?)```", (ROOT / "docs" / "deploy.md").read_text(), re.S)
    return next(yaml.safe_load(text) for text, title in blocks if title == name)


def test_docs_fleet_agent_is_the_tested_one(tmp_path: Path) -> None:
    documented = fleet_docs_config("agent.yml")
    tested = agent_config(["app-1:9725"], shard=0, shards=2, remote_write_url="http://centre/api/v1/write")
    scrape, tested_scrape = documented["scrape_configs"][0], tested["scrape_configs"][0]
    assert scrape["relabel_configs"] == tested_scrape["relabel_configs"]
    assert scrape["job_name"] == tested_scrape["job_name"]
    assert [urllib.parse.urlparse(w["url"]).path for w in documented["remote_write"]] == ["/api/v1/write"]
    path = tmp_path / "agent.yml"
    path.write_text(yaml.safe_dump(documented))
    result = subprocess.run([require("promtool"), "check", "config", str(path)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_docs_fleet_centre_loads_rules(tmp_path: Path) -> None:
    documented = fleet_docs_config("central.yml")
    assert [Path(f).name for f in documented["rule_files"]] == ["recording.yml", "alerts.yml"]
    documented["rule_files"] = [str(ROOT / "rules" / Path(f).name) for f in documented["rule_files"]]
    path = tmp_path / "central.yml"
    path.write_text(yaml.safe_dump(documented))
    result = subprocess.run([require("promtool"), "check", "config", str(path)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# --- what the manifests promise ----------------------------------------------------------------


def workloads(rendered: dict[tuple[str, str, str], dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in rendered.values() if d["kind"] in _WORKLOADS]


def exporter_container(pod: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in pod["containers"] if c["image"].startswith("apm-exporter"))


def test_containers_run_restricted(rendered: dict[tuple[str, str, str], dict[str, Any]]) -> None:
    for doc in workloads(rendered):
        pod = _pod_spec(doc)
        assert pod is not None
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False
            assert security["readOnlyRootFilesystem"] is True
            assert security["capabilities"] == {"drop": ["ALL"]}
            assert security.get("privileged", False) is False
            uid = security.get("runAsUser", pod["securityContext"].get("runAsUser"))
            assert isinstance(uid, int) and uid > 0


def test_sidecar_meets_the_restricted_pod_security_standard(
        rendered: dict[tuple[str, str, str], dict[str, Any]]) -> None:
    deployment = rendered[("Deployment", "", "example-app")]
    pod = deployment["spec"]["template"]["spec"]
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
    assert all("hostPath" not in v for v in pod.get("volumes", []))
    assert all(p.get("hostPort") is None for c in pod["containers"] for p in c.get("ports", []))
    # The app reaches StatsD on the pod's loopback.
    sidecar_config = rendered[next(k for k in rendered if k[0] == "ConfigMap" and "sidecar" in k[2])]
    assert "udp://127.0.0.1:8125" in sidecar_config["data"]["config.yaml"]


def test_daemonset_mounts_the_host_read_only(rendered: dict[tuple[str, str, str], dict[str, Any]]) -> None:
    daemonset = rendered[("DaemonSet", "monitoring", "apm-exporter-node")]
    pod = daemonset["spec"]["template"]["spec"]
    container = exporter_container(pod)
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    for path in ("/host/proc", "/host/sys", "/host/root"):
        assert mounts[path]["readOnly"] is True
    host_paths = {v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}
    assert host_paths == {"/proc", "/sys", "/"}


def test_probes_resources_and_ports(rendered: dict[tuple[str, str, str], dict[str, Any]]) -> None:
    for doc in workloads(rendered):
        pod = _pod_spec(doc)
        assert pod is not None
        container = exporter_container(pod)
        ports = {p["name"]: p for p in container["ports"]}
        assert container["livenessProbe"]["httpGet"]["path"] == "/-/healthy"
        assert container["readinessProbe"]["httpGet"]["path"] == "/-/ready"
        for probe in ("livenessProbe", "readinessProbe"):
            assert container[probe]["httpGet"]["port"] in ports
        resources = container["resources"]
        assert set(resources["requests"]) == {"cpu", "memory"}
        assert "memory" in resources["limits"]
        # The image's default CMD names the same file the ConfigMap is mounted as.
        args = cli._run_parser().parse_args(
            [a for a in container["args"] if not a.startswith("--web.listen-address=$(")])
        mount = next(m for m in container["volumeMounts"] if m["name"].endswith("config"))
        assert args.config_file == f"{mount['mountPath']}/config.yaml"
        volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
        assert ("ConfigMap", doc["metadata"].get("namespace", ""), volume["configMap"]["name"]) in rendered


def labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_monitors_select_what_they_should(rendered: dict[tuple[str, str, str], dict[str, Any]]) -> None:
    service = rendered[("Service", "monitoring", "apm-exporter-node")]
    daemonset = rendered[("DaemonSet", "monitoring", "apm-exporter-node")]
    pod_labels = daemonset["spec"]["template"]["metadata"]["labels"]
    assert labels_match(service["spec"]["selector"], pod_labels)
    assert labels_match(daemonset["spec"]["selector"]["matchLabels"], pod_labels)
    container_ports = {p["name"] for p in exporter_container(daemonset["spec"]["template"]["spec"])["ports"]}
    assert all(p["targetPort"] in container_ports for p in service["spec"]["ports"])

    service_monitor = rendered[("ServiceMonitor", "monitoring", "apm-exporter-node")]
    assert labels_match(service_monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    service_ports = {p["name"] for p in service["spec"]["ports"]}
    assert all(e["port"] in service_ports for e in service_monitor["spec"]["endpoints"])

    deployment = rendered[("Deployment", "", "example-app")]
    pod_monitor = rendered[("PodMonitor", "", "example-app-apm")]
    template = deployment["spec"]["template"]
    assert labels_match(pod_monitor["spec"]["selector"]["matchLabels"], template["metadata"]["labels"])
    pod_ports = {p["name"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
    assert all(e["port"] in pod_ports for e in pod_monitor["spec"]["podMetricsEndpoints"])


def test_config_maps_hold_valid_configs(rendered: dict[tuple[str, str, str], dict[str, Any]],
                                        tmp_path: Path) -> None:
    config_maps = [d for d in rendered.values() if d["kind"] == "ConfigMap"]
    assert len(config_maps) == 2
    for doc in config_maps:
        path = tmp_path / f"{doc['metadata']['name']}.yaml"
        path.write_text(doc["data"]["config.yaml"])
        # HOST_IP comes from the downward API in the DaemonSet.
        config.load(path, env={"HOST_IP": "10.0.0.7"})


# --- Dockerfile --------------------------------------------------------------------------------


def dockerfile_final_stage() -> dict[str, list[str]]:
    """Instructions of the last stage, line continuations joined; exec-form values as lists."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    stages: list[dict[str, list[str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            stages.append({})
        elif stages:
            value = json.loads(rest) if rest.startswith("[") else [rest]
            stages[-1].setdefault(instruction, []).extend(value if instruction in ("ENTRYPOINT", "CMD") else [rest])
    assert len(stages) >= 2, "expected a multi-stage build"
    return stages[-1]


def test_dockerfile_entrypoint_and_cmd_are_the_real_cli() -> None:
    final = dockerfile_final_stage()
    assert final["ENTRYPOINT"] == ["apm-exporter"]
    # The console script the entrypoint names is the one pyproject installs.
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["apm-exporter"] == "exporter.cli:main"
    args = cli._run_parser().parse_args(final["CMD"])
    assert args.config_file == "/etc/apm-exporter/config.yaml"
    copies = [c.split() for c in final.get("COPY", [])]
    assert ["config.yaml", "/etc/apm-exporter/config.yaml"] in copies
    config.load(ROOT / "config.yaml")


def test_dockerfile_final_stage_is_non_root_and_tool_free() -> None:
    final = dockerfile_final_stage()
    user = final["USER"][-1].split(":")[0]
    assert user.isdigit() and int(user) != 0, "a numeric non-root USER lets runAsNonRoot verify it"
    for run in final.get("RUN", []):
        assert not re.search(r"\b(apt-get|apk|gcc|build-essential)\b", run), run


def test_cli_help_runs_as_the_image_would() -> None:
    # The entrypoint plus CMD through the real process entry point, up to argument parsing.
    result = subprocess.run([sys.executable, "-m", "exporter", *dockerfile_final_stage()["CMD"], "--help"],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "--web.config.file" in result.stdout
