"""``make run``'s own choices, without starting it: defaults, folders, the ready line."""

from pathlib import Path

import pytest

from devstack import processes, seaweedfs
from devstack.stack import (
    embedded_bucket,
    embedded_container,
    geo_ports,
    health_ports,
    local_defaults,
    ready_line,
    replica_count,
    spare_ports,
    stack_folder,
)
from handoff.config import ConfigError, load_settings


def test_the_ready_line_names_every_address() -> None:
    settings = load_settings({"HANDOFF_API_PORT": "18000", "HANDOFF_GEO_PORT": "18001",
                              "HANDOFF_METRICS_HOST": "127.0.0.1",
                              "HANDOFF_WORKER_METRICS_PORT": "41001",
                              "HANDOFF_GC_METRICS_PORT": "41002",
                              "HANDOFF_UPLOADS_ROOT": "/srv/var/uploads"})
    line = ready_line(settings, {"api": 41003, "geo": 41004})
    assert line.startswith("handoff: ready on http://127.0.0.1:18000 ")
    assert "probes: api http://127.0.0.1:41003/healthz, geo http://127.0.0.1:41004/healthz" in line
    assert "geo http://127.0.0.1:18001" in line
    assert "worker http://127.0.0.1:41001/metrics" in line
    assert "sweeper http://127.0.0.1:41002/metrics" in line
    assert "/srv/var/uploads" in line


def test_the_ready_line_names_an_object_store_instead_of_a_folder() -> None:
    settings = load_settings({"HANDOFF_STORE_URL": "az://handoff/dev",
                              "HANDOFF_UPLOADS_ROOT": "/srv/var/uploads"})
    line = ready_line(settings, {})
    assert line.endswith("uploads in az://handoff/dev)")


@pytest.mark.parametrize(("given", "container"), [
    ({"HANDOFF_STORE_URL": "az://handoff/dev"}, "handoff"),
    ({"HANDOFF_STORE_URL": "az://handoff", "AZURE_STORAGE_CONNECTION_STRING": ""}, "handoff"),
    ({"HANDOFF_STORE_URL": "az://handoff", "AZURE_STORAGE_CONNECTION_STRING": "x"}, None),
    ({"HANDOFF_STORE_URL": "az://handoff", "AZURE_STORAGE_ACCOUNT": "mine"}, None),
    ({"HANDOFF_STORE_URL": "s3://handoff"}, None),
    ({}, None),
])
def test_azurite_serves_an_az_store_only_when_no_account_is_given(
        given: dict[str, str], container: str | None) -> None:
    assert embedded_container(load_settings(given), given) == container


def test_the_ready_line_says_which_metrics_are_off() -> None:
    settings = load_settings({"HANDOFF_WORKER_METRICS_PORT": "0", "HANDOFF_METRICS_HOST": "::1"})
    line = ready_line(settings, {"api": 41003, "geo": 41004})
    assert "worker off" in line
    assert "sweeper http://[::1]:9192/metrics" in line


def test_unset_metrics_get_loopback_and_two_free_ports() -> None:
    chosen = local_defaults({"HANDOFF_GC_METRICS_PORT": ""})
    assert chosen["HANDOFF_METRICS_HOST"] == "127.0.0.1"
    ports = {chosen["HANDOFF_WORKER_METRICS_PORT"], chosen["HANDOFF_GC_METRICS_PORT"]}
    assert len(ports) == 2
    assert all(0 < int(port) < 65536 for port in ports)


def test_settings_given_are_kept() -> None:
    given = {"HANDOFF_METRICS_HOST": "0.0.0.0", "HANDOFF_WORKER_METRICS_PORT": "9191",
             "HANDOFF_GC_METRICS_PORT": "0", "HANDOFF_GRACEFUL_TIMEOUT": "1h"}
    assert local_defaults(given) == {}


def test_uploads_in_flight_get_a_short_grace_unless_told() -> None:
    settings = load_settings(local_defaults({}))
    assert settings.graceful_timeout == 10.0


def test_each_stack_keeps_its_files_in_var_under_its_api_port_wherever_the_uploads_go(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    elsewhere = tmp_path / "disk" / "uploads"
    first = load_settings({"HANDOFF_UPLOADS_ROOT": str(elsewhere), "HANDOFF_API_PORT": "18000"})
    second = load_settings({"HANDOFF_UPLOADS_ROOT": str(elsewhere), "HANDOFF_API_PORT": "18100"})
    assert stack_folder(first, "valkey") == tmp_path / "var" / "valkey" / "18000"
    assert stack_folder(second, "valkey") != stack_folder(first, "valkey")


def test_replicas_take_the_geo_port_and_the_ones_after_it() -> None:
    settings = load_settings({"HANDOFF_API_PORT": "18000", "HANDOFF_GEO_PORT": "18001"})
    assert geo_ports(settings, 1) == [18001]
    assert geo_ports(settings, 3) == [18001, 18002, 18003]


@pytest.mark.parametrize("given", [{"HANDOFF_API_PORT": "18002", "HANDOFF_GEO_PORT": "18001"},
                                   {"HANDOFF_HEALTH_PORT": "18003", "HANDOFF_GEO_PORT": "18001"},
                                   {"HANDOFF_GEO_PORT": "65534"}])
def test_replica_ports_that_collide_or_overflow_are_refused(given: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="HANDOFF_GEO_PORT"):
        geo_ports(load_settings(given), 3)


def test_health_ports_only_when_asked_and_one_each() -> None:
    assert health_ports(load_settings({}), {"geo": 41005}) == {}
    given = health_ports(load_settings({"HANDOFF_HEALTH_PORT": "18080"}), {"geo": 41005})
    assert given == {"api": 18080, "geo": 41005}
    assert "probes: off" in ready_line(load_settings({}), {})


def test_spare_ports_are_distinct_and_never_the_apis_health_port() -> None:
    settings = load_settings({"HANDOFF_HEALTH_PORT": "18080"})
    for _ in range(20):
        ports = spare_ports(settings, 2, reserved=[18001])
        assert len(set(ports)) == 2 and not {18080, 18001} & set(ports)


def test_one_geo_replica_unless_asked_for_more() -> None:
    assert replica_count({}) == 1
    assert replica_count({"HANDOFF_GEO_REPLICAS": "3"}) == 3
    with pytest.raises(ConfigError, match="HANDOFF_GEO_REPLICAS"):
        replica_count({"HANDOFF_GEO_REPLICAS": "0"})


def test_the_ready_line_lists_each_replica() -> None:
    settings = load_settings({"HANDOFF_API_PORT": "18000", "HANDOFF_METRICS_HOST": "127.0.0.1"})
    replicas = [(f"geo-{i}", f"http://127.0.0.1:1810{i}",
                 {"geo": 18100 + i, "worker_metrics": 18200 + i, "gc_metrics": 18300 + i})
                for i in range(2)]
    line = ready_line(settings, {}, replicas)
    assert "geo replicas geo-0 http://127.0.0.1:18100, geo-1 http://127.0.0.1:18101;" in line
    assert "geo-1 worker http://127.0.0.1:18201/metrics sweeper http://127.0.0.1:18301" in line


def test_each_replica_runs_its_own_parts_on_its_own_ports(tmp_path: Path) -> None:
    stack = processes.LocalStack(tmp_path, {"HANDOFF_QUEUE": "jobs"}, {"api": 18000})
    ports = [{"geo": 18100 + i, "worker_metrics": 18200 + i, "gc_metrics": 18300 + i}
             for i in range(2)]
    assert stack.add_replicas(ports) == [("geo-0", "http://127.0.0.1:18100"),
                                         ("geo-1", "http://127.0.0.1:18101")]
    assert stack.components(("redis", "geo", "worker", "gc", "api")) == [
        "redis", "geo-0", "geo-1", "worker-0", "worker-1", "gc-0", "gc-1", "api"]
    assert stack.environment("api")["HANDOFF_GEO_REPLICA_URLS"] == (
        "geo-0=http://127.0.0.1:18100,geo-1=http://127.0.0.1:18101")
    worker = stack.environment("worker-1")
    assert worker["HANDOFF_REPLICA"] == "geo-1"
    assert worker["HANDOFF_WORKER_METRICS_PORT"] == "18201"
    assert processes.worker_queues(worker)[0] == "jobs.geo-1"
    assert stack.environment("gc-0")["HANDOFF_GC_METRICS_PORT"] == "18300"


def test_with_a_shared_store_every_replica_s_worker_takes_the_one_queue(tmp_path: Path) -> None:
    stack = processes.LocalStack(tmp_path, {"HANDOFF_QUEUE": "jobs",
                                            "HANDOFF_STORE_URL": "s3://uploads"}, {"api": 18000})
    stack.add_replicas([{"geo": 18100 + i, "worker_metrics": 18200 + i, "gc_metrics": 18300 + i}
                        for i in range(2)])
    assert {processes.worker_queues(stack.environment(f"worker-{i}"))[0]
            for i in range(2)} == {"jobs"}


def test_without_replicas_the_parts_are_the_single_ones(tmp_path: Path) -> None:
    stack = processes.LocalStack(tmp_path, {"HANDOFF_QUEUE": "jobs"}, {"api": 18000})
    assert stack.components(("geo", "worker", "api")) == ["geo", "worker", "api"]
    assert processes.worker_queues(stack.environment("worker"))[0] == "jobs"


@pytest.mark.parametrize(("environ", "bucket"), [
    ({"HANDOFF_STORE_URL": "s3://dev-bucket/uploads"}, "dev-bucket"),
    ({"HANDOFF_STORE_URL": "s3://dev-bucket", "AWS_ENDPOINT_URL_S3": "http://minio:9000"}, None),
    ({"HANDOFF_STORE_URL": "s3://dev-bucket", "AWS_PROFILE": "prod"}, None),
    ({"HANDOFF_STORE_URL": "file:///srv/uploads"}, None),
    ({}, None),
])
def test_an_embedded_seaweedfs_serves_an_s3_store_only_when_none_is_configured(
        environ: dict[str, str], bucket: str | None) -> None:
    assert embedded_bucket(load_settings(environ), environ) == bucket


def test_seaweedfs_binds_loopback_only_on_ports_of_its_own(tmp_path: Path) -> None:
    argv = seaweedfs.argv(tmp_path, 18333)
    ports = [arg.split("=")[1] for arg in argv if ".port" in arg and arg.split("=")[1] != "0"]
    assert "-ip.bind=127.0.0.1" in argv and "-s3.port=18333" in argv
    assert len(set(ports)) == len(ports) == 10
    assert seaweedfs.environment(18333)["AWS_ENDPOINT_URL_S3"] == "http://127.0.0.1:18333"
