"""Fixtures that start real processes: valkey-server, gunicorn, a Dramatiq worker.

Ports are picked free, every process is stopped by pid (its whole session)
at teardown, and each stack lives in its own temp folder that is removed.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from requests_toolbelt import MultipartEncoder

from handoff import processes
from handoff.auth import parse_credentials

SECRET = "test-geo-secret"


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def pytest_configure(config: pytest.Config) -> None:
    """Make SIGTERM (a CI time-out, say) end the run like Ctrl-C.

    pytest then still tears fixtures down, so the services they started,
    each in its own session, are stopped instead of outliving the run.
    """
    signal.signal(signal.SIGTERM, _interrupt)
DEFAULT_COMPONENTS = ("redis", "geo", "worker", "api")


@dataclass
class Stack(processes.LocalStack):
    """One running copy of the product, with helpers to drive it like a client."""

    client_headers: dict[str, str] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return self.url("api")

    @property
    def geo_url(self) -> str:
        return self.url("geo")

    def log(self, name: str) -> str:
        path = self.log_path(name)
        return path.read_text(errors="replace") if path.exists() else ""

    def upload(self, files: Sequence[tuple[str, Any]], purpose: str | None = "raw",
               metadata: str | None = None, headers: dict[str, str] | None = None,
               fields: Sequence[tuple[str, Any]] = ()) -> requests.Response:
        """POST /v1/uploads as a streaming multipart client would.

        ``files`` holds (filename, bytes or open binary file) pairs, sent as
        parts named ``file``; ``fields`` are sent first, after purpose/metadata.
        """
        parts: list[tuple[str, Any]] = []
        if purpose is not None:
            parts.append(("purpose", purpose))
        if metadata is not None:
            parts.append(("metadata", metadata))
        parts.extend(fields)
        parts.extend(("file", (name, content, "application/octet-stream"))
                     for name, content in files)
        encoder = MultipartEncoder(parts)
        return requests.post(f"{self.api_url}/v1/uploads", data=encoder, timeout=300,
                             headers={"Content-Type": encoder.content_type,
                                      **(self.client_headers if headers is None else headers)})

    def status(self, upload_id: str) -> dict[str, Any]:
        response = requests.get(f"{self.api_url}/v1/uploads/{upload_id}", timeout=30,
                                headers=self.client_headers)
        response.raise_for_status()
        return response.json()

    def wait_for(self, upload_id: str, states: Sequence[str] = ("done", "failed"),
                 timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(upload_id)
            if status["status"] in states or time.monotonic() > deadline:
                return status
            time.sleep(0.1)


def launch(root: Path, overrides: dict[str, str] | None = None,
           components: Sequence[str] = DEFAULT_COMPONENTS) -> Stack:
    """Start the named components in ``root``; the caller stops them."""
    env, ports = processes.scratch_environment(root, SECRET)
    env.update(overrides or {})
    stack = Stack(root, env, ports)
    credentials = parse_credentials(env.get("HANDOFF_API_TOKENS", ""))
    if credentials:
        stack.client_headers = {"Authorization": f"Bearer {credentials[0].token}"}
    try:
        for name in components:
            stack.start(name)
    except BaseException:
        stack.stop_all()
        raise
    return stack


_HOLD_LOCK = """
import sys, time
from geo_service.store import UploadStore
store = UploadStore(sys.argv[1])
with store.lock(sys.argv[2]):
    if sys.argv[3] == "claim":
        store.claim(sys.argv[2], {"worker": "test-holder", "claimed_at": time.time()})
    print("locked", flush=True)
    time.sleep(300)
"""


@pytest.fixture
def hold_lock() -> Iterator[Callable[..., subprocess.Popen]]:
    """Hold upload locks from other processes, as a writer or a worker would.

    flock locks conflict across processes, so this is the situation the
    store's readers really meet. ``hold(store, upload_id)`` returns once the
    lock is held; with ``claim=True`` the holder also claims the upload, as a
    worker does before processing it. Kill the process to release the lock.
    All are killed at teardown.
    """
    holders: list[subprocess.Popen] = []

    def hold(store: Any, upload_id: str, claim: bool = False) -> subprocess.Popen:
        argv = [sys.executable, "-c", _HOLD_LOCK, str(store.root), upload_id,
                "claim" if claim else "lock"]
        holder = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        holders.append(holder)
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        return holder

    try:
        yield hold
    finally:
        for holder in holders:
            holder.kill()
            holder.wait(timeout=10)
            if holder.stdout is not None:
                holder.stdout.close()


@pytest.fixture(scope="session")
def body_echo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """gunicorn, with the product's settings, serving tests/handoff/body_echo_app.py; its URL."""
    root = tmp_path_factory.mktemp("body-echo")
    port = processes.free_port()
    argv = processes.gunicorn_argv("tests.handoff.body_echo_app:app", port)
    env = {**os.environ, "HANDOFF_WEB_WORKERS": "1", "HANDOFF_METRICS_DIR": str(root)}
    proc = processes.start(argv, env, root / "gunicorn.log")
    try:
        processes.wait_port(port, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        processes.stop(proc)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The default stack, shared by tests that do not disturb it."""
    root = tmp_path_factory.mktemp("stack")
    running = launch(root)
    try:
        yield running
    finally:
        running.stop_all()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def make_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Stack]]:
    """Start a private stack with its own settings; stopped and removed at teardown."""
    started: list[Stack] = []

    def _make(overrides: dict[str, str] | None = None,
              components: Sequence[str] = DEFAULT_COMPONENTS) -> Stack:
        root = tmp_path_factory.mktemp("private-stack")
        started.append(launch(root, overrides, components))
        return started[-1]

    try:
        yield _make
    finally:
        for running in started:
            running.stop_all()
            shutil.rmtree(running.root, ignore_errors=True)
