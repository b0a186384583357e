"""The soak on an S3 store: an embedded SeaweedFS as one more part of the stack to kill.

``HANDOFF_SOAK_STORE=s3`` selects it. SeaweedFS runs as the component
``s3``, on the same ports at every restart (its data folder stays), and
the stack's services store into ``s3://handoff-soak/soak`` with their
locks in the stack's valkey. The checker opens the same store to find
what was left behind, including part uploads nobody completed.
"""

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import redis

from devstack import processes, seaweedfs
from devstack.processes import LocalStack
from geo_service.store import ObjectStore, UploadStore, open_store_at
from geo_service.store.redis_locks import RedisLocker
from geo_service.store.s3 import S3Bucket
from handoff.config import parse_store_url

STORES = ("file", "s3")
BUCKET = "handoff-soak"
PREFIX = "soak"
#: The component name of the object store's server.
S3 = "s3"


def chosen_store() -> str:
    """``HANDOFF_SOAK_STORE`` (``file``, the default, or ``s3``); anything else stops the run."""
    store = os.environ.get("HANDOFF_SOAK_STORE") or "file"
    if store not in STORES:
        raise SystemExit(f"soak: HANDOFF_SOAK_STORE must be one of {', '.join(STORES)}")
    return store


@dataclass
class SoakStack(LocalStack):
    """A local stack that can also run SeaweedFS as the component ``s3``."""

    s3_argv: list[str] = field(default_factory=list)
    s3_env: dict[str, str] = field(default_factory=dict)

    def start(self, name: str, argv: list[str] | None = None,
              log_path: Path | None = None) -> subprocess.Popen:
        if name != S3:
            return super().start(name, argv, log_path)
        proc = super().start(name, self.s3_argv, log_path)
        seaweedfs.wait_ready(self.s3_env, proc)
        return proc


def with_s3(stack: SoakStack) -> None:
    """Make ``stack`` run SeaweedFS, and its services store into its bucket."""
    port = processes.free_port()
    folder = stack.root / "seaweedfs"
    folder.mkdir(parents=True, exist_ok=True)
    stack.s3_argv = seaweedfs.argv(folder, port)
    stack.s3_env = seaweedfs.environment(port)
    stack.env.update(stack.s3_env, HANDOFF_STORE_URL=f"s3://{BUCKET}/{PREFIX}")


def start_s3(stack: SoakStack) -> None:
    """Start SeaweedFS and create the bucket, before the services that use it."""
    stack.start(S3)
    seaweedfs.ensure_bucket(stack.s3_env, BUCKET)


def open_checked_store(stack: LocalStack) -> UploadStore:
    """The store the stack's services use, opened by the checker."""
    url = stack.env.get("HANDOFF_STORE_URL")
    if not url:
        return open_store_at(stack.uploads)
    parsed = parse_store_url(url)
    locks = redis.Redis.from_url(stack.env["HANDOFF_REDIS_URL"], socket_timeout=5.0)
    return ObjectStore(S3Bucket(seaweedfs.client(stack.env), parsed.location, parsed.prefix),
                       RedisLocker(locks, str(parsed)))


def unfinished_writes(store: UploadStore) -> list[str]:
    """Part uploads begun and neither completed nor aborted (none for a folder store)."""
    if not isinstance(store, ObjectStore):
        return []
    return [f"part upload {write.key}" for write in store.bucket.pending("")]
