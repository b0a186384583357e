"""Azurite, Microsoft's Azure Blob emulator, for ``az://`` stores in ``make run`` and the tests.

It is the npm package ``azurite`` at a pinned version, installed once into
``var/node/``. Only its blob service runs, on loopback, keeping its files
in a folder of the caller's; the account is the emulator's well-known
``devstoreaccount1``, reached through the SDK's standard connection string.
``make run`` and the tests start it the same way: :func:`argv`,
:func:`environment`, :func:`wait`, :func:`ensure_container`; each stops it
by pid with its own process registry.
"""

import contextlib
import subprocess
from pathlib import Path

from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient

from devstack import npm, processes

VERSION = "3.37.0"
FOLDER = npm.NODE_ROOT / f"azurite-{VERSION}"
ACCOUNT = "devstoreaccount1"
#: The emulator's published development key: not a secret.
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
#: Seconds Azurite is given to listen; Node takes a few on a loaded machine.
START_SECONDS = 60.0


def install() -> Path:
    """The ``azurite-blob`` program, installed with npm if it is not yet."""
    npm.ensure_installed(FOLDER, [f"azurite@{VERSION}"], "azurite/package.json")
    return FOLDER / "node_modules" / ".bin" / "azurite-blob"


def argv(workdir: Path, port: int, log_path: Path | None = None) -> list[str]:
    """The blob service on 127.0.0.1:``port``, its data in ``workdir``.

    Its access log goes to ``log_path`` (debug level) or nowhere; telemetry
    stays off, and any API version the SDK speaks is accepted.
    """
    logging = ["--debug", str(log_path)] if log_path else ["--silent"]
    return [str(install()), "--blobHost", "127.0.0.1", "--blobPort", str(port),
            "--location", str(workdir), "--skipApiVersionCheck", "--disableTelemetry",
            *logging]


def connection_string(port: int) -> str:
    return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
            f"BlobEndpoint=http://127.0.0.1:{port}/{ACCOUNT};")


def environment(port: int) -> dict[str, str]:
    """What a process needs to reach the emulator: the SDK's own variable, nothing of ours."""
    return {"AZURE_STORAGE_CONNECTION_STRING": connection_string(port)}


def wait(port: int, proc: subprocess.Popen, timeout: float = START_SECONDS) -> None:
    """Return once Azurite listens: it opens its port only when the service is ready."""
    processes.wait_port(port, proc, timeout)


def ensure_container(env: dict[str, str], name: str) -> None:
    """Create the container ``name`` unless it exists."""
    client = BlobServiceClient.from_connection_string(env["AZURE_STORAGE_CONNECTION_STRING"])
    with contextlib.suppress(ResourceExistsError):
        client.create_container(name)
