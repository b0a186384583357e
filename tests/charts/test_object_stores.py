"""The chart on an object store (store.kind s3 or azure), rendered offline.

With a bucket or container every pod reaches, the geo tier holds nothing of
its own: it is a Deployment behind one Service, the workers are a Deployment
of their own on the one job queue, one sweeper sweeps the store, and nothing
mounts a volume claim. The checks below render the chart as ``helm install``
would (test_chart's ``render``), validate every object against Kubernetes'
schemas, and load each process's environment with the services' own config
loader.
"""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest

from handoff.config import load_settings
from handoff.units import parse_size
from tests.charts.test_chart import (
    CHART,
    COMPONENT,
    RELEASE,
    Manifest,
    Rendered,
    containers,
    graceful_shutdown_problems,
    hardening_problems,
    kubernetes_schema_problems,
    labels,
    load_values,
    pod_template,
    render,
    secret_problems,
    selects,
    where,
    workloads,
)
from tests.charts.test_schema_matches_config import process_environments

S3 = {"store": {"kind": "s3", "url": "s3://uploads/handoff"}}
AZURE = {"store": {"kind": "azure", "url": "az://uploads/handoff",
                   "azure": {"existingSecret": "blob-credentials"}}}
STORE_PARTS = ("geo", "worker", "gc")
STORE_ENV = ("AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
             "AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT")
QUANTITY_UNITS = {"Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def merge(base: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``more`` laid over it, nested mappings merged as Helm merges values."""
    merged = dict(base)
    for key, value in more.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@pytest.fixture(scope="module", params=["s3-store.yaml", "azure-store.yaml", "inline-s3",
                                        "inline-azure"])
def rendered(request: pytest.FixtureRequest) -> Rendered:
    """The example values files for each store kind, and the least values each needs."""
    inline: dict[str, dict[str, Any]] = {"inline-s3": S3, "inline-azure": AZURE}
    return render(inline.get(request.param) or load_values(request.param))


def part(rendered: Rendered, component: str) -> Manifest:
    """The one workload of ``component``."""
    (doc,) = [doc for doc, _ in workloads(rendered.docs)
              if labels(pod_template(doc) or {}).get(COMPONENT) == component]
    return doc


def pod(doc: Manifest) -> dict[str, Any]:
    return (pod_template(doc) or {})["spec"]


def container_env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container.get("env") or []}


def only_container(doc: Manifest) -> dict[str, Any]:
    (container,) = pod(doc)["containers"]
    return container


# --------------------------------------------------------------------------
# Every object store rendering


def test_objects_are_valid_kubernetes(rendered: Rendered) -> None:
    assert rendered.docs
    assert kubernetes_schema_problems(rendered.docs) == []


def test_lint_is_clean(rendered: Rendered) -> None:
    report = helm.lint(CHART, rendered.values, strict=True)
    assert report["errors"] == [] and [m for m in report["messages"] if m["severity"] >= 2] == []


def test_containers_are_hardened_and_probed(rendered: Rendered) -> None:
    assert hardening_problems(rendered.docs) == []
    assert graceful_shutdown_problems(rendered.docs, rendered.merged) == []


def test_the_geo_tier_is_a_deployment_without_claims(rendered: Rendered) -> None:
    """No StatefulSet, no claim anywhere: the uploads are in the bucket."""
    assert rendered.of_kind("StatefulSet") == [] and rendered.of_kind("PersistentVolumeClaim") == []
    geo = part(rendered, "geo")
    assert geo["kind"] == "Deployment" and "volumeClaimTemplates" not in geo["spec"]
    assert [c["name"] for c in pod(geo)["containers"]] == ["geo"]
    assert "initContainers" not in pod(geo)
    for doc, spec in workloads(rendered.docs):
        claims = [v for v in spec.get("volumes", []) if "persistentVolumeClaim" in v]
        assert claims == [], where(doc)
    merged = rendered.merged["geo"]
    expected = None if merged["autoscaling"]["enabled"] else merged["replicas"]
    assert geo["spec"].get("replicas") == expected


def test_the_api_reaches_the_geo_pods_through_one_service(rendered: Rendered) -> None:
    """Any geo pod serves any upload: the API has the Service's address, no replica list."""
    api = container_env(only_container(part(rendered, "api")))
    assert "HANDOFF_GEO_REPLICA_URLS" not in api and "HANDOFF_GEO_DRAINING" not in api
    geo = part(rendered, "geo")
    (service,) = rendered.component("Service", "geo")
    assert service["spec"].get("clusterIP") != "None"
    assert selects({"matchLabels": service["spec"]["selector"]},
                   geo["spec"]["template"]["metadata"]["labels"])
    (port,) = service["spec"]["ports"]
    assert api["HANDOFF_GEO_URL"]["value"] == f"http://{service['metadata']['name']}:{port['port']}"
    assert port["targetPort"] in {p["name"] for p in only_container(geo)["ports"]}


def test_the_workers_take_the_one_queue_apart_from_the_geo_pods(rendered: Rendered) -> None:
    worker = part(rendered, "worker")
    assert worker["kind"] == "Deployment"
    assert worker["spec"]["replicas"] == rendered.merged["worker"]["replicas"]
    args = only_container(worker)["args"]
    assert args[args.index("--queues") + 1:] == [rendered.merged["config"]["queue"],
                                                rendered.merged["hooks"]["webhook"]["queue"]]
    for doc, spec in workloads(rendered.docs):
        for container in containers(spec):
            assert "HANDOFF_REPLICA" not in container_env(container), where(doc, container)


def test_the_workers_scratch_is_an_emptydir_they_keep_within(rendered: Rendered) -> None:
    worker = part(rendered, "worker")
    env = process_environments(rendered)["Deployment/worker"]
    settings = load_settings(env)
    (mount,) = [m for m in only_container(worker)["volumeMounts"]
                if m["mountPath"] == str(settings.scratch_dir)]
    (volume,) = [v for v in pod(worker)["volumes"] if v["name"] == mount["name"]]
    size = volume["emptyDir"]["sizeLimit"]
    assert settings.scratch_limit == int(size[:-2]) * QUANTITY_UNITS[size[-2:]]
    assert settings.scratch_limit == parse_size(rendered.merged["worker"]["scratch"]["sizeLimit"]
                                                + "B")


def test_the_sweeper_runs_against_the_store(rendered: Rendered) -> None:
    """One sweeper (a Deployment, or a CronJob anywhere), with the store's settings, no volume."""
    gc = part(rendered, "gc")
    spec = pod(gc)
    if rendered.merged["gc"]["mode"] == "cronjob":
        assert gc["kind"] == "CronJob" and "affinity" not in spec
    else:
        assert gc["kind"] == "Deployment" and gc["spec"]["replicas"] == 1
        assert gc["spec"]["strategy"]["type"] == "Recreate"
    assert [v for v in spec["volumes"] if "emptyDir" not in v] == []
    assert [c["name"] for c in rendered.component("Deployment", "geo")[0]["spec"]["template"][
        "spec"]["containers"]] == ["geo"]


def test_every_part_loads_the_store_from_its_environment(rendered: Rendered) -> None:
    """HANDOFF_STORE_URL reaches every process, and its config loader takes it."""
    found = process_environments(rendered)
    assert {"Deployment/api", "Deployment/geo", "Deployment/worker"} <= set(found)
    assert {"Deployment/gc", "CronJob/gc"} & set(found)
    for where_, env in found.items():
        settings = load_settings(env)
        assert str(settings.store_url) == rendered.merged["store"]["url"], where_
        assert settings.shared_store, where_
        assert settings.job_queue == rendered.merged["config"]["queue"], where_


def test_only_the_parts_that_reach_the_store_get_its_settings(rendered: Rendered) -> None:
    """geo, worker and sweeper all get the same SDK settings; the API and Redis none."""
    given: dict[str, list[dict[str, Any]]] = {}
    for doc, spec in workloads(rendered.docs):
        component = labels(pod_template(doc) or {}).get(COMPONENT)
        for container in containers(spec):
            store_env = [item for item in container.get("env") or [] if item["name"] in STORE_ENV]
            if component in STORE_PARTS:
                given[where(doc, container)] = store_env
            else:
                assert store_env == [], where(doc, container)
    assert len(given) == len(STORE_PARTS)
    assert all(env == next(iter(given.values())) for env in given.values()), given


def test_secrets_come_from_secret_refs(rendered: Rendered) -> None:
    assert secret_problems(rendered.docs, f"{RELEASE}-secrets") == []
    for doc, spec in workloads(rendered.docs):
        for container in containers(spec):
            for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                         "AZURE_STORAGE_CONNECTION_STRING"):
                item = container_env(container).get(name)
                assert item is None or "secretKeyRef" in item["valueFrom"], where(doc, container)


def test_every_pod_runs_as_the_charts_service_account(rendered: Rendered) -> None:
    (account,) = rendered.of_kind("ServiceAccount")
    assert account["automountServiceAccountToken"] is False
    for doc, spec in workloads(rendered.docs):
        if labels(pod_template(doc) or {}).get(COMPONENT) != "redis":
            assert spec["serviceAccountName"] == account["metadata"]["name"], where(doc)


def test_the_parts_that_reach_the_store_may_reach_it_and_little_else(rendered: Rendered) -> None:
    for component in STORE_PARTS:
        pod_labels = (pod_template(part(rendered, component)) or {})["metadata"]["labels"]
        (policy,) = [doc for doc in rendered.of_kind("NetworkPolicy")
                     if "Egress" in doc["spec"]["policyTypes"]
                     and selects(doc["spec"]["podSelector"], pod_labels)]
        rules = policy["spec"]["egress"]
        ports = [[(p["protocol"], p["port"]) for p in rule["ports"]] for rule in rules]
        assert ports[0] == [("UDP", 53), ("TCP", 53)]
        assert ports[1] == [("TCP", 6379)]
        assert rules[1]["to"][0]["podSelector"]["matchLabels"][COMPONENT] == "redis"
        assert ports[2] == [("TCP", 443 if not rendered.merged["store"]["s3"]["endpoint"]
                             else 9000)]
        assert len(rules) == 3


def test_api_pods_only_reach_the_geo_pods(rendered: Rendered) -> None:
    (policy,) = [doc for doc in rendered.of_kind("NetworkPolicy")
                 if doc["metadata"]["name"] == f"{RELEASE}-geo"]
    (rule,) = policy["spec"]["ingress"]
    assert [peer["podSelector"]["matchLabels"][COMPONENT] for peer in rule["from"]] == ["api"]


# --------------------------------------------------------------------------
# Choices within an object store


def test_the_autoscaler_appears_only_when_enabled() -> None:
    assert render(S3).of_kind("HorizontalPodAutoscaler") == []
    values = merge(S3, {"geo": {"autoscaling": {"enabled": True, "minReplicas": 3,
                                                "maxReplicas": 9}}})
    result = render(values)
    (hpa,) = result.of_kind("HorizontalPodAutoscaler")
    geo = part(result, "geo")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": geo["metadata"]["name"]}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 9)
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["target"]["averageUtilization"] == 70
    assert "replicas" not in geo["spec"]
    (budget,) = result.component("PodDisruptionBudget", "geo")
    assert budget["spec"]["selector"] == geo["spec"]["selector"]


def test_an_autoscaler_that_cannot_scale_is_refused() -> None:
    values = merge(S3, {"geo": {"autoscaling": {"enabled": True, "minReplicas": 5,
                                                "maxReplicas": 2}}})
    with pytest.raises(helm.HelmRenderError, match="minReplicas"):
        render(values)


def test_one_geo_pod_has_no_disruption_budget_several_do() -> None:
    assert render(S3).component("PodDisruptionBudget", "geo") == []
    (budget,) = render(merge(S3, {"geo": {"replicas": 3}})).component("PodDisruptionBudget", "geo")
    assert budget["spec"]["maxUnavailable"] == 1


def test_the_sweeper_may_be_a_cronjob_with_several_geo_pods() -> None:
    result = render(merge(S3, {"geo": {"replicas": 3}, "gc": {"mode": "cronjob"}}))
    (job,) = result.of_kind("CronJob")
    assert result.component("Deployment", "gc") == []
    spec = pod(job)
    assert "affinity" not in spec and "HANDOFF_REPLICA" not in container_env(only_container(job))


def test_s3_access_key_comes_from_the_existing_secret() -> None:
    values = merge(S3, {"store": {"s3": {"existingSecret": "s3-keys", "region": "eu-west-1",
                                         "endpoint": "http://minio.storage:9000"}}})
    result = render(values)
    for component in STORE_PARTS:
        for container in containers(pod(part(result, component))):
            env = container_env(container)
            assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {
                "name": "s3-keys", "key": "AWS_ACCESS_KEY_ID"}
            assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {
                "name": "s3-keys", "key": "AWS_SECRET_ACCESS_KEY"}
            assert env["AWS_REGION"]["value"] == "eu-west-1"
            assert env["AWS_ENDPOINT_URL_S3"]["value"] == "http://minio.storage:9000"
    (account,) = result.of_kind("ServiceAccount")
    assert "annotations" not in account["metadata"]


def test_s3_workload_identity_is_the_service_accounts_role() -> None:
    arn = "arn:aws:iam::123456789012:role/handoff-uploads"
    result = render(merge(S3, {"store": {"s3": {"roleArn": arn}}}))
    (account,) = result.of_kind("ServiceAccount")
    assert account["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": arn}
    for component in STORE_PARTS:
        env = container_env(only_container(part(result, component)))
        assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & set(env)
        assert pod(part(result, component))["serviceAccountName"] == account["metadata"]["name"]


def test_azure_connection_string_comes_from_the_existing_secret() -> None:
    result = render(AZURE)
    for component in STORE_PARTS:
        doc = part(result, component)
        env = container_env(only_container(doc))
        assert env["AZURE_STORAGE_CONNECTION_STRING"]["valueFrom"]["secretKeyRef"] == {
            "name": "blob-credentials", "key": "AZURE_STORAGE_CONNECTION_STRING"}
        assert "AZURE_STORAGE_ACCOUNT" not in env
        assert "azure.workload.identity/use" not in (pod_template(doc) or {})["metadata"]["labels"]


def test_azure_workload_identity_labels_the_pods_and_annotates_the_account() -> None:
    client_id = "00000000-1111-2222-3333-444444444444"
    result = render(merge(AZURE, {"store": {"azure": {"existingSecret": "",
                                                      "account": "handoffstore",
                                                      "clientId": client_id}}}))
    (account,) = result.of_kind("ServiceAccount")
    assert account["metadata"]["annotations"] == {"azure.workload.identity/client-id": client_id}
    for component in STORE_PARTS:
        doc = part(result, component)
        env = container_env(only_container(doc))
        assert env["AZURE_STORAGE_ACCOUNT"]["value"] == "handoffstore"
        assert "AZURE_STORAGE_CONNECTION_STRING" not in env
        assert (pod_template(doc) or {})["metadata"]["labels"][
            "azure.workload.identity/use"] == "true"
    assert "azure.workload.identity/use" not in (pod_template(part(result, "api")) or {})[
        "metadata"]["labels"]


def test_an_existing_service_account_is_used_as_it_is() -> None:
    result = render(merge(S3, {"serviceAccount": {"create": False, "name": "uploads-identity"}}))
    assert result.of_kind("ServiceAccount") == []
    assert pod(part(result, "geo"))["serviceAccountName"] == "uploads-identity"


def _egress_of(result: Rendered, component: str) -> list[dict[str, Any]]:
    (policy,) = [doc for doc in result.of_kind("NetworkPolicy")
                 if doc["metadata"]["name"] == f"{RELEASE}-{component}-egress"]
    rules: list[dict[str, Any]] = policy["spec"]["egress"]
    return rules


def test_store_egress_goes_to_the_cidrs_given() -> None:
    cidrs = ["10.20.0.0/16", "2001:db8::/32"]
    result = render(merge(S3, {"store": {"egress": cidrs}}))
    for component in STORE_PARTS:
        store_rule = _egress_of(result, component)[2]
        assert store_rule["to"] == [{"ipBlock": {"cidr": cidr}} for cidr in cidrs]
        assert store_rule["ports"] == [{"protocol": "TCP", "port": 443}]


def test_the_worker_alone_may_reach_the_webhook() -> None:
    values = merge(S3, {"hooks": {"webhook": {"url": "http://app.example:8080/hooks"}}})
    result = render(values)
    assert _egress_of(result, "worker")[3] == {"ports": [{"protocol": "TCP", "port": 8080}]}
    assert len(_egress_of(result, "geo")) == len(_egress_of(result, "gc")) == 3


def test_extra_egress_and_an_external_redis_port_reach_every_store_part() -> None:
    extra = [{"to": [{"ipBlock": {"cidr": "169.254.169.254/32"}}],
              "ports": [{"protocol": "TCP", "port": 80}]}]
    values = merge(S3, {"networkPolicy": {"extraEgress": extra}, "redis": {"enabled": False},
                        "externalRedis": {"url": "rediss://cache.example:6380/0"}})
    result = render(values)
    assert kubernetes_schema_problems(result.docs) == []
    for component in STORE_PARTS:
        rules = _egress_of(result, component)
        assert rules[1] == {"ports": [{"protocol": "TCP", "port": 6380}]}
        assert rules[-1:] == extra


def test_the_volume_store_has_no_egress_policy() -> None:
    """Nothing changes for a volume: its pods reach no store over the network."""
    result = render({})
    assert [doc for doc in result.of_kind("NetworkPolicy")
            if "Egress" in doc["spec"]["policyTypes"]] == []
    assert result.of_kind("HorizontalPodAutoscaler") == []


# --------------------------------------------------------------------------
# Values the schema refuses


@pytest.mark.parametrize(("values", "expected"), [
    pytest.param({"store": {"kind": "s3"}}, "/store/url", id="s3-without-url"),
    pytest.param({"store": {"kind": "s3", "url": "az://uploads"}}, "/store/url", id="s3-az-url"),
    pytest.param({"store": {"kind": "azure", "url": "s3://uploads",
                            "azure": {"account": "handoffstore"}}}, "/store/url",
                 id="azure-s3-url"),
    pytest.param({"store": {"kind": "volume", "url": "s3://uploads"}}, "/store/url",
                 id="volume-with-url"),
    pytest.param({"store": {"kind": "gcs", "url": "gs://uploads"}}, "/store/kind", id="kind"),
    pytest.param({"store": {"kind": "s3", "url": "s3://Uploads"}}, "/store/url",
                 id="bucket-upper-case"),
    pytest.param({"store": {"kind": "azure", "url": "az://uploads"}}, "/store/azure",
                 id="azure-without-credentials"),
    pytest.param({"geo": {"autoscaling": {"enabled": True}}}, "/geo/autoscaling/enabled",
                 id="autoscaling-a-volume"),
    pytest.param(merge(S3, {"geo": {"replicas": 2, "draining": [1]}}), "/geo/draining",
                 id="draining-an-object-store"),
    pytest.param(merge(S3, {"store": {"egress": ["anywhere"]}}), "/store/egress/0",
                 id="egress-not-a-cidr"),
    pytest.param(merge(S3, {"worker": {"scratch": {"sizeLimit": "20G"}}}),
                 "/worker/scratch/sizeLimit", id="scratch-decimal-unit"),
    pytest.param(merge(S3, {"store": {"s3": {"roleArn": "handoff"}}}), "/store/s3/roleArn",
                 id="role-not-an-arn"),
])
def test_wrong_store_values_are_refused(values: dict[str, Any], expected: str) -> None:
    with pytest.raises(helm.HelmValuesError) as caught:
        render(values)
    assert expected in str(caught.value)
