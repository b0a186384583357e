"""The configuration loader, fed a plain dict instead of the process environment."""

import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest

from handoff.auth import Credential
from handoff.config import (
    PREFIX,
    ConfigError,
    Settings,
    StoreUrl,
    load_or_exit,
    load_settings,
    variable,
)
from handoff.units import GiB

# variable suffix -> (Settings field, a value to set, what it parses to)
VALID: dict[str, tuple[str, str, Any]] = {
    "API_PORT": ("api_port", "9000", 9000),
    "GEO_PORT": ("geo_port", "9001", 9001),
    "GEO_URL": ("geo_url", "http://geo.internal:8080/", "http://geo.internal:8080"),
    "GEO_SECRET": ("geo_secret", " s3cret ", " s3cret "),
    "API_TOKENS": ("api_tokens", " alice:t1, bob : t2 ,,", (Credential("alice", "t1"),
                                                          Credential("bob", "t2"))),
    "REDIS_URL": ("redis_url", "redis://localhost:6379/2", "redis://localhost:6379/2"),
    "QUEUE": ("queue", "geo-high", "geo-high"),
    "UPLOADS_ROOT": ("uploads_root", "/srv/uploads", Path("/srv/uploads")),
    "STORE_URL": ("store_url", "s3://handoff-uploads/eu/one",
                  StoreUrl("s3", "handoff-uploads", "eu/one")),
    "SCRATCH_DIR": ("scratch_dir", "/scratch", Path("/scratch")),
    "SCRATCH_LIMIT": ("scratch_limit", "20GiB", 20 * GiB),
    "MAX_UPLOAD_SIZE": ("max_upload_size", "5GiB", 5 * GiB),
    "MAX_FILE_SIZE": ("max_file_size", "2GiB", 2 * GiB),
    "MAX_FORM_FIELDS_SIZE": ("max_form_fields_size", "64KiB", 64 * 1024),
    "MAX_FILES": ("max_files", "20", 20),
    "MAX_PART_HEADER_SIZE": ("max_part_header_size", "4KiB", 4096),
    "MAX_PART_HEADERS": ("max_part_headers", "8", 8),
    "MAX_PREAMBLE_SIZE": ("max_preamble_size", "1KiB", 1024),
    "MAX_EPILOGUE_SIZE": ("max_epilogue_size", "2KiB", 2048),
    "RELAY_CHUNK_SIZE": ("relay_chunk_size", "256KiB", 256 * 1024),
    "GEO_CONNECT_TIMEOUT": ("geo_connect_timeout", "500ms", 0.5),
    "GEO_READ_TIMEOUT": ("geo_read_timeout", "15m", 900.0),
    "CLIENT_TIMEOUT": ("client_timeout", "90", 90.0),
    "CLIENT_MIN_RATE": ("client_min_rate", "500B", 500),
    "CLIENT_RATE_WINDOW": ("client_rate_window", "1m", 60.0),
    "MAX_ACTIVE_UPLOADS": ("max_active_uploads", "100", 100),
    "WEB_WORKERS": ("web_workers", "4", 4),
    "WEB_THREADS": ("web_threads", "64", 64),
    "WEB_CONNECTIONS": ("web_connections", "4000", 4000),
    "WEB_WORKER_CLASS": ("web_worker_class", "gthread", "gthread"),
    "GRACEFUL_TIMEOUT": ("graceful_timeout", "10m", 600.0),
    "ORPHAN_TTL": ("orphan_ttl", "2h", 7200.0),
    "PARTIAL_TTL": ("partial_ttl", "30m", 1800.0),
    "RETENTION": ("retention", "7d", 7 * 86400.0),
    "GC_INTERVAL": ("gc_interval", "1m", 60.0),
    "REQUEUE_AFTER": ("requeue_after", "2m", 120.0),
    "MAX_REQUEUES": ("max_requeues", "5", 5),
    "METRICS_HOST": ("metrics_host", "127.0.0.1", "127.0.0.1"),
    "WORKER_METRICS_PORT": ("worker_metrics_port", "9301", 9301),
    "GC_METRICS_PORT": ("gc_metrics_port", "9300", 9300),
    "METRICS_DIR": ("metrics_dir", "/dev/shm/handoff-api", Path("/dev/shm/handoff-api")),
    "HEARTBEAT_DIR": ("heartbeat_dir", "/run/handoff", Path("/run/handoff")),
    "PROBE_MAX_AGE": ("probe_max_age", "10m", 600.0),
    "BROKER_HEARTBEAT_TIMEOUT": ("broker_heartbeat_timeout", "90s", 90.0),
    "BROKER_MAINTENANCE_CHANCE": ("broker_maintenance_chance", "50", 50),
    "JOB_MAX_RETRIES": ("job_max_retries", "0", 0),
    "JOB_MIN_BACKOFF": ("job_min_backoff", "2s", 2.0),
    "PROCESSOR_MEMORY_LIMIT": ("processor_memory_limit", "512MiB", 512 * 1024**2),
    "PROCESSOR_TIME_LIMIT": ("processor_time_limit", "10m", 600.0),
    "ON_FINISH_ACTOR": ("on_finish_actor", "upload_finished", "upload_finished"),
    "ON_FINISH_QUEUE": ("on_finish_queue", "app.events", "app.events"),
    "WEBHOOK_URL": ("webhook_url", "https://app.example/hooks?k=1", "https://app.example/hooks?k=1"),
    "WEBHOOK_SECRET": ("webhook_secret", "whsec", "whsec"),
    "WEBHOOK_QUEUE": ("webhook_queue", "hooks_out", "hooks_out"),
    "WEBHOOK_TIMEOUT": ("webhook_timeout", "3s", 3.0),
    "WEBHOOK_MAX_RETRIES": ("webhook_max_retries", "0", 0),
    "WEBHOOK_MIN_BACKOFF": ("webhook_min_backoff", "2s", 2.0),
    "WEBHOOK_MAX_BACKOFF": ("webhook_max_backoff", "30m", 1800.0),
    "LOG_LEVEL": ("log_level", "debug", "DEBUG"),
    "HEALTH_PORT": ("health_port", "8080", 8080),
    "CORS_ORIGINS": ("cors_origins", "https://app.example:8443, http://127.0.0.1:3000",
                     ("https://app.example:8443", "http://127.0.0.1:3000")),
    "REPLICA": ("replica", "geo-0", "geo-0"),
    "GEO_REPLICA_URLS": ("geo_replica_urls", " geo-0=http://10.0.0.1:8001/, geo-1=https://g1 ,",
                         (("geo-0", "http://10.0.0.1:8001"), ("geo-1", "https://g1"))),
    # a draining name must be listed: see test_draining_names_listed_replicas
    "GEO_DRAINING": ("geo_draining", " , ", frozenset()),
}

INVALID: list[tuple[str, str]] = [
    ("STORE_URL", "http://bucket"),
    ("STORE_URL", "s3://Upper/x"),
    ("STORE_URL", "s3://ok-bucket/../x"),
    ("STORE_URL", "az://ok-container/x?sig=1"),
    ("STORE_URL", "file://host/x"),
    ("SCRATCH_LIMIT", "-1"),
    ("API_PORT", "http"),
    ("REPLICA", "Geo-0"),
    ("REPLICA", "-geo"),
    ("REPLICA", "geo_0"),
    ("REPLICA", "g" * 64),
    ("GEO_REPLICA_URLS", "geo-0"),
    ("GEO_REPLICA_URLS", "geo-0=ftp://x"),
    ("GEO_REPLICA_URLS", "GEO=http://x"),
    ("GEO_REPLICA_URLS", "geo-0=http://a,geo-0=http://b"),
    ("GEO_DRAINING", "Geo-0"),
    ("API_PORT", "0"),
    ("API_PORT", "65536"),
    ("GEO_PORT", "-1"),
    ("GC_METRICS_PORT", "99999"),
    ("GC_METRICS_PORT", "-1"),
    ("WORKER_METRICS_PORT", "65536"),
    ("WORKER_METRICS_PORT", "off"),
    ("HEALTH_PORT", "70000"),
    ("PROBE_MAX_AGE", "a while"),
    ("PROBE_MAX_AGE", "0"),
    ("PROBE_MAX_AGE", "-5m"),
    ("METRICS_HOST", "local host"),
    ("METRICS_HOST", "http://127.0.0.1"),
    ("METRICS_HOST", "127.0.0.1:9191"),
    ("GEO_PORT", "80.5"),
    ("MAX_UPLOAD_SIZE", "0"),
    ("MAX_UPLOAD_SIZE", "5 parsecs"),
    ("MAX_FILE_SIZE", "-1GiB"),
    ("MAX_FORM_FIELDS_SIZE", "0KiB"),
    ("MAX_FILES", "0"),
    ("MAX_FILES", "many"),
    ("MAX_PART_HEADERS", "-1"),
    ("MAX_PREAMBLE_SIZE", "0"),
    ("RELAY_CHUNK_SIZE", "big"),
    ("GEO_CONNECT_TIMEOUT", "5 minutes"),
    ("GEO_READ_TIMEOUT", "-1s"),
    ("CLIENT_TIMEOUT", "1w"),
    ("CLIENT_MIN_RATE", "fast"),
    ("CLIENT_RATE_WINDOW", "0s"),
    ("MAX_ACTIVE_UPLOADS", "0"),
    ("WEB_WORKERS", "two"),
    ("WEB_THREADS", "0"),
    ("WEB_CONNECTIONS", "-1"),
    ("WEB_WORKER_CLASS", "sync"),
    ("GRACEFUL_TIMEOUT", "an hour"),
    ("ORPHAN_TTL", "later"),
    ("PARTIAL_TTL", "1h30m"),
    ("RETENTION", "forever"),
    ("GC_INTERVAL", "5x"),
    ("REQUEUE_AFTER", "later"),
    ("MAX_REQUEUES", "-1"),
    ("BROKER_HEARTBEAT_TIMEOUT", "a minute"),
    ("BROKER_MAINTENANCE_CHANCE", "-5"),
    ("JOB_MAX_RETRIES", "-1"),
    ("JOB_MAX_RETRIES", "3.0"),
    ("JOB_MIN_BACKOFF", "soon"),
    ("PROCESSOR_MEMORY_LIMIT", "0"),
    ("PROCESSOR_MEMORY_LIMIT", "lots"),
    ("PROCESSOR_TIME_LIMIT", "0"),
    ("PROCESSOR_TIME_LIMIT", "forever"),
    ("QUEUE", "1st"),
    ("ON_FINISH_ACTOR", " padded "),
    ("ON_FINISH_QUEUE", "app events"),
    ("WEBHOOK_URL", "ftp://app.example/hook"),
    ("WEBHOOK_URL", "app.example/hook"),
    ("WEBHOOK_QUEUE", "hooks/out"),
    ("WEBHOOK_TIMEOUT", "0s"),
    ("WEBHOOK_MAX_RETRIES", "-1"),
    ("WEBHOOK_MIN_BACKOFF", "0"),
    ("WEBHOOK_MAX_BACKOFF", "soon"),
    ("LOG_LEVEL", "verbose"),
    ("CORS_ORIGINS", "app.example"),
    ("CORS_ORIGINS", "https://app.example/"),
    ("CORS_ORIGINS", "https://app.example,*"),
    ("CORS_ORIGINS", "ftp://app.example"),
    ("CORS_ORIGINS", "https://user@app.example"),
    ("CORS_ORIGINS", "https://app.example:99999"),
]


def test_defaults_without_any_variable() -> None:
    settings = load_settings({"PATH": "/usr/bin", "HOME": "/root"})
    assert settings == Settings()
    assert settings.api_port == 8000
    assert settings.geo_url == "http://127.0.0.1:8001"
    assert settings.max_upload_size == settings.max_file_size == 50 * GiB
    assert settings.api_tokens == ()
    assert settings.queue == "geoprocessing"
    assert settings.log_level == "INFO"


def test_metrics_default_to_the_ports_a_scrape_config_expects_on_every_interface() -> None:
    settings = load_settings({})
    assert (settings.metrics_host, settings.worker_metrics_port,
            settings.gc_metrics_port) == ("0.0.0.0", 9191, 9192)


@pytest.mark.parametrize("raw", ["99999", "65536", "-1"])
def test_a_metrics_port_out_of_range_is_refused_naming_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"HANDOFF_GC_METRICS_PORT": raw})
    assert str(caught.value) == (
        f"HANDOFF_GC_METRICS_PORT='{raw}' is invalid: port out of range: {raw}")


def test_the_probes_settings_default_to_the_temp_dir_and_15_minutes() -> None:
    settings = load_settings({})
    assert (settings.heartbeat_dir, settings.probe_max_age, settings.metrics_dir) == (
        None, 900.0, None)


@pytest.mark.parametrize("suffix", ["WORKER_METRICS_PORT", "GC_METRICS_PORT"])
def test_metrics_port_zero_means_none(suffix: str) -> None:
    field = VALID[suffix][0]
    assert getattr(load_settings({"HANDOFF_" + suffix: "0"}), field) == 0


@pytest.mark.parametrize(("raw", "expected"), [
    ("::", "::"), ("::1", "::1"), ("0.0.0.0", "0.0.0.0"), ("localhost", "localhost"),
    ("metrics.internal", "metrics.internal")])
def test_metrics_host_takes_an_address_or_a_name(raw: str, expected: str) -> None:
    assert load_settings({"HANDOFF_METRICS_HOST": raw}).metrics_host == expected


def test_every_setting_has_a_variable_under_test() -> None:
    assert {field for field, _, _ in VALID.values()} == {
        field.name for field in dataclasses.fields(Settings)
    }


@pytest.mark.parametrize("suffix", sorted(VALID))
def test_each_variable_alone(suffix: str) -> None:
    field, raw, expected = VALID[suffix]
    settings = load_settings({"HANDOFF_" + suffix: raw})
    assert getattr(settings, field) == expected


def test_all_variables_together() -> None:
    environ = {"HANDOFF_" + suffix: raw for suffix, (_, raw, _) in VALID.items()}
    settings = load_settings(environ)
    for field, _, expected in VALID.values():
        assert getattr(settings, field) == expected, field


@pytest.mark.parametrize("suffix", sorted(VALID))
def test_empty_value_means_default(suffix: str) -> None:
    field, _, _ = VALID[suffix]
    assert getattr(load_settings({"HANDOFF_" + suffix: ""}), field) == getattr(Settings(), field)


def test_unprefixed_variables_are_ignored() -> None:
    assert load_settings({"API_PORT": "1", "MAX_FILE_SIZE": "x"}) == Settings()


@pytest.mark.parametrize(("suffix", "raw"), INVALID)
def test_invalid_value_names_the_variable(suffix: str, raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"HANDOFF_" + suffix: raw})
    message = str(caught.value)
    assert message.startswith(f"HANDOFF_{suffix}={raw!r} is invalid: ")
    assert len(message) > len(f"HANDOFF_{suffix}={raw!r} is invalid: ")


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


def test_origins_are_spelled_as_a_browser_sends_them() -> None:
    settings = load_settings({"HANDOFF_CORS_ORIGINS": "HTTPS://App.Example:443,http://[::1]:80,"})
    assert settings.cors_origins == ("https://app.example", "http://[::1]")


def test_geo_port_implies_geo_url() -> None:
    assert load_settings({"HANDOFF_GEO_PORT": "9100"}).geo_url == "http://127.0.0.1:9100"


def test_explicit_geo_url_wins_over_geo_port() -> None:
    settings = load_settings({"HANDOFF_GEO_PORT": "9100", "HANDOFF_GEO_URL": "http://geo:80"})
    assert settings.geo_port == 9100
    assert settings.geo_url == "http://geo:80"


def test_max_upload_size_implies_max_file_size() -> None:
    settings = load_settings({"HANDOFF_MAX_UPLOAD_SIZE": "3GiB"})
    assert settings.max_upload_size == settings.max_file_size == 3 * GiB


def test_explicit_max_file_size_wins_over_max_upload_size() -> None:
    settings = load_settings(
        {"HANDOFF_MAX_UPLOAD_SIZE": "3GiB", "HANDOFF_MAX_FILE_SIZE": "1GiB"}
    )
    assert settings.max_upload_size == 3 * GiB
    assert settings.max_file_size == GiB


def test_max_file_size_alone_leaves_the_upload_limit() -> None:
    settings = load_settings({"HANDOFF_MAX_FILE_SIZE": "1GiB"})
    assert settings.max_file_size == GiB
    assert settings.max_upload_size == Settings().max_upload_size


@pytest.fixture
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The process environment without any HANDOFF_ variable."""
    for name in [name for name in os.environ if name.startswith("HANDOFF_")]:
        monkeypatch.delenv(name)
    return monkeypatch


def test_load_settings_reads_the_process_environment(clean_environ: pytest.MonkeyPatch) -> None:
    clean_environ.setenv("HANDOFF_QUEUE", "from-env")
    assert load_settings().queue == "from-env"


def test_load_or_exit_stops_with_status_3_and_names_the_variable(
    clean_environ: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_environ.setenv("HANDOFF_API_PORT", "eighty")
    with pytest.raises(SystemExit) as caught:
        load_or_exit()
    assert caught.value.code == 3
    assert "HANDOFF_API_PORT='eighty' is invalid" in capsys.readouterr().err


def test_load_or_exit_requires_the_secret_when_asked(
    clean_environ: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        load_or_exit(need_secret=True)
    assert caught.value.code == 3
    assert "HANDOFF_GEO_SECRET is not set" in capsys.readouterr().err
    clean_environ.setenv("HANDOFF_GEO_SECRET", "s3cret")
    assert load_or_exit(need_secret=True).geo_secret == "s3cret"


@pytest.mark.parametrize(("low", "high", "named"), [
    ("1m", "10s", "HANDOFF_WEBHOOK_MIN_BACKOFF is more than HANDOFF_WEBHOOK_MAX_BACKOFF"),
    ("1s", "7d", "HANDOFF_WEBHOOK_MAX_BACKOFF must be less than 7d"),
])
def test_webhook_backoff_bounds_must_make_sense(low: str, high: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_settings({"HANDOFF_WEBHOOK_MIN_BACKOFF": low, "HANDOFF_WEBHOOK_MAX_BACKOFF": high})


def test_the_webhook_deliverer_needs_the_secret_when_a_url_is_set(
    clean_environ: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Other processes only enqueue deliveries, so only the signing one insists."""
    clean_environ.setenv("HANDOFF_WEBHOOK_URL", "https://app.example/hook")
    assert load_or_exit().webhook_secret == ""
    with pytest.raises(SystemExit) as caught:
        load_or_exit(signs_webhooks=True)
    assert caught.value.code == 3
    assert "HANDOFF_WEBHOOK_SECRET is not" in capsys.readouterr().err
    clean_environ.setenv("HANDOFF_WEBHOOK_SECRET", "whsec")
    assert load_or_exit(signs_webhooks=True).webhook_secret == "whsec"


def test_variable_names_the_setting_behind_a_field() -> None:
    assert variable("max_files") == "HANDOFF_MAX_FILES"
    assert variable("max_form_fields_size") == "HANDOFF_MAX_FORM_FIELDS_SIZE"
    with pytest.raises(KeyError):
        variable("no_such_setting")


def test_tokens_file_is_read_like_the_variable(tmp_path: Path) -> None:
    """A Secret mounted as a file: one credential a line, the trailing newline ignored."""
    secret = tmp_path / "tokens"
    secret.write_text("alice:alice-token\nbob:bob-token\n")
    settings = load_settings({"HANDOFF_API_TOKENS_FILE": str(secret),
                              "HANDOFF_API_TOKENS": "carol:carol-token"})
    assert settings.api_tokens == (Credential("carol", "carol-token"),
                                   Credential("alice", "alice-token"),
                                   Credential("bob", "bob-token"))


def test_an_unreadable_tokens_file_names_the_variable(tmp_path: Path) -> None:
    missing = tmp_path / "absent"
    with pytest.raises(ConfigError, match=f"^HANDOFF_API_TOKENS_FILE='{missing}' is invalid: "):
        load_settings({"HANDOFF_API_TOKENS_FILE": str(missing)})


def test_a_token_in_both_the_variable_and_the_file_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "tokens"
    secret.write_text("bob:same\n")
    with pytest.raises(ConfigError, match="HANDOFF_API_TOKENS and HANDOFF_API_TOKENS_FILE"):
        load_settings({"HANDOFF_API_TOKENS_FILE": str(secret), "HANDOFF_API_TOKENS": "a:same"})


@pytest.mark.parametrize("raw", ["alice:", ":alice-token", "al ice:t1", "a:t1,b:t1"])
def test_bad_tokens_are_refused_without_repeating_them(raw: str) -> None:
    """The message names the variable, never the tokens it holds."""
    with pytest.raises(ConfigError) as caught:
        load_settings({"HANDOFF_API_TOKENS": raw})
    message = str(caught.value)
    assert message.startswith("HANDOFF_API_TOKENS=(secret) is invalid: ")
    assert "t1" not in message
    assert "alice-token" not in message


def test_uploads_must_leave_connections_free() -> None:
    with pytest.raises(ConfigError, match=r"HANDOFF_MAX_ACTIVE_UPLOADS .* below HANDOFF_WEB_CONN"):
        load_settings({"HANDOFF_MAX_ACTIVE_UPLOADS": "100", "HANDOFF_WEB_CONNECTIONS": "100"})


def test_a_zero_minimum_rate_turns_the_rate_check_off() -> None:
    assert load_settings({"HANDOFF_CLIENT_MIN_RATE": "0"}).client_min_rate == 0


@pytest.mark.parametrize(("old", "new"), [
    ("ZIP_MAX_UNCOMPRESSED", "PROCESSOR_SHAPEFILE_ZIP_MAX_UNCOMPRESSED"),
    ("ZIP_MAX_ENTRIES", "PROCESSOR_SHAPEFILE_ZIP_MAX_ENTRIES"),
])
def test_a_renamed_variable_stops_start_up_with_its_new_name(old: str, new: str) -> None:
    """Ignoring it would silently drop a zip-bomb limit an operator had lowered."""
    with pytest.raises(ConfigError) as excinfo:
        load_settings({PREFIX + old: "100"})
    assert str(excinfo.value) == f"{PREFIX}{old} was renamed {PREFIX}{new}; set that instead"


def test_processor_variables_are_not_core_settings() -> None:
    """They are each processor's own (handoff.processors), so any value passes here."""
    assert load_settings({"HANDOFF_PROCESSOR_SHAPEFILE_ZIP_MAX_ENTRIES": "many"}) == Settings()


def test_a_replica_has_its_own_queue_and_store_folder() -> None:
    settings = load_settings({"HANDOFF_REPLICA": "geo-1", "HANDOFF_QUEUE": "jobs",
                              "HANDOFF_UPLOADS_ROOT": "/srv/up"})
    assert (settings.job_queue, settings.store_root) == ("jobs.geo-1", Path("/srv/up/geo-1"))


def test_without_a_replica_the_queue_and_store_are_the_settings_themselves() -> None:
    settings = load_settings({"HANDOFF_QUEUE": "jobs", "HANDOFF_UPLOADS_ROOT": "/srv/up"})
    assert (settings.job_queue, settings.store_root) == ("jobs", Path("/srv/up"))


@pytest.mark.parametrize("store", ["s3://uploads/eu", "az://uploads"])
def test_with_a_shared_store_every_replica_takes_jobs_from_the_one_queue(store: str) -> None:
    settings = load_settings({"HANDOFF_REPLICA": "geo-1", "HANDOFF_QUEUE": "jobs",
                              "HANDOFF_STORE_URL": store})
    assert settings.job_queue == "jobs"


def test_a_file_store_url_keeps_each_replica_on_its_own_queue() -> None:
    settings = load_settings({"HANDOFF_REPLICA": "geo-1", "HANDOFF_QUEUE": "jobs",
                              "HANDOFF_STORE_URL": "file:///srv/up"})
    assert settings.job_queue == "jobs.geo-1"


def test_without_replica_urls_the_api_has_one_unnamed_replica_at_the_geo_url() -> None:
    settings = load_settings({"HANDOFF_GEO_URL": "http://geo:8001"})
    assert settings.geo_replicas == ((None, "http://geo:8001"),)


def test_replica_urls_replace_the_geo_url() -> None:
    settings = load_settings({"HANDOFF_GEO_URL": "http://geo:8001",
                              "HANDOFF_GEO_REPLICA_URLS": "geo-0=http://a:1,geo-1=http://b:2"})
    assert settings.geo_replicas == (("geo-0", "http://a:1"), ("geo-1", "http://b:2"))


@pytest.mark.parametrize("name", ["0", "9-a", "geo-0", "a" * 63])
def test_every_replica_name_makes_a_queue_name_dramatiq_takes(name: str) -> None:
    queue = load_settings({"HANDOFF_REPLICA": name, "HANDOFF_QUEUE": "q"}).job_queue
    assert load_settings({"HANDOFF_QUEUE": queue}).queue == f"q.{name}"


def test_draining_names_listed_replicas() -> None:
    settings = load_settings({"HANDOFF_GEO_REPLICA_URLS": "geo-0=http://a,geo-1=http://b",
                              "HANDOFF_GEO_DRAINING": " geo-1, "})
    assert settings.geo_draining == frozenset({"geo-1"})


@pytest.mark.parametrize("draining", ["geo-2", "geo-1,Geo-0"])
def test_draining_a_replica_not_listed_is_refused(draining: str) -> None:
    with pytest.raises(ConfigError, match="GEO_DRAINING"):
        load_settings({"HANDOFF_GEO_REPLICA_URLS": "geo-0=http://a,geo-1=http://b",
                       "HANDOFF_GEO_DRAINING": draining})


def test_a_file_store_url_is_the_uploads_root() -> None:
    settings = load_settings({"HANDOFF_STORE_URL": "file:///srv/up/"})
    assert settings.uploads_root == Path("/srv/up") and not settings.shared_store
    with pytest.raises(ConfigError, match="two roots"):
        load_settings({"HANDOFF_STORE_URL": "file:///srv/up", "HANDOFF_UPLOADS_ROOT": "/srv/x"})


@pytest.mark.parametrize("url", ["s3://handoff/uploads", "az://handoff"])
def test_an_object_store_is_shared_by_every_replica(url: str) -> None:
    settings = load_settings({"HANDOFF_STORE_URL": url})
    assert settings.shared_store and str(settings.store_url) == url
