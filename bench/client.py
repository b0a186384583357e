"""The client side: curl for every multipart upload, and clean-up of the stores between runs.

curl streams the file from disk (from the page cache, in practice) with
little CPU, so on two cores it takes nothing away from the services, and
the same command measures every variant; only the URL and, for the geo
service, the bearer header differ. Its ``time_total`` is the figure used.
The tus variants share one client of their own, :mod:`bench.tus_client`.
"""

import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import requests

from bench import tus_client
from bench.services import Stack
from handoff.ids import is_upload_id
from handoff.units import MiB

CURL_FORMAT = "%{http_code} %{time_total}"
CURL_TIMEOUT = 1800.0
SETTLE_TIMEOUT = 300.0
POLL_SECONDS = 0.02
BUSY_STATES = {"receiving", "queued", "claimed"}


class BenchError(RuntimeError):
    """A run did not do what it should (wrong status, timeout); the numbers would lie."""


@dataclass(frozen=True)
class Variant:
    """One way to get a file into a store: which service the client talks to, and how.

    ``chunk`` is for tus only: the bytes per PATCH, None for the whole file in one.
    """

    name: str
    front: str
    expect: int
    protocol: str = "multipart"
    chunk: int | None = None

    def url(self, stack: Stack) -> str:
        if self.front == "tus_node":
            return f"{stack.url(self.front)}/files"
        if self.front in ("geo", "nginx"):
            return f"{stack.url(self.front)}/uploads/{uuid.uuid4()}"
        return f"{stack.url(self.front)}/v1/uploads"

    def headers(self, stack: Stack) -> dict[str, str]:
        return stack.geo_auth if self.front in ("geo", "nginx") else {}


DIRECT = Variant("direct", "geo", 201)
RELAY = Variant("relay", "api", 202)
NAIVE = Variant("naive", "naive", 202)
NGINX = Variant("nginx", "nginx", 201)
TUS = Variant("tus", "api", 204, "tus")
TUS_CHUNKED = Variant("tus-16m", "api", 204, "tus", 16 * MiB)
TUS_NODE = Variant("tus-node", "tus_node", 204, "tus")


@dataclass(frozen=True)
class Transfer:
    """One finished upload as curl saw it."""

    variant: str
    size: int
    seconds: float

    @property
    def mbps(self) -> float:
        return self.size / self.seconds / 1e6


def curl_argv(url: str, path: Path, headers: dict[str, str], output: str) -> list[str]:
    argv = ["curl", "-sS", "-o", output, "-w", CURL_FORMAT, "-F", "purpose=raw",
            "-F", f"file=@{path}", url]
    for name, value in headers.items():
        argv[1:1] = ["-H", f"{name}: {value}"]
    return argv


def start_upload(stack: Stack, variant: Variant, path: Path,
                 output: str = "/dev/null") -> subprocess.Popen:
    """Start curl uploading ``path``; :func:`finish_upload` collects the result."""
    argv = curl_argv(variant.url(stack), path, variant.headers(stack), output)
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)


def finish_upload(proc: subprocess.Popen, variant: Variant, size: int,
                  timeout: float = CURL_TIMEOUT) -> Transfer:
    """Wait for curl; raise :class:`BenchError` unless the service answered as expected."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise BenchError(f"{variant.name}: curl did not finish in {timeout:.0f}s") from None
    fields = out.decode().split()
    status = int(fields[0]) if fields and fields[0].isdigit() else 0
    if proc.returncode != 0 or status != variant.expect:
        raise BenchError(f"{variant.name}: curl exit {proc.returncode}, HTTP {status} "
                         f"(expected {variant.expect}): {err.decode(errors='replace').strip()}")
    return Transfer(variant.name, size, float(fields[1]))


def upload(stack: Stack, variant: Variant, path: Path, output: str = "/dev/null") -> Transfer:
    """Upload ``path`` once through ``variant`` and wait for the answer."""
    if variant.protocol == "tus":
        seconds = tus_client.send(variant.url(stack), path, variant.chunk, CURL_TIMEOUT)
        return Transfer(variant.name, path.stat().st_size, seconds)
    return finish_upload(start_upload(stack, variant, path, output), variant,
                         path.stat().st_size)


def settle(stack: Stack, timeout: float = SETTLE_TIMEOUT) -> None:
    """Wait until no upload is being written or processed, then delete them all.

    A relayed upload has a job: the worker re-hashes the whole file, which
    would steal a core from the next run if it were not waited for. The
    Node tus server's finished uploads are removed too, to give tmpfs back.
    """
    _empty(stack.tus_node_store)
    deadline = time.monotonic() + timeout
    session = requests.Session()
    pending = held_uploads(stack)
    while pending:
        if time.monotonic() > deadline:
            raise BenchError(f"uploads still busy after {timeout:.0f}s: {sorted(pending)}")
        pending = {(geo, upload_id) for geo, upload_id in pending
                   if not _delete_if_idle(stack, session, geo, upload_id)}
        if pending:
            time.sleep(POLL_SECONDS)


def held_uploads(stack: Stack) -> set[tuple[str, str]]:
    """Each upload the stack's stores hold, with the geo service that answers for it."""
    if stack.bucket_ids is not None:
        return {("geo", upload_id) for upload_id in stack.bucket_ids()}
    return {(geo, upload_id) for geo, store in stack.stores.items()
            for upload_id in upload_ids(store)}


def _empty(folder: Path) -> None:
    if folder.is_dir():
        for entry in folder.iterdir():
            entry.unlink()


def upload_ids(store: Path) -> set[str]:
    """The uploads a geo store holds: one folder each, named by its id."""
    if not store.is_dir():
        return set()
    return {entry.name for entry in store.iterdir() if is_upload_id(entry.name)}


def _delete_if_idle(stack: Stack, session: requests.Session, geo: str, upload_id: str) -> bool:
    url = f"{stack.url(geo)}/uploads/{upload_id}"
    response = session.get(url, headers=stack.geo_auth, timeout=30)
    if response.status_code == 404:
        return True
    if response.json().get("state") in BUSY_STATES:
        return False
    return session.delete(url, headers=stack.geo_auth, timeout=30).status_code in (204, 404)
