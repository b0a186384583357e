"""Stacks whose store is a prefix of the run's one SeaweedFS bucket.

A stack on S3 is the usual stack with ``HANDOFF_STORE_URL`` pointing at a
fresh prefix and SeaweedFS's ``AWS_*`` variables; each test reads the
bucket back through :class:`S3Bucket`, the store's own adapter, under the
same prefix. The clients that tests kill mid-body are curl processes,
sending at a bounded rate.
"""

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest
import requests

from devstack import seaweedfs as weed
from geo_service.store.bucket import ObjectInfo, PendingWrite
from geo_service.store.s3 import S3Bucket
from tests.support import objectstores
from tests.support.objectstores import ObjectServer
from tests.support.processes import Processes
from tests.support.stacks import DEFAULT_COMPONENTS, Stack


@dataclass
class S3Stack:
    """A running stack and a view of its prefix in the bucket."""

    stack: Stack
    bucket: S3Bucket

    def objects(self, upload_id: str) -> dict[str, int]:
        """Every object of the upload: key (below the upload) → size."""
        return {info.key.removeprefix(f"{upload_id}/"): info.size
                for info in self.listing(f"{upload_id}/")}

    def listing(self, prefix: str = "") -> list[ObjectInfo]:
        return list(self.bucket.listing(prefix))

    def pending(self, prefix: str = "") -> list[PendingWrite]:
        """Multipart uploads begun and neither completed nor aborted."""
        return list(self.bucket.pending(prefix))


#: Slow enough that a client is surely mid-body when a test breaks something, in bytes/s.
RATE = "24M"
TUS = {"Tus-Resumable": "1.0.0"}


def curl(*args: str, output: str = "/dev/null") -> list[str]:
    """curl sending at :data:`RATE`, its answer's body to ``output``."""
    return ["curl", "-sS", "-o", output, "--limit-rate", RATE, *args]


def headers(s3: S3Stack, extra: dict[str, str]) -> list[str]:
    """curl's ``-H`` arguments for the stack's client credentials and ``extra``."""
    return [arg for name, value in {**s3.stack.client_headers, **extra}.items()
            for arg in ("-H", f"{name}: {value}")]


def tus_create(s3: S3Stack, length: int) -> str:
    """A new tus upload of ``length`` bytes (purpose ``raw``) through the API; its URL."""
    metadata = f"purpose {base64.b64encode(b'raw').decode()},filename YS5iaW4="
    answer = requests.post(f"{s3.stack.api_url}/v1/uploads", timeout=30, headers={
        **s3.stack.client_headers, **TUS, "Upload-Length": str(length),
        "Upload-Metadata": metadata})
    assert answer.status_code == 201, answer.text
    return f"{s3.stack.api_url}{answer.headers['Location']}"


def s3_overrides(server: ObjectServer, prefix: str, **more: str) -> dict[str, str]:
    """The settings that put a stack's store in ``prefix`` of ``server``'s bucket."""
    return {**server.env, "HANDOFF_STORE_URL": server.url("s3", prefix), **more}


def s3_view(server: ObjectServer, prefix: str) -> S3Bucket:
    return S3Bucket(weed.client(server.env), server.bucket, prefix)


@pytest.fixture
def make_s3_stack(processes: Processes, seaweedfs: ObjectServer) -> Callable[..., S3Stack]:
    """Start a private stack on a fresh prefix of the run's SeaweedFS; stopped at teardown."""
    def _make(overrides: dict[str, str] | None = None,
              components: Sequence[str] = DEFAULT_COMPONENTS, replicas: int = 0) -> S3Stack:
        prefix = objectstores.fresh_prefix()
        stack = processes.stack("s3-stack", s3_overrides(seaweedfs, prefix, **(overrides or {})),
                                components, replicas)
        return S3Stack(stack, s3_view(seaweedfs, prefix))

    return _make
