"""Where the filesystem store keeps things, for tests that look at or damage the disk itself.

Everything else goes through the store's methods; only these helpers (and
the store) know the layout.
"""

import json
from pathlib import Path
from typing import Any

from geo_service.store.filesystem import (
    CANCELLED,
    CLAIM,
    FILES,
    INFO,
    JOB,
    LOCKS,
    MANIFEST,
    PROGRESS,
    RESULT,
    TENANT,
    TRASH,
    FileStore,
)
from handoff.ids import new_upload_id

__all__ = [
    "CANCELLED",
    "CLAIM",
    "FILES",
    "INFO",
    "JOB",
    "LOCKS",
    "MANIFEST",
    "PROGRESS",
    "RESULT",
    "TENANT",
    "TRASH",
    "file_path",
    "folder",
    "internal",
    "interrupted_removal",
    "lock_path",
    "marker",
    "read_marker",
    "removals_dir",
    "sealed_upload",
    "stop_path",
    "write_marker",
]


def folder(store: FileStore, upload_id: str) -> Path:
    return store.root / upload_id


def file_path(store: FileStore, upload_id: str, index: int = 0) -> Path:
    return folder(store, upload_id) / FILES / str(index)


def marker(store: FileStore, upload_id: str, name: str) -> Path:
    return folder(store, upload_id) / name


def read_marker(store: FileStore, upload_id: str, name: str) -> Any:
    return json.loads(marker(store, upload_id, name).read_text())


def write_marker(store: FileStore, upload_id: str, name: str, payload: Any) -> None:
    marker(store, upload_id, name).write_text(json.dumps(payload))


def lock_path(store: FileStore, upload_id: str) -> Path:
    return store.locker.lock_path(upload_id)


def stop_path(store: FileStore, upload_id: str) -> Path:
    return store.root / LOCKS / f"{upload_id}.stop"


def removals_dir(store: FileStore) -> Path:
    return store.root / TRASH


def internal() -> set[str]:
    """The names of the store's own folders in its root."""
    return {LOCKS, TRASH}


def sealed_upload(store: FileStore, data: bytes = b"payload") -> str:
    """A complete upload of one file, made through the store, its lock file left behind."""
    upload_id = new_upload_id()
    store.create(upload_id, "alice")
    with store.lock(upload_id):
        with store.open_writer(upload_id, 0) as writer:
            writer.write(data)
            writer.commit()
        store.seal(upload_id, {"id": upload_id, "files": [{"name": "a", "size": len(data)}]})
    return upload_id


def interrupted_removal(store: FileStore, size: int = 1000) -> Path:
    """What a crash half-way through a removal leaves: an upload in the trash."""
    upload_id = sealed_upload(store, b"x" * size)
    left = removals_dir(store) / f"{upload_id}.123"
    folder(store, upload_id).rename(left)
    return left
