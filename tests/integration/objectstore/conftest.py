"""Stacks whose store is a prefix of the run's one SeaweedFS bucket.

A stack on S3 is the usual stack with ``HANDOFF_STORE_URL`` pointing at a
fresh prefix and SeaweedFS's ``AWS_*`` variables; each test reads the
bucket back through :class:`S3Bucket`, the store's own adapter, under the
same prefix.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest

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
