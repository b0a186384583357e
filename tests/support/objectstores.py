"""Object storage servers for the tests: one of each per run, a fresh prefix per test.

Each server is started through the session's
:class:`~tests.support.processes.Processes`, so the run's one teardown stops
it by pid and removes its folder. A server is described by an
:class:`ObjectServer`: the environment its clients need (each SDK's
standard variables) and the bucket or container the tests share; tests
keep apart by prefix (:func:`fresh_prefix`).
"""

import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack import azurite, npm, seaweedfs
from devstack import processes as devprocesses
from tests.support.processes import Processes

BUCKET = "handoff-tests"


@dataclass(frozen=True)
class ObjectServer:
    """A running server: its clients' environment, and the bucket the tests use in it."""

    env: dict[str, str]
    bucket: str

    def url(self, scheme: str, prefix: str) -> str:
        """The store URL (``HANDOFF_STORE_URL``) of ``prefix`` in the shared bucket."""
        return f"{scheme}://{self.bucket}/{prefix}"


def start_seaweedfs(running: Processes) -> ObjectServer:
    """``weed mini`` on loopback with the tests' bucket, stopped at ``running``'s teardown."""
    port = devprocesses.free_port()
    serve_seaweedfs(running, running.folder("seaweedfs"), port)
    return ObjectServer(seaweedfs.environment(port), BUCKET)


def serve_seaweedfs(running: Processes, folder: Path, port: int) -> subprocess.Popen:
    """``weed mini`` keeping its data in ``folder``, serving S3 on ``port``, with the tests'
    bucket; stopped at ``running``'s teardown. Again on the same folder and port, it is the
    same server restarted, its objects kept."""
    env = seaweedfs.environment(port)
    with open(folder / "weed.log", "ab") as log:
        proc = running.popen(seaweedfs.argv(folder, port), grace=seaweedfs.STOP_GRACE,
                             env={**os.environ, **env}, stdout=log,
                             stderr=log, stdin=subprocess.DEVNULL)
    seaweedfs.wait_ready(env, proc)
    seaweedfs.ensure_bucket(env, BUCKET)
    return proc


def start_azurite(running: Processes) -> ObjectServer:
    """Azurite's blob service on loopback with the tests' container (npm installs it once)."""
    missing = npm.missing_programs()
    if missing:
        pytest.fail(f"{' and '.join(missing)} not installed (make browser-deps)")
    folder = running.folder("azurite")
    port = devprocesses.free_port()
    env = azurite.environment(port)
    with open(folder / "azurite.log", "ab") as log:
        proc = running.popen(azurite.argv(folder, port), stdout=log,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    azurite.wait(port, proc)
    azurite.ensure_container(env, BUCKET)
    return ObjectServer(env, BUCKET)


def fresh_prefix() -> str:
    """A prefix no other test uses, so each test starts from an empty store."""
    return f"t-{uuid.uuid4().hex[:12]}"
