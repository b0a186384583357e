"""Object store servers for the tests, one per session, and a fresh place in them per test.

Azurite (``devstack/azurite.py``) is started through a
:class:`~tests.support.processes.Processes`, so the session's teardown stops
it by pid and removes its folder. Each test takes a new container, so tests
sharing the server never see each other's blobs.
"""

import secrets
import subprocess
from dataclasses import dataclass

import pytest
from azure.storage.blob import BlobServiceClient

from devstack import azurite, npm, processes
from geo_service.store.azure import AzureBucket, azure_client
from tests.support.processes import Processes


@dataclass(frozen=True)
class Azurite:
    """A running Azurite: the environment that reaches it, and fresh containers in it."""

    port: int
    env: dict[str, str]

    def client(self) -> BlobServiceClient:
        return azure_client(self.env)

    def container(self) -> str:
        """A new, empty container's name."""
        name = f"test-{secrets.token_hex(6)}"
        azurite.ensure_container(self.env, name)
        return name

    def bucket(self, prefix: str = "") -> AzureBucket:
        """An :class:`AzureBucket` over ``prefix`` in a new container."""
        return AzureBucket(self.client(), self.container(), prefix)


def start_azurite(running: Processes) -> Azurite:
    """Azurite's blob service on a free loopback port, its data in a folder of ``running``."""
    missing = npm.missing_programs()
    if missing:
        pytest.fail(f"{' and '.join(missing)} not installed (make browser-deps)")
    folder = running.folder("azurite")
    port = processes.free_port()
    with open(folder / "azurite.log", "ab") as log:
        proc = running.popen(azurite.argv(folder, port), stdout=log,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    azurite.wait(port, proc)
    return Azurite(port, azurite.environment(port))
