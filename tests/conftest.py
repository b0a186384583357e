"""Hooks, and the fixtures through which tests start processes.

Every process, thread server and temp folder a test needs outside its own
thread is started through a :class:`tests.support.processes.Processes`:
``session_processes``, ``module_processes`` and ``processes`` hand one out
per scope, and its one teardown stops everything by pid (with its whole
process group) and removes the folders, even when a test failed.
"""

import os
import signal
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from tests.support import objectstores
from tests.support.processes import Processes
from tests.support.stacks import DEFAULT_COMPONENTS, Stack

# Every test below these folders starts the product's processes; a module elsewhere that
# starts one (valkey for the Redis locks, Azurite for the Azure bucket) marks itself
# ``integration``.
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


@pytest.fixture(scope="session")
def session_processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Processes]:
    """Processes shared by the whole run, ended after its last test."""
    with Processes(tmp_path_factory) as running:
        yield running


@pytest.fixture(scope="module")
def module_processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Processes]:
    """Processes shared by one module's tests, ended after its last."""
    with Processes(tmp_path_factory) as running:
        yield running


@pytest.fixture
def processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Processes]:
    """Processes of one test, ended after it."""
    with Processes(tmp_path_factory) as running:
        yield running


@pytest.fixture
def hold_lock(processes: Processes) -> Callable[..., subprocess.Popen[str]]:
    """Hold upload locks from other processes: ``hold(store, upload_id, claim=False)``.

    Returns once the lock is held; kill the process to release it.
    """
    return processes.lock_holder


@pytest.fixture(scope="session")
def body_echo(session_processes: Processes) -> str:
    """gunicorn, with the product's settings, serving tests/support/body_echo_app.py; its URL."""
    root = session_processes.folder("body-echo")
    env = {**os.environ, "HANDOFF_WEB_WORKERS": "1", "HANDOFF_METRICS_DIR": str(root)}
    return session_processes.gunicorn("tests.support.body_echo_app:app", env, root)


@pytest.fixture(scope="session")
def seaweedfs(session_processes: Processes) -> objectstores.ObjectServer:
    """One SeaweedFS (S3) for the run, on loopback; tests keep apart by prefix."""
    return objectstores.start_seaweedfs(session_processes)


@pytest.fixture(scope="session")
def azurite(session_processes: Processes) -> objectstores.ObjectServer:
    """One Azurite (Azure Blob) for the run, on loopback; tests keep apart by prefix."""
    return objectstores.start_azurite(session_processes)


@pytest.fixture(scope="session")
def valkey(session_processes: Processes) -> str:
    """A valkey-server of its own for the whole run, on a loopback port; its URL."""
    return session_processes.stack("valkey", components=("redis",)).env["HANDOFF_REDIS_URL"]


@pytest.fixture
def s3_store_url(seaweedfs: objectstores.ObjectServer, valkey: str,
                 monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh, empty ``s3://`` store on the run's SeaweedFS, its locks in the run's valkey.

    The environment names both, as the services read them, so
    ``open_store_at(url)`` opens it here and in any child process.
    """
    for name, value in {**seaweedfs.env, "HANDOFF_REDIS_URL": valkey}.items():
        monkeypatch.setenv(name, value)
    return seaweedfs.url("s3", objectstores.fresh_prefix())


@pytest.fixture
def az_store_url(azurite: objectstores.ObjectServer, valkey: str,
                 monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh, empty ``az://`` store on the run's Azurite, its locks in the run's valkey.

    As ``s3_store_url``: the environment names both, for this process and its children.
    """
    for name, value in {**azurite.env, "HANDOFF_REDIS_URL": valkey}.items():
        monkeypatch.setenv(name, value)
    return azurite.url("az", objectstores.fresh_prefix())


@pytest.fixture(params=["s3", "az"])
def object_store_url(request: pytest.FixtureRequest) -> str:
    """A fresh ``s3://`` store, then a fresh ``az://`` one, for what both must do alike."""
    return request.getfixturevalue(f"{request.param}_store_url")


@pytest.fixture(scope="session")
def stack(session_processes: Processes) -> Stack:
    """The default stack, shared by tests that do not disturb it."""
    return session_processes.stack("stack")


@pytest.fixture(scope="module")
def replicated_stack(module_processes: Processes) -> Stack:
    """A stack of three geo replicas, shared by a module's tests that do not disturb it."""
    return module_processes.stack("replicated-stack", replicas=3)


@pytest.fixture
def make_stack(processes: Processes) -> Callable[..., Stack]:
    """Start a private stack with its own settings; stopped and removed at teardown."""
    def _make(overrides: dict[str, str] | None = None,
              components: Sequence[str] = DEFAULT_COMPONENTS, replicas: int = 0) -> Stack:
        return processes.stack("private-stack", overrides, components, replicas)

    return _make
