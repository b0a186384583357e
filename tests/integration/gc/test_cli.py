"""``python -m handoff_gc`` as an operator or a CronJob runs it: a real process."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devstack.processes import free_port
from geo_service.store import FileStore, UploadStore
from tests.gc import make_upload
from tests.geo_service.store import disk

DELETED = re.compile(r"^(deleted|would delete) (\S+) (\S+) (\d+) bytes$", re.MULTILINE)


@pytest.fixture
def store(tmp_path: Path) -> UploadStore:
    return FileStore(tmp_path / "uploads")


def environment(store: UploadStore, **overrides: str) -> dict[str, str]:
    """The sweeper's settings for ``store``, with nothing on a fixed port.

    The metrics server is off unless a test gives it a port, and listens on
    the loopback when on; the broker is a free port nobody serves, so runs
    side by side, or a valkey on the default port, never meet.
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith("HANDOFF_")}
    env.update(
        HANDOFF_UPLOADS_ROOT=str(store.root),
        HANDOFF_GC_METRICS_PORT="0",
        HANDOFF_METRICS_HOST="127.0.0.1",
        HANDOFF_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
        HANDOFF_ORPHAN_TTL="100s",
        HANDOFF_PARTIAL_TTL="200s",
        HANDOFF_RETENTION="1000s",
        HANDOFF_HEARTBEAT_DIR=str(store.root.parent),
    )
    env.update(overrides)
    return env


def gc(store: UploadStore, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "handoff_gc", *args],
        env=environment(store, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_once_prints_each_deletion_and_the_totals(store: UploadStore) -> None:
    orphan = make_upload(store, "complete", 150)
    expired = make_upload(store, "failed", 1500)
    fresh = make_upload(store, "complete", 10)
    sizes = {orphan: store.size(orphan), expired: store.size(expired)}

    result = gc(store, "--once")

    assert result.returncode == 0, result.stderr
    lines = {(m[2], m[3], int(m[4])) for m in DELETED.finditer(result.stdout)}
    assert lines == {(orphan, "orphan", sizes[orphan]), (expired, "expired", sizes[expired])}
    assert all(m[1] == "deleted" for m in DELETED.finditer(result.stdout))
    assert "orphan: 1\n" in result.stdout
    assert "expired: 1\n" in result.stdout
    assert f"freed {sum(sizes.values())} bytes\n" in result.stdout
    assert [store.exists(i) for i in (orphan, expired, fresh)] == [False, False, True]


def test_dry_run_only_says_what_it_would_delete(store: UploadStore) -> None:
    expired = make_upload(store, "done", 1500)

    result = gc(store, "--once", "--dry-run")

    assert result.returncode == 0, result.stderr
    assert f"would delete {expired} expired " in result.stdout
    assert "would free" in result.stdout
    assert store.exists(expired)


def test_an_error_makes_the_exit_status_non_zero(store: UploadStore) -> None:
    broken = make_upload(store, "done", 1500)
    (disk.folder(store, broken) / "result.json").write_text("[]")

    result = gc(store, "--once")

    assert result.returncode == 1
    assert "errors: 1" in result.stdout
    assert broken in result.stderr


@pytest.mark.parametrize(
    ("variable", "value"),
    [("HANDOFF_ORPHAN_TTL", "soon"), ("HANDOFF_UPLOADS_ROOT", "/nonexistent/uploads")],
)
def test_a_bad_setting_names_the_variable(store: UploadStore, variable: str, value: str) -> None:
    result = gc(store, "--once", **{variable: value})

    assert result.returncode == 2
    assert variable in result.stderr
    assert "Traceback" not in result.stderr


def test_dry_run_alone_is_a_usage_error(store: UploadStore) -> None:
    assert gc(store, "--dry-run").returncode == 2


def test_two_sweepers_at_once_delete_each_upload_once(store: UploadStore) -> None:
    doomed = {make_upload(store, "done", 1500) for _ in range(60)}
    command = [sys.executable, "-m", "handoff_gc", "--once"]
    procs = [
        subprocess.Popen(command, env=environment(store), stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=60)[0] for proc in procs]

    assert [proc.returncode for proc in procs] == [0, 0]
    deleted = [m[2] for out in outputs for m in DELETED.finditer(out)]
    assert sorted(deleted) == sorted(doomed)
    assert not any(store.exists(upload_id) for upload_id in doomed)


def wait_until_gone(store: UploadStore, upload_id: str, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not store.exists(upload_id):
            return True
        time.sleep(0.05)
    return False


def test_the_scheduler_sweeps_every_interval_and_stops_on_sigterm(store: UploadStore) -> None:
    first = make_upload(store, "done", 1500)
    proc = subprocess.Popen(
        [sys.executable, "-m", "handoff_gc"],
        env=environment(store, HANDOFF_GC_INTERVAL="1s",
                        HANDOFF_GC_METRICS_PORT=str(free_port())),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_until_gone(store, first)
        second = make_upload(store, "complete", 150)
        assert wait_until_gone(store, second)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=15)

    assert proc.returncode == 0, stderr
    assert "stopping on SIGTERM" in stderr


def test_a_metrics_port_in_use_names_the_variable(store: UploadStore) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "handoff_gc"], capture_output=True, text=True, timeout=60,
            env=environment(store, HANDOFF_GC_METRICS_PORT=str(port)))

    assert result.returncode == 2
    assert f"127.0.0.1:{port} (HANDOFF_GC_METRICS_PORT)" in result.stderr
    assert "Traceback" not in result.stderr
