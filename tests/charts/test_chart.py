"""Offline checks of the Helm chart in charts/handoff.

The chart is rendered the way ``helm install`` renders it, through Helm's own
Go library (``helm-python-sdk``, no helm binary and no cluster), and every
object is validated against the Kubernetes OpenAPI schemas that
``kubernetes-validate`` ships. On top of that the properties the deployment
depends on are asserted: as many geo pods as asked for, each its own named
replica with its own volume, the API told of every one, the uploads volume in
every process that touches it, the network policy, secrets only through
secret references, and hardened, probed containers.

The property checks are functions that return a list of problems, and
``test_checks_catch_broken_manifests`` feeds them deliberately broken
manifests, so a check that could never fail would be noticed.

The tools are imported at module level on purpose: when they are missing the
module fails to import and the run fails instead of skipping.
"""

from __future__ import annotations

import base64
import copy
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from geo_service.store import FileStore
from tests.geo_service.store import disk
from tests.geo_service.store.disk import interrupted_removal, sealed_upload

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "handoff"
VALUES_DIR = CHART / "ci"
VALUES_FILES = ("defaults.yaml", "external-redis-cronjob.yaml", "existing-secret.yaml",
                "hooks.yaml", "three-geo-replicas.yaml")
RELEASE = "handoff"
NAMESPACE = "uploads"
KUBERNETES_VERSION = "1.33.0"
UPLOADS_ROOT = "/var/lib/handoff/uploads"
BASE_SECRET_ENV = ("HANDOFF_GEO_SECRET", "HANDOFF_API_TOKENS")
WEBHOOK_SECRET_ENV = "HANDOFF_WEBHOOK_SECRET"
SECRET_ENV = (*BASE_SECRET_ENV, WEBHOOK_SECRET_ENV)
REQUIRED_CONFIG = (
    "HANDOFF_UPLOADS_ROOT",
    "HANDOFF_QUEUE",
    "HANDOFF_MAX_UPLOAD_SIZE",
    "HANDOFF_ORPHAN_TTL",
    "HANDOFF_PARTIAL_TTL",
    "HANDOFF_RETENTION",
    "HANDOFF_GC_INTERVAL",
    "HANDOFF_LOG_LEVEL",
    "HANDOFF_PROCESSOR_MEMORY_LIMIT",
    "HANDOFF_PROCESSOR_TIME_LIMIT",
)
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod")
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"

Manifest = dict[str, Any]


# --------------------------------------------------------------------------
# Rendering


class Rendered:
    """One rendering of the chart: the merged values and the objects."""

    def __init__(self, values: dict[str, Any], merged: dict[str, Any], docs: list[Manifest]):
        self.values = values
        self.merged = merged
        self.docs = docs

    def of_kind(self, kind: str) -> list[Manifest]:
        return [doc for doc in self.docs if doc["kind"] == kind]

    def component(self, kind: str, component: str) -> list[Manifest]:
        return [doc for doc in self.of_kind(kind) if labels(doc).get(COMPONENT) == component]


COMPONENT = "app.kubernetes.io/component"


def labels(doc: Manifest) -> dict[str, str]:
    """An object's own labels (empty when it has none)."""
    return doc.get("metadata", {}).get("labels") or {}


def load_values(name: str) -> dict[str, Any]:
    """A values file parsed by Helm itself, so YAML typing matches ``helm -f``."""
    return helm.values_from_yaml((VALUES_DIR / name).read_text())


def render(values: dict[str, Any]) -> Rendered:
    """Render the chart offline as a first install would, schema check included.

    Helm validates the values against values.schema.json before rendering,
    so a bad value raises ``helm_python.HelmValuesError`` here.
    """
    with helm.Chart.load(CHART) as chart:
        merged = chart.merge_values(values)
        manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    docs: list[Manifest] = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        docs.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return Rendered(values, merged, docs)


@pytest.fixture(scope="module", params=VALUES_FILES)
def rendered(request: pytest.FixtureRequest) -> Rendered:
    """The chart rendered with each example values file under charts/handoff/ci."""
    return render(load_values(request.param))


# --------------------------------------------------------------------------
# Walking pod specs


def pod_template(doc: Manifest) -> dict[str, Any] | None:
    """The pod template of a workload object, whatever its kind."""
    kind = doc["kind"]
    if kind == "Pod":
        return doc
    if kind == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]
    if kind in WORKLOAD_KINDS:
        return doc["spec"]["template"]
    return None


def workloads(docs: list[Manifest]) -> Iterator[tuple[Manifest, dict[str, Any]]]:
    """Every workload with its pod spec."""
    for doc in docs:
        template = pod_template(doc)
        if template is not None:
            yield doc, template["spec"]


def containers(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Regular and init containers of a pod spec."""
    return list(pod_spec.get("containers", [])) + list(pod_spec.get("initContainers", []))


def where(doc: Manifest, container: dict[str, Any] | None = None) -> str:
    """A short location for problem messages."""
    name = f"{doc['kind']}/{doc['metadata']['name']}"
    return f"{name} container {container['name']}" if container else name


def selects(selector: dict[str, Any], pod_labels: dict[str, str]) -> bool:
    """Whether a label selector with only matchLabels matches the labels."""
    if set(selector) - {"matchLabels"}:
        raise AssertionError(f"unexpected selector form: {selector}")
    match = selector.get("matchLabels") or {}
    return bool(match) and all(pod_labels.get(key) == value for key, value in match.items())


# --------------------------------------------------------------------------
# Property checks: each returns a list of problems, empty when all is well


def kubernetes_schema_problems(docs: list[Manifest]) -> list[str]:
    """Objects that the Kubernetes API would reject (strict: no unknown fields)."""
    problems = []
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(part) for part in exc.path)
            problems.append(f"{where(doc)}: {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            problems.append(f"{where(doc)}: {exc.message}")
    return problems


def geo_replica_problems(docs: list[Manifest], replicas: int) -> list[str]:
    """Anything but ``replicas`` geo pods, each with its own ReadWriteOnce uploads claim."""
    geo = [
        doc for doc, _ in workloads(docs) if labels(pod_template(doc) or {}).get(COMPONENT) == "geo"
    ]
    if len(geo) != 1 or geo[0]["kind"] != "StatefulSet":
        return [f"expected one geo StatefulSet, found {[where(doc) for doc in geo]}"]
    spec = geo[0]["spec"]
    problems = []
    if spec.get("replicas") != replicas:
        problems.append(f"geo replicas is {spec.get('replicas')!r}, expected {replicas}")
    claims = {t["metadata"]["name"]: t["spec"] for t in spec.get("volumeClaimTemplates", [])}
    if "uploads" not in claims:
        problems.append("geo StatefulSet has no 'uploads' volumeClaimTemplate")
    elif claims["uploads"].get("accessModes") != ["ReadWriteOnce"]:
        problems.append(f"uploads claim access modes: {claims['uploads'].get('accessModes')}")
    return problems


def uploads_claim_name(docs: list[Manifest]) -> str:
    """The claim the geo StatefulSet creates for its first pod."""
    (geo,) = [doc for doc in docs if doc["kind"] == "StatefulSet"]
    return f"uploads-{geo['metadata']['name']}-0"


def mounts_uploads(container: dict[str, Any], volume: str) -> bool:
    """Whether the container mounts ``volume`` read-write at the uploads root."""
    return any(
        mount["name"] == volume and mount["mountPath"] == UPLOADS_ROOT and not mount.get("readOnly")
        for mount in container.get("volumeMounts", [])
    )


def uploads_mount_problems(docs: list[Manifest], gc_mode: str) -> list[str]:
    """Every process that touches the store must see the same uploads volume."""
    problems = []
    (geo,) = [doc for doc in docs if doc["kind"] == "StatefulSet"]
    pod = geo["spec"]["template"]["spec"]
    by_name = {container["name"]: container for container in pod["containers"]}
    expected = {"geo", "worker", "gc"} if gc_mode == "scheduler" else {"geo", "worker"}
    if set(by_name) != expected:
        problems.append(f"geo pod containers are {sorted(by_name)}, expected {sorted(expected)}")
    for name in sorted(expected & set(by_name)):
        if not mounts_uploads(by_name[name], "uploads"):
            problems.append(f"{where(geo, by_name[name])} does not mount uploads at {UPLOADS_ROOT}")
    cronjobs = [doc for doc in docs if doc["kind"] == "CronJob"]
    if gc_mode == "scheduler":
        if cronjobs:
            problems.append(f"scheduler mode renders CronJobs: {[where(d) for d in cronjobs]}")
        return problems
    if len(cronjobs) != 1:
        return [*problems, f"cronjob mode renders {len(cronjobs)} CronJobs, expected 1"]
    (job,) = cronjobs
    job_pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    claim = uploads_claim_name(docs)
    volumes = [
        volume["name"]
        for volume in job_pod.get("volumes", [])
        if (volume.get("persistentVolumeClaim") or {}).get("claimName") == claim
    ]
    if len(volumes) != 1:
        problems.append(f"{where(job)} has no volume for claim {claim}")
    elif not all(mounts_uploads(c, volumes[0]) for c in job_pod["containers"]):
        problems.append(f"{where(job)} containers do not mount {claim} at {UPLOADS_ROOT}")
    commands = [c.get("command", []) + c.get("args", []) for c in job_pod["containers"]]
    if ["handoff-gc", "--once"] not in commands:
        problems.append(f"{where(job)} does not run 'handoff-gc --once': {commands}")
    geo_labels = geo["spec"]["template"]["metadata"]["labels"]
    terms = (
        job_pod.get("affinity", {})
        .get("podAffinity", {})
        .get("requiredDuringSchedulingIgnoredDuringExecution", [])
    )
    if not any(
        term.get("topologyKey") == "kubernetes.io/hostname"
        and selects(term.get("labelSelector", {}), geo_labels)
        for term in terms
    ):
        problems.append(f"{where(job)} is not pinned to the geo pod's node by pod affinity")
    return problems


def _replica_env(container: dict[str, Any]) -> dict[str, Any] | None:
    return next((e for e in container.get("env", []) if e["name"] == "HANDOFF_REPLICA"), None)


def replica_name_problems(docs: list[Manifest], queue: str) -> list[str]:
    """Every store process is named as its geo pod, and its worker takes that pod's queue only."""
    (geo,) = [doc for doc in docs if doc["kind"] == "StatefulSet"]
    pod = geo["spec"]["template"]["spec"]
    problems = []
    from_pod_name = {"valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
    for container in containers(pod):
        env = _replica_env(container)
        if env is None or {k: v for k, v in env.items() if k != "name"} != from_pod_name:
            problems.append(f"{where(geo, container)} HANDOFF_REPLICA is not the pod name: {env}")
    worker = next((c for c in pod["containers"] if c["name"] == "worker"), {"args": []})
    args = worker["args"]
    queues = args[args.index("--queues") + 1:] if "--queues" in args else []
    if not queues or queues[0] != f"{queue}.$(HANDOFF_REPLICA)" or queue in queues:
        problems.append(f"the worker's queues are {queues}, not its own replica's first")
    for job in (doc for doc in docs if doc["kind"] == "CronJob"):
        job_pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        for container in job_pod["containers"]:
            env = _replica_env(container)
            expected = f"{geo['metadata']['name']}-0"
            if env is None or env.get("value") != expected:
                problems.append(f"{where(job, container)} HANDOFF_REPLICA is {env}, not {expected}")
    return problems


def _api_env(docs: list[Manifest]) -> dict[str, str]:
    """The API container's literal environment variables."""
    (api,) = [
        container
        for doc, pod in workloads(docs)
        if labels(pod_template(doc) or {}).get(COMPONENT) == "api"
        for container in pod["containers"]
    ]
    return {env["name"]: env["value"] for env in api.get("env", []) if "value" in env}


def replica_url_problems(docs: list[Manifest]) -> list[str]:
    """The API is told of every geo pod, by its name and its per-pod DNS name."""
    (geo,) = [doc for doc in docs if doc["kind"] == "StatefulSet"]
    name, spec = geo["metadata"]["name"], geo["spec"]
    service = spec["serviceName"]
    headless = [
        doc for doc in docs
        if doc["kind"] == "Service" and doc["metadata"]["name"] == service
        and doc["spec"].get("clusterIP") == "None"
        and doc["spec"]["selector"] == spec["selector"]["matchLabels"]
    ]
    problems = [] if headless else [f"no headless Service {service} for the geo pods"]
    listed = _api_env(docs).get("HANDOFF_GEO_REPLICA_URLS", "").split(",")
    expected = [
        f"{name}-{ordinal}=http://{name}-{ordinal}.{service}:8001"
        for ordinal in range(spec["replicas"])
    ]
    if listed != expected:
        problems.append(f"HANDOFF_GEO_REPLICA_URLS lists {listed}, expected {expected}")
    return problems


def network_policy_problems(docs: list[Manifest]) -> list[str]:
    """The geo pod's port must be reachable from the API pods and nothing else."""
    geo_labels = next(
        doc["spec"]["template"]["metadata"]["labels"]
        for doc in docs
        if doc["kind"] == "StatefulSet"
    )
    api_labels = next(
        tpl["metadata"]["labels"]
        for doc, _ in workloads(docs)
        if (tpl := pod_template(doc)) and tpl["metadata"]["labels"].get(COMPONENT) == "api"
    )
    other_labels = [
        tpl["metadata"]["labels"]
        for doc, _ in workloads(docs)
        if (tpl := pod_template(doc)) and tpl["metadata"]["labels"].get(COMPONENT) != "api"
    ]
    policies = [
        doc
        for doc in docs
        if doc["kind"] == "NetworkPolicy" and selects(doc["spec"]["podSelector"], geo_labels)
    ]
    if len(policies) != 1:
        return [f"expected one NetworkPolicy selecting the geo pod, found {len(policies)}"]
    (policy,) = policies
    spec = policy["spec"]
    problems = []
    if POD_NAME_LABEL in (spec["podSelector"].get("matchLabels") or {}):
        problems.append(f"{where(policy)} selects one geo pod by name, not all by label")
    if "Ingress" not in spec.get("policyTypes", []):
        problems.append(f"{where(policy)} does not restrict ingress")
    rules = spec.get("ingress", [])
    if not rules:
        problems.append(f"{where(policy)} has no ingress rule for the API")
    for rule in rules:
        peers = rule.get("from", [])
        if not peers:
            problems.append(f"{where(policy)} has a rule open to every source")
        for peer in peers:
            if set(peer) != {"podSelector"}:
                problems.append(f"{where(policy)} admits a non-pod peer: {peer}")
            elif not selects(peer["podSelector"], api_labels):
                problems.append(f"{where(policy)} peer does not select the API pods: {peer}")
            elif any(selects(peer["podSelector"], other) for other in other_labels):
                problems.append(f"{where(policy)} peer also selects non-API pods: {peer}")
        ports = [(p.get("protocol", "TCP"), p.get("port")) for p in rule.get("ports", [])]
        if ports != [("TCP", 8001)]:
            problems.append(f"{where(policy)} rule ports are {ports}, expected TCP 8001 only")
    return problems


def generated_secret_values(docs: list[Manifest]) -> list[str]:
    """Decoded values of every Secret the chart writes."""
    values = []
    for doc in docs:
        if doc["kind"] == "Secret":
            values += [base64.b64decode(v).decode() for v in (doc.get("data") or {}).values()]
            values += list((doc.get("stringData") or {}).values())
    return values


def secret_problems(docs: list[Manifest], secret_name: str,
                    handed: tuple[str, ...] = BASE_SECRET_ENV) -> list[str]:
    """Secrets must reach containers only through secretKeyRef, never as text."""
    problems = []
    secret_values = [value for value in generated_secret_values(docs) if value]
    for doc in docs:
        if doc["kind"] != "ConfigMap":
            continue
        data = {**(doc.get("data") or {}), **(doc.get("binaryData") or {})}
        for name in SECRET_ENV:
            if name in data:
                problems.append(f"{where(doc)} holds {name}")
        for key, text in data.items():
            if any(value in str(text) for value in secret_values):
                problems.append(f"{where(doc)} key {key} holds a secret value")
    seen = set()
    for doc, pod in workloads(docs):
        for container in containers(pod):
            for env in container.get("env", []):
                literal = env.get("value")
                if literal is not None and any(value in literal for value in secret_values):
                    problems.append(f"{where(doc, container)} env {env['name']} holds a secret")
                if env["name"] not in SECRET_ENV:
                    continue
                seen.add(env["name"])
                ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                if literal is not None or ref is None:
                    problems.append(f"{where(doc, container)} sets {env['name']} without a secret")
                elif ref.get("name") != secret_name:
                    problems.append(
                        f"{where(doc, container)} reads {env['name']} from {ref.get('name')}"
                    )
    if seen != set(handed):
        problems.append(f"secret variables handed to containers: {sorted(seen)}")
    return problems


def webhook_secret_problems(docs: list[Manifest], webhook_on: bool) -> list[str]:
    """Only the worker signs webhooks: it alone holds the secret, and only when they are on."""
    holders = [
        (doc, container)
        for doc, pod in workloads(docs)
        for container in containers(pod)
        if any(env["name"] == WEBHOOK_SECRET_ENV for env in container.get("env", []))
    ]
    problems = [
        f"{where(doc, container)} holds {WEBHOOK_SECRET_ENV}"
        for doc, container in holders
        if container["name"] != "worker" or not webhook_on
    ]
    if webhook_on and not any(container["name"] == "worker" for _, container in holders):
        problems.append(f"the worker has no {WEBHOOK_SECRET_ENV} to sign webhooks with")
    return problems


def hardening_problems(docs: list[Manifest]) -> list[str]:
    """Every container non-root, read-only, without privileges, limited and probed."""
    problems = []
    for doc, pod in workloads(docs):
        pod_context = pod.get("securityContext") or {}
        if pod_context.get("runAsNonRoot") is not True:
            problems.append(f"{where(doc)} pod does not require non-root")
        if pod.get("automountServiceAccountToken") is not False:
            problems.append(f"{where(doc)} mounts a service account token")
        if pod.get("enableServiceLinks") is not False:
            # Service links inject e.g. HANDOFF_GEO_PORT=tcp://... which
            # collides with the HANDOFF_* settings and stops start-up.
            problems.append(f"{where(doc)} keeps service links")
        volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
        init = {container["name"] for container in pod.get("initContainers", [])}
        for container in containers(pod):
            here = where(doc, container)
            context = container.get("securityContext") or {}
            effective = {**pod_context, **context}
            if effective.get("runAsNonRoot") is not True:
                problems.append(f"{here} may run as root")
            if effective.get("runAsUser") != 10001:
                problems.append(f"{here} runs as user {effective.get('runAsUser')}, not 10001")
            if context.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{here} has a writable root filesystem")
            if context.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{here} allows privilege escalation")
            if context.get("privileged"):
                problems.append(f"{here} is privileged")
            if (context.get("capabilities") or {}).get("drop") != ["ALL"]:
                problems.append(f"{here} keeps capabilities")
            if (effective.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
                problems.append(f"{here} has no RuntimeDefault seccomp profile")
            tmp = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
            if len(tmp) != 1 or "emptyDir" not in volumes.get(tmp[0]["name"], {}):
                problems.append(f"{here} has no emptyDir at /tmp")
            resources = container.get("resources") or {}
            for kind in ("requests", "limits"):
                if not {"cpu", "memory"} <= set(resources.get(kind) or {}):
                    problems.append(f"{here} has no cpu and memory {kind}")
            if doc["kind"] in ("CronJob", "Job") or container["name"] in init:
                continue  # a run-to-completion container is not probed
            for probe in ("livenessProbe", "readinessProbe"):
                if not container.get(probe):
                    problems.append(f"{here} has no {probe}")
    return problems


def graceful_shutdown_problems(docs: list[Manifest], merged: dict[str, Any]) -> list[str]:
    """Uploads in flight must get the configured time to finish on shutdown."""
    problems = []
    expected = {
        "api": merged["api"]["terminationGracePeriodSeconds"],
        "geo": merged["geo"]["terminationGracePeriodSeconds"],
    }
    for doc, pod in workloads(docs):
        component = (pod_template(doc) or {})["metadata"]["labels"].get(COMPONENT)
        if component not in expected:
            continue
        grace = pod.get("terminationGracePeriodSeconds")
        if grace != expected[component]:
            problems.append(f"{where(doc)} grace period {grace}, expected {expected[component]}")
            continue
        for container in pod["containers"]:
            if container.get("args", [""])[0] != "gunicorn":
                continue
            env = {e["name"]: e.get("value", "") for e in container.get("env", [])}
            match = re.search(r"--graceful-timeout[ =](\d+)", env.get("GUNICORN_CMD_ARGS", ""))
            stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {})
            pause = int(stop.get("command", ["sleep", "0"])[-1])
            if match is None:
                problems.append(f"{where(doc, container)} sets no gunicorn graceful timeout")
            elif int(match.group(1)) + pause >= grace:
                problems.append(
                    f"{where(doc, container)} graceful timeout {match.group(1)}s + preStop "
                    f"{pause}s does not fit the {grace}s grace period"
                )
    return problems


# --------------------------------------------------------------------------
# Tests over the three example values files


def test_objects_are_valid_kubernetes(rendered: Rendered) -> None:
    """A chart that renders but that the API server rejects fails on install day."""
    assert rendered.docs, "the chart rendered nothing"
    assert kubernetes_schema_problems(rendered.docs) == []


def test_lint_is_clean(rendered: Rendered) -> None:
    """``helm lint --strict`` finds no warning or error with these values."""
    report = helm.lint(CHART, rendered.values, strict=True)
    findings = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and findings == []


def test_geo_pods_as_many_as_asked(rendered: Rendered) -> None:
    """geo.replicas pods, each with a ReadWriteOnce uploads claim of its own."""
    assert geo_replica_problems(rendered.docs, rendered.merged["geo"]["replicas"]) == []


def test_each_geo_pod_is_its_own_replica(rendered: Rendered) -> None:
    """A pod's store and queue are named after it, so a job runs where its bytes are."""
    assert replica_name_problems(rendered.docs, rendered.merged["config"]["queue"]) == []


def test_the_api_knows_every_geo_replica(rendered: Rendered) -> None:
    """HANDOFF_GEO_REPLICA_URLS names each pod at its stable name in the headless Service."""
    assert replica_url_problems(rendered.docs) == []


def test_uploads_volume_reaches_every_store_process(rendered: Rendered) -> None:
    """geo, worker and gc (container or CronJob) all need the same uploads volume."""
    assert uploads_mount_problems(rendered.docs, rendered.merged["gc"]["mode"]) == []


def test_only_api_pods_reach_geo(rendered: Rendered) -> None:
    """The internal upload endpoint is reachable from the API pods only."""
    assert network_policy_problems(rendered.docs) == []


def test_secrets_come_from_secret_refs(rendered: Rendered) -> None:
    """Secret values never land in a ConfigMap or an env literal."""
    existing = rendered.merged["secrets"]["existingSecret"]
    secret_name = existing or f"{RELEASE}-secrets"
    webhook_on = bool(rendered.merged["hooks"]["webhook"]["url"])
    handed = (*BASE_SECRET_ENV, WEBHOOK_SECRET_ENV) if webhook_on else BASE_SECRET_ENV
    assert secret_problems(rendered.docs, secret_name, handed) == []
    assert webhook_secret_problems(rendered.docs, webhook_on) == []
    chart_secrets = [doc["metadata"]["name"] for doc in rendered.of_kind("Secret")]
    assert chart_secrets == ([] if existing else [secret_name])


def test_containers_are_hardened_and_probed(rendered: Rendered) -> None:
    """Every container runs as 10001, read-only, unprivileged, limited and probed."""
    assert hardening_problems(rendered.docs) == []


def test_uploads_get_time_to_finish(rendered: Rendered) -> None:
    """gunicorn's graceful timeout fits inside the pod's termination grace period."""
    assert graceful_shutdown_problems(rendered.docs, rendered.merged) == []


def test_configuration_reaches_the_services(rendered: Rendered) -> None:
    """Every HANDOFF_* setting is in the ConfigMap, Redis' address among them."""
    (config,) = rendered.of_kind("ConfigMap")
    data = config["data"]
    assert [key for key in REQUIRED_CONFIG if key not in data] == []
    assert data["HANDOFF_UPLOADS_ROOT"] == UPLOADS_ROOT
    assert "HANDOFF_GEO_URL" not in data  # the API is given every replica instead
    assert "HANDOFF_GEO_REPLICA_URLS" not in data  # or scaling would restart the geo pods
    worker = rendered.merged["worker"]
    assert (data["HANDOFF_PROCESSOR_MEMORY_LIMIT"], data["HANDOFF_PROCESSOR_TIME_LIMIT"]) == (
        worker["processorMemoryLimit"], worker["processorTimeLimit"])
    redis = rendered.merged["redis"]
    external = rendered.merged["externalRedis"]
    if redis["enabled"]:
        (service,) = rendered.component("Service", "redis")
        assert data["HANDOFF_REDIS_URL"] == f"redis://{service['metadata']['name']}:6379/0"
    else:
        assert not rendered.component("Deployment", "redis")
        assert data["HANDOFF_REDIS_URL"] == external["url"]


def test_hooks_reach_the_worker_and_the_sweeper(rendered: Rendered) -> None:
    """The hook settings are in the ConfigMap, and the worker consumes the delivery queue."""
    hooks = rendered.merged["hooks"]
    webhook = hooks["webhook"]
    (config,) = rendered.of_kind("ConfigMap")
    assert {key: value for key, value in config["data"].items()
            if key.startswith(("HANDOFF_ON_FINISH_", "HANDOFF_WEBHOOK_"))} == {
        "HANDOFF_ON_FINISH_ACTOR": hooks["onFinishActor"],
        "HANDOFF_ON_FINISH_QUEUE": hooks["onFinishQueue"],
        "HANDOFF_WEBHOOK_URL": webhook["url"],
        "HANDOFF_WEBHOOK_QUEUE": webhook["queue"],
        "HANDOFF_WEBHOOK_TIMEOUT": webhook["timeout"],
        "HANDOFF_WEBHOOK_MAX_RETRIES": str(webhook["maxRetries"]),
        "HANDOFF_WEBHOOK_MIN_BACKOFF": webhook["minBackoff"],
        "HANDOFF_WEBHOOK_MAX_BACKOFF": webhook["maxBackoff"],
    }
    args = _container(rendered.docs, "worker")["args"]
    queues = args[args.index("--queues") + 1:]
    assert queues == [f"{rendered.merged['config']['queue']}.$(HANDOFF_REPLICA)", webhook["queue"]]
    for secret in rendered.of_kind("Secret"):
        assert rendered.merged["secrets"]["webhookSecretKey"] in secret["data"]


def test_the_application_worker_may_reach_the_built_in_redis() -> None:
    """The peers in networkPolicy.redisClients join the built-in Redis' policy."""
    result = render(load_values("hooks.yaml"))
    (policy,) = [doc for doc in result.of_kind("NetworkPolicy")
                 if doc["metadata"]["name"].endswith("-redis")]
    peers = policy["spec"]["ingress"][0]["from"]
    assert peers[3:] == result.merged["networkPolicy"]["redisClients"]  # after api, geo, gc


def test_processor_settings_reach_the_worker_through_config_extra() -> None:
    """A processor's own HANDOFF_PROCESSOR_* variables need no chart change."""
    setting = "HANDOFF_PROCESSOR_SHAPEFILE_ZIP_MAX_ENTRIES"
    (config,) = render({"config": {"extra": {setting: "5000"}}}).of_kind("ConfigMap")

    assert config["data"][setting] == "5000"


# --------------------------------------------------------------------------
# Values the schema or the templates must refuse


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param({"geo": {"replicas": 0}}, "/geo/replicas", id="no-geo-replica"),
        pytest.param({"geo": {"replicas": 1.5}}, "/geo/replicas", id="half-a-geo-replica"),
        pytest.param({"geo": {"replicas": "3"}}, "/geo/replicas", id="geo-replicas-text"),
        pytest.param({"geo": {"draining": [-1]}}, "/geo/draining", id="draining-negative"),
        pytest.param({"geo": {"draining": [1, 1]}}, "/geo/draining", id="draining-twice"),
        pytest.param({"geo": {"replicas": 2}, "gc": {"mode": "cronjob"}}, "/gc/mode",
                     id="cronjob-with-geo-replicas"),
        pytest.param({"config": {"maxUploadSize": "lots"}}, "/config/maxUploadSize", id="size"),
        pytest.param({"config": {"orphanTtl": "soon"}}, "/config/orphanTtl", id="duration"),
        pytest.param({"config": {"maxUploadSize": 1024}}, "/config/maxUploadSize", id="number"),
        pytest.param({"gc": {"mode": "weekly"}}, "/gc/mode", id="gc-mode"),
        pytest.param({"redis": {"enabled": False}}, "/externalRedis", id="no-redis"),
        pytest.param(
            {"config": {"extra": {"HANDOFF_GEO_SECRET": "x"}}}, "HANDOFF_GEO_SECRET", id="secret"
        ),
        pytest.param({"geo": {"persistance": {}}}, "persistance", id="typo"),
        pytest.param(
            {"config": {"extra": {"HANDOFF_WEBHOOK_SECRET": "x"}}}, "HANDOFF_WEBHOOK_SECRET",
            id="webhook-secret",
        ),
        pytest.param(
            {"hooks": {"webhook": {"url": "ftp://app.example/hook"}}}, "/hooks/webhook/url",
            id="webhook-url",
        ),
        pytest.param({"hooks": {"onFinishQueue": "app events"}}, "/hooks/onFinishQueue",
                     id="hooks-queue"),
        pytest.param({"hooks": {"webhook": {"maxRetries": -1}}}, "/hooks/webhook/maxRetries",
                     id="webhook-retries"),
        pytest.param({"hooks": {"webhook": {"minBackoff": "soon"}}}, "/hooks/webhook/minBackoff",
                     id="webhook-backoff"),
    ],
)
def test_wrong_values_are_refused(values: dict[str, Any], expected: str) -> None:
    """A wrong value stops the install with a message naming it."""
    with pytest.raises(helm.HelmValuesError) as caught:
        render(values)
    message = str(caught.value)
    assert "values don't meet the specifications of the schema" in message
    assert expected in message


def test_scaling_the_geo_pods_leaves_the_running_ones_alone() -> None:
    """A new geo.replicas changes the count and the API's list, not the geo pods' template."""
    one, three = render({}), render(load_values("three-geo-replicas.yaml"))
    (before,), (after,) = one.of_kind("StatefulSet"), three.of_kind("StatefulSet")
    after["spec"]["template"]["spec"].pop("affinity")
    assert after["spec"]["template"] == before["spec"]["template"]
    assert _api_env(one.docs)["HANDOFF_GEO_REPLICA_URLS"] != _api_env(three.docs)[
        "HANDOFF_GEO_REPLICA_URLS"]


def test_draining_geo_pods_are_named_to_the_api() -> None:
    """geo.draining's ordinals reach the API as the pods' names: still served, never placed on."""
    assert _api_env(render({}).docs)["HANDOFF_GEO_DRAINING"] == ""
    three = render({**load_values("three-geo-replicas.yaml"), "geo": {"replicas": 3,
                                                                      "draining": [2, 0]}})
    assert _api_env(three.docs)["HANDOFF_GEO_DRAINING"] == f"{RELEASE}-geo-2,{RELEASE}-geo-0"
    listed = {pair.split("=")[0] for pair in _api_env(three.docs)[
        "HANDOFF_GEO_REPLICA_URLS"].split(",")}
    assert set(_api_env(three.docs)["HANDOFF_GEO_DRAINING"].split(",")) <= listed


def test_draining_a_pod_that_does_not_exist_is_refused() -> None:
    with pytest.raises(helm.HelmRenderError, match=r"geo\.draining lists 3"):
        render({**load_values("three-geo-replicas.yaml"), "geo": {"replicas": 3,
                                                                  "draining": [3]}})


def test_geo_pods_are_drained_one_at_a_time() -> None:
    """With several geo pods a drain may stop one at a time; with one, a budget would block it."""
    assert render({}).component("PodDisruptionBudget", "geo") == []
    three = render(load_values("three-geo-replicas.yaml"))
    (budget,) = three.component("PodDisruptionBudget", "geo")
    (geo,) = three.of_kind("StatefulSet")
    assert budget["spec"]["maxUnavailable"] == 1
    assert budget["spec"]["selector"] == geo["spec"]["selector"]


def _lay_out_store(root: Path) -> subprocess.CompletedProcess[str]:
    """Run the geo pod's store-layout init container's command on ``root``."""
    (init,) = _geo_pod(render({}).docs)["initContainers"]
    assert init["args"][:3] == ["python", "-m", "geo_service.store"]
    env = {"PATH": os.environ["PATH"], "HANDOFF_UPLOADS_ROOT": str(root),
           "HANDOFF_REPLICA": "handoff-geo-0"}
    return subprocess.run([sys.executable, *init["args"][1:]], env=env, capture_output=True,
                          text=True, check=False)


def test_a_store_at_the_volume_root_moves_into_the_pods_folder(tmp_path: Path) -> None:
    """An earlier release's store becomes replica 0's, once, before anything opens it."""
    old = FileStore(tmp_path)
    upload = sealed_upload(old)
    manifest = old.manifest(upload)
    interrupted_removal(old)
    (tmp_path / "lost+found").mkdir()

    first = _lay_out_store(tmp_path)
    again = _lay_out_store(tmp_path)

    assert (first.returncode, again.returncode) == (0, 0), first.stderr + again.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["handoff-geo-0", "lost+found"]
    moved = FileStore(tmp_path / "handoff-geo-0")
    assert moved.manifest(upload) == manifest is not None
    assert upload in {lock.upload_id for lock in moved.lock_files()}
    assert len(moved.unfinished_removals()) == 1
    assert again.stdout == ""


def test_the_store_layout_never_overwrites(tmp_path: Path) -> None:
    """An entry in both places is left alone, and the pod does not start."""
    upload = "0b6f7a5e-9d7c-4a8e-8f1e-3c2a1b0d9e8f"
    for root in (tmp_path, tmp_path / "handoff-geo-0"):
        store = FileStore(root)
        with store.lock(upload):
            disk.lock_path(store, upload).write_text(str(root))

    result = _lay_out_store(tmp_path)

    assert result.returncode != 0
    assert "is at the volume's root and in handoff-geo-0/ too" in result.stderr
    assert disk.lock_path(FileStore(tmp_path), upload).read_text() == str(tmp_path)


def test_api_tokens_can_come_from_a_mounted_file() -> None:
    """With apiTokensAsFile the tokens are a read-only file of the Secret, not an env value."""
    result = render({"secrets": {"apiTokensAsFile": True}})
    (api,) = [doc for doc in result.of_kind("Deployment")
              if doc["metadata"]["name"].endswith("-api")]
    pod = api["spec"]["template"]["spec"]
    (container,) = containers(pod)
    env = {item["name"]: item for item in container["env"]}
    assert "HANDOFF_API_TOKENS" not in env
    path = env["HANDOFF_API_TOKENS_FILE"]["value"]
    (mount,) = [m for m in container["volumeMounts"] if path.startswith(m["mountPath"] + "/")]
    assert mount["readOnly"] is True
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == f"{RELEASE}-secrets"
    assert volume["secret"]["items"] == [{"key": "api-tokens", "path": path.rsplit("/", 1)[1]}]


def test_grace_period_shorter_than_pause_is_refused() -> None:
    """A grace period that leaves gunicorn no time is refused, not silently used."""
    with pytest.raises(helm.HelmRenderError, match="terminationGracePeriodSeconds"):
        render({"api": {"terminationGracePeriodSeconds": 30, "preStopSleepSeconds": 20}})


def test_redis_url_from_existing_secret() -> None:
    """A Redis URL with a password can come from a Secret instead of the ConfigMap."""
    result = render(
        {"redis": {"enabled": False}, "externalRedis": {"existingSecret": "queue-credentials"}}
    )
    (config,) = result.of_kind("ConfigMap")
    assert "HANDOFF_REDIS_URL" not in config["data"]
    refs = {
        where(doc, container): next(
            (
                env["valueFrom"]["secretKeyRef"]
                for env in container.get("env", [])
                if env["name"] == "HANDOFF_REDIS_URL"
            ),
            None,
        )
        for doc, pod in workloads(result.docs)
        for container in pod["containers"]  # the geo pod's init container never talks to Redis
    }
    expected = {"name": "queue-credentials", "key": "redis-url"}
    assert refs and all(ref == expected for ref in refs.values()), refs
    assert kubernetes_schema_problems(result.docs) == []


# --------------------------------------------------------------------------
# The checks themselves must fail on broken manifests


def _geo(docs: list[Manifest]) -> Manifest:
    return next(doc for doc in docs if doc["kind"] == "StatefulSet")


def _geo_pod(docs: list[Manifest]) -> dict[str, Any]:
    return _geo(docs)["spec"]["template"]["spec"]


def _container(docs: list[Manifest], name: str) -> dict[str, Any]:
    return next(c for c in _geo_pod(docs)["containers"] if c["name"] == name)


def _policy(docs: list[Manifest]) -> dict[str, Any]:
    return next(doc for doc in docs if doc["kind"] == "NetworkPolicy")["spec"]


def _set_literal_secret(docs: list[Manifest]) -> None:
    env = _container(docs, "geo")["env"]
    ref = next(e for e in env if e["name"] == "HANDOFF_GEO_SECRET")
    ref.pop("valueFrom")
    ref["value"] = "literal"


def _leak_into_config(docs: list[Manifest]) -> None:
    config = next(doc for doc in docs if doc["kind"] == "ConfigMap")
    config["data"]["HANDOFF_EXTRA"] = generated_secret_values(docs)[0]


BREAKAGES: dict[str, tuple[Callable[[list[Manifest]], None], Callable[[Rendered], list[str]]]] = {
    "two-geo-replicas": (
        lambda docs: _geo(docs)["spec"].update(replicas=2),
        lambda r: geo_replica_problems(r.docs, 1),
    ),
    "shared-uploads-claim": (
        lambda docs: _geo(docs)["spec"].pop("volumeClaimTemplates"),
        lambda r: geo_replica_problems(r.docs, 1),
    ),
    "replica-named-by-hand": (
        lambda docs: _replica_env(_container(docs, "gc")).update(
            {"value": "geo", "valueFrom": None}
        ),
        lambda r: replica_name_problems(r.docs, "geoprocessing"),
    ),
    "init-without-replica": (
        lambda docs: _geo_pod(docs)["initContainers"][0].pop("env"),
        lambda r: replica_name_problems(r.docs, "geoprocessing"),
    ),
    "worker-on-the-shared-queue": (
        lambda docs: _container(docs, "worker")["args"].append("geoprocessing"),
        lambda r: replica_name_problems(r.docs, "geoprocessing"),
    ),
    "replica-urls-miss-one": (
        lambda docs: _geo(docs)["spec"].update(replicas=2),
        lambda r: replica_url_problems(r.docs),
    ),
    "replica-urls-through-the-service": (
        lambda docs: next(
            e for d in docs if d["kind"] == "Deployment"
            for e in d["spec"]["template"]["spec"]["containers"][0].get("env", [])
            if e["name"] == "HANDOFF_GEO_REPLICA_URLS"
        ).update(value="handoff-geo-0=http://handoff-geo:8001"),
        lambda r: replica_url_problems(r.docs),
    ),
    "policy-by-pod-name": (
        lambda docs: _policy(docs)["podSelector"]["matchLabels"].update(
            {POD_NAME_LABEL: "handoff-geo-0"}
        ),
        lambda r: network_policy_problems(r.docs),
    ),
    "worker-without-uploads": (
        lambda docs: _container(docs, "worker")["volumeMounts"].pop(0),
        lambda r: uploads_mount_problems(r.docs, "scheduler"),
    ),
    "gc-container-missing": (
        lambda docs: _geo_pod(docs)["containers"].pop(),
        lambda r: uploads_mount_problems(r.docs, "scheduler"),
    ),
    "policy-open-to-all": (
        lambda docs: _policy(docs)["ingress"][0].update({"from": []}),
        lambda r: network_policy_problems(r.docs),
    ),
    "policy-admits-geo": (
        lambda docs: _policy(docs)["ingress"][0]["from"][0]["podSelector"]["matchLabels"].update(
            {COMPONENT: "geo"}
        ),
        lambda r: network_policy_problems(r.docs),
    ),
    "literal-secret": (_set_literal_secret, lambda r: secret_problems(r.docs, "handoff-secrets")),
    "webhook-secret-outside-the-worker": (
        lambda docs: _container(docs, "geo")["env"].append(
            {"name": WEBHOOK_SECRET_ENV, "valueFrom": {"secretKeyRef": {
                "name": "handoff-secrets", "key": "webhook-secret"}}}
        ),
        lambda r: webhook_secret_problems(r.docs, webhook_on=False),
    ),
    "secret-in-configmap": (
        _leak_into_config,
        lambda r: secret_problems(r.docs, "handoff-secrets"),
    ),
    "writable-root": (
        lambda docs: _container(docs, "gc")["securityContext"].update(readOnlyRootFilesystem=False),
        lambda r: hardening_problems(r.docs),
    ),
    "root-user": (
        lambda docs: _container(docs, "worker")["securityContext"].update(runAsUser=0),
        lambda r: hardening_problems(r.docs),
    ),
    "no-readiness": (
        lambda docs: _container(docs, "worker").pop("readinessProbe"),
        lambda r: hardening_problems(r.docs),
    ),
    "service-links": (
        lambda docs: _geo_pod(docs).update(enableServiceLinks=True),
        lambda r: hardening_problems(r.docs),
    ),
    "unknown-field": (
        lambda docs: _container(docs, "geo").update(livenesProbe={}),
        lambda r: kubernetes_schema_problems(r.docs),
    ),
    "short-grace": (
        lambda docs: _geo_pod(docs).update(terminationGracePeriodSeconds=30),
        lambda r: graceful_shutdown_problems(r.docs, r.merged),
    ),
}


@pytest.fixture(scope="module")
def defaults() -> Rendered:
    """The chart rendered with its default values."""
    return render({})


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_checks_catch_broken_manifests(defaults: Rendered, breakage: str) -> None:
    """Each property check passes on the chart and reports the broken copy."""
    breaks, check = BREAKAGES[breakage]
    assert check(defaults) == []
    broken = Rendered(defaults.values, defaults.merged, copy.deepcopy(defaults.docs))
    breaks(broken.docs)
    assert check(broken) != []


# --------------------------------------------------------------------------
# The image the chart runs


def test_image_runs_as_the_chart_user() -> None:
    """The Dockerfile's final stage runs as the same non-root uid the chart enforces."""
    text = (ROOT / "Dockerfile").read_text()
    stages = re.split(r"(?im)^FROM\s+", text)[1:]
    assert len(stages) >= 2, "expected a multi-stage build"
    final = stages[-1]
    assert final.split()[0] == "python:3.11-slim"
    users = re.findall(r"(?im)^USER\s+(\S+)", final)
    assert users and users[-1].split(":")[0] == "10001"
    values = helm.values_from_yaml((CHART / "values.yaml").read_text())
    assert values["securityContext"]["runAsUser"] == 10001


def test_web_probes_go_to_the_masters_health_port(rendered: Rendered) -> None:
    """The API's and the geo service's probes reach the port their gunicorn master answers on."""
    pods = [pod_template(doc) for doc in rendered.docs if doc["kind"] in WORKLOAD_KINDS]
    web = [c for pod in pods if pod for c in pod["spec"]["containers"]
           if c["name"] in ("api", "geo")]
    assert sorted(c["name"] for c in web) == ["api", "geo"]
    for container in web:
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert env["HANDOFF_HEALTH_PORT"] == str(ports["health"])
        for probe in ("livenessProbe", "readinessProbe"):
            assert container[probe]["httpGet"]["port"] == "health", (container["name"], probe)
