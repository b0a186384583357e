"""The upload store: where an upload's bytes and markers live, behind one interface.

Code outside this package uses :class:`UploadStore`'s methods only, on the
store :func:`open_store` gives; only the implementation knows a layout.
"""

from pathlib import Path

from geo_service.store.base import (
    AppendWriter,
    Busy,
    FileWriter,
    InvalidId,
    LockFile,
    LockLost,
    LockWait,
    Marker,
    StopReason,
    Timeline,
    UploadExists,
    UploadMissing,
    UploadStore,
    check_id,
)
from geo_service.store.filesystem import FileStore
from geo_service.store.locks import held
from handoff.config import Settings
from handoff.states import State


def open_store(settings: Settings) -> UploadStore:
    """The configured store: this replica's folder, ``settings.store_root``."""
    return open_store_at(settings.store_root)


def open_store_at(root: Path) -> UploadStore:
    """The store kept at ``root``, for tools that are given a location rather than settings."""
    return FileStore(root)


__all__ = ["AppendWriter", "Busy", "FileStore", "FileWriter", "InvalidId", "LockFile", "LockLost",
           "LockWait", "Marker", "State", "StopReason", "Timeline", "UploadExists", "UploadMissing",
           "UploadStore", "check_id", "held", "open_store", "open_store_at"]
