"""The upload store: where an upload's bytes and markers live, behind one interface."""

from geo_service.store.filesystem import (
    InvalidId,
    LockFile,
    Timeline,
    UploadExists,
    UploadMissing,
    UploadStore,
)
from geo_service.store.locks import Busy
from handoff.states import State

__all__ = ["Busy", "InvalidId", "LockFile", "State", "Timeline", "UploadExists", "UploadMissing",
           "UploadStore"]
