"""Hooks and fixtures that start real processes: valkey-server, gunicorn, a Dramatiq worker.

Every process a fixture starts is stopped by pid (its whole session) at
teardown, and each stack lives in its own temp folder that is removed. The
helpers they use live in ``tests/support``.
"""

import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from devstack import processes
from tests.support import locks
from tests.support.stacks import DEFAULT_COMPONENTS, Stack, launch

# Every test below these folders starts the product's processes; no test elsewhere does.
INTEGRATION_FOLDERS = ("integration", "faults")
_TESTS = Path(__file__).parent


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def pytest_configure(config: pytest.Config) -> None:
    """Make SIGTERM (a CI time-out, say) end the run like Ctrl-C.

    pytest then still tears fixtures down, so the services they started,
    each in its own session, are stopped instead of outliving the run.
    """
    signal.signal(signal.SIGTERM, _interrupt)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests ``integration`` by the folder they live in, not by a line in each file.

    A file cannot then forget the mark, and ``-m "not integration"`` stays
    free of real processes. Runs before ``-m`` deselects anything.
    """
    for item in items:
        if _in_integration_folder(item.path):
            item.add_marker(pytest.mark.integration)


def _in_integration_folder(path: Path) -> bool:
    return path.is_relative_to(_TESTS) and path.relative_to(_TESTS).parts[0] in INTEGRATION_FOLDERS


@pytest.fixture
def hold_lock() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Hold upload locks from other processes (``tests/support/locks.py``).

    ``hold(store, upload_id, claim=False)`` returns once the lock is held;
    kill the process to release it. All are killed at teardown.
    """
    holders: list[subprocess.Popen[str]] = []

    def hold(store: Any, upload_id: str, claim: bool = False) -> subprocess.Popen[str]:
        holders.append(locks.hold(store, upload_id, claim))
        return holders[-1]

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
    """gunicorn, with the product's settings, serving tests/support/body_echo_app.py; its URL."""
    root = tmp_path_factory.mktemp("body-echo")
    port = processes.free_port()
    argv = processes.gunicorn_argv("tests.support.body_echo_app:app", port)
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


@pytest.fixture(scope="module")
def replicated_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of three geo replicas, shared by a module's tests that do not disturb it."""
    root = tmp_path_factory.mktemp("replicated-stack")
    running = launch(root, replicas=3)
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
              components: Sequence[str] = DEFAULT_COMPONENTS, replicas: int = 0) -> Stack:
        root = tmp_path_factory.mktemp("private-stack")
        started.append(launch(root, overrides, components, replicas))
        return started[-1]

    try:
        yield _make
    finally:
        for running in started:
            running.stop_all()
            shutil.rmtree(running.root, ignore_errors=True)
