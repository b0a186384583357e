"""Helpers shared by the sweeper's tests: real stores, real locks, aged mtimes.

The rules judge uploads by modification times, so an upload is made "old"
by moving its mtimes back with ``os.utime`` instead of by sleeping.
"""

import os
import time
from pathlib import Path

from geo_service.store import UploadStore
from handoff.ids import new_upload_id
from tests.geo_service.store import disk

PAYLOAD = b"x" * 1000

_STEPS = ("complete", "queued", "claimed", "done", "failed")

def make_upload(store: UploadStore, state: str, age: float = 0.0) -> str:
    """An upload in ``state`` (a ``State`` value) whose every mtime is ``age`` seconds old."""
    upload_id = new_upload_id()
    store.create(upload_id)
    disk.file_path(store, upload_id, 0).write_bytes(PAYLOAD)
    if state != "receiving":
        store.seal(upload_id, {"files": [{"name": "0", "size": len(PAYLOAD)}]})
    if state in _STEPS[1:]:
        store.mark_queued(upload_id, {"purpose": "raw"})
    if state in _STEPS[2:]:
        store.claim(upload_id, {"worker": "test"})
    if state in ("done", "failed"):
        store.finish(upload_id, {"status": state})
    age_tree(disk.folder(store, upload_id), age)
    return upload_id


def age_tree(path: Path, age: float) -> None:
    """Set the mtime of ``path`` and everything below it to ``age`` seconds ago."""
    stamp = time.time() - age
    for folder, dirs, files in os.walk(path, topdown=False):
        for name in dirs + files:
            os.utime(Path(folder) / name, (stamp, stamp), follow_symlinks=False)
    os.utime(path, (stamp, stamp), follow_symlinks=False)


def age_file(path: Path, age: float) -> None:
    stamp = time.time() - age
    os.utime(path, (stamp, stamp), follow_symlinks=False)


