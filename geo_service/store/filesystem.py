"""The upload store: the only code that knows how uploads are laid out on disk.

::

    <root>/<id>/tenant.json     who sent it, written with the folder
    <root>/<id>/info.json       a resumable upload's creation: purpose, metadata, name, length
    <root>/<id>/progress.json   a resumable upload's durable offset and its sha256 state there
    <root>/<id>/cancelled.json  its tenant cancelled it: the writer or worker stops
    <root>/<id>/files/<n>       the bytes, named by position, never by the client
    <root>/<id>/manifest.json   written last, atomically: "fully written"
    <root>/<id>/job.json        the API enqueued a job for it
    <root>/<id>/claim.json      a worker took the job
    <root>/<id>/result.json     the processor's outcome (done or failed)
    <root>/<id>/announce.json   announcements of the outcome not yet enqueued
    <root>/<id>/work/           scratch space for processors
    <root>/.locks/<id>.lock     the upload's advisory lock
    <root>/.locks/<id>.stop     someone waits for the lock: its holder should let go
    <root>/.trash/<id>.<ns>/    an upload being deleted

An upload is deleted by renaming it into ``.trash`` first, so readers see it
vanish at once and a crash half-way through the removal is finished later.

Other code goes through :class:`UploadStore`'s methods; the names below are
for tests and tools that lay out or inspect a store on disk.
"""

import json
import os
import shutil
import stat
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from geo_service.store.locks import held
from handoff.auth import ANONYMOUS
from handoff.ids import is_upload_id
from handoff.jsontext import dumps
from handoff.server.blocking import off_loop
from handoff.states import State

TENANT = "tenant.json"
INFO = "info.json"
PROGRESS = "progress.json"
CANCELLED = "cancelled.json"
MANIFEST = "manifest.json"
JOB = "job.json"
CLAIM = "claim.json"
RESULT = "result.json"
ANNOUNCE = "announce.json"
FILES = "files"
WORK = "work"
LOCKS = ".locks"
TRASH = ".trash"
_LOCK_SUFFIX = ".lock"


@dataclass(frozen=True)
class Timeline:
    """An upload's state and when it reached each step, for rules that judge by age.

    Times are the markers' mtimes (POSIX timestamps), ``None`` for a step not
    reached. ``last_activity``, when bytes last arrived, is only read while
    the upload is receiving: finding it walks the whole upload.
    """

    state: State
    last_activity: float | None
    manifest_time: float | None
    job_time: float | None
    claim_time: float | None
    result_time: float | None


class LockFile(NamedTuple):
    upload_id: str
    mtime: float


class InvalidId(ValueError):
    """Not a canonical upload id; no path was built from it."""


class UploadExists(Exception):
    """An upload with this id is already on disk."""


class UploadMissing(Exception):
    """No upload with this id is on disk."""


class UploadStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        (self.root / LOCKS).mkdir(parents=True, exist_ok=True)
        (self.root / TRASH).mkdir(exist_ok=True)

    # -- paths ---------------------------------------------------------------

    def path(self, upload_id: str) -> Path:
        if not is_upload_id(upload_id):
            raise InvalidId(upload_id)
        return self.root / upload_id

    def file_path(self, upload_id: str, index: int) -> Path:
        return self.path(upload_id) / FILES / str(index)

    def work_dir(self, upload_id: str) -> Path:
        return self.path(upload_id) / WORK

    def lock(self, upload_id: str, timeout: float = 0) -> AbstractContextManager[None]:
        """The upload's exclusive lock (see :mod:`geo_service.store.locks`)."""
        return held(self._lock_path(upload_id), timeout)

    def _lock_path(self, upload_id: str) -> Path:
        self.path(upload_id)
        return self.root / LOCKS / f"{upload_id}{_LOCK_SUFFIX}"

    def take_over(self, upload_id: str, timeout: float) -> AbstractContextManager[None]:
        """The upload's lock, asking its holder to let go while waiting for it."""
        self.path(upload_id)
        return held(self.root / LOCKS / f"{upload_id}.lock", timeout,
                    stop=self._stop_path(upload_id))

    def stop_requested(self, upload_id: str) -> bool:
        """Whether someone waits for the lock this caller holds (see :meth:`take_over`)."""
        return self._stop_path(upload_id).exists()

    def _stop_path(self, upload_id: str) -> Path:
        return self.root / LOCKS / f"{upload_id}.stop"

    # -- life cycle ----------------------------------------------------------

    def create(self, upload_id: str, tenant: str = ANONYMOUS) -> Path:
        """Make ``tenant``'s upload folder; the caller must lock it before writing.

        The tenant is recorded at once, so the upload is its tenant's alone
        (to see, or to cancel) while it is still being received.
        """
        folder = self.path(upload_id)
        try:
            folder.mkdir()
        except FileExistsError:
            raise UploadExists(upload_id) from None
        _write_json(folder / TENANT, {"tenant": tenant})
        (folder / FILES).mkdir()
        return folder

    def create_resumable(self, upload_id: str, tenant: str, info: dict[str, Any],
                         progress: dict[str, Any]) -> None:
        """Make an empty resumable upload: its info, its progress, an empty ``files/0``.

        The progress is written last: it is what appending reads first, so an
        upload without it was never completely created and is the sweeper's.
        """
        folder = self.create(upload_id, tenant)
        _write_json(folder / INFO, info)
        with open(self.file_path(upload_id, 0), "xb") as handle:
            off_loop(os.fsync, handle.fileno())
        _fsync_dir(folder / FILES)
        _write_json(folder / PROGRESS, progress)

    def set_info(self, upload_id: str, info: dict[str, Any]) -> None:
        self._write_marker(upload_id, INFO, info)

    def save_progress(self, upload_id: str, progress: dict[str, Any]) -> None:
        """Record a resumable upload's progress; its bytes up to there must be fsynced first."""
        self._write_marker(upload_id, PROGRESS, progress)

    def truncate(self, upload_id: str, size: int) -> None:
        """Cut the resumable upload's file back to ``size`` bytes, durably."""
        with open(self.file_path(upload_id, 0), "r+b", buffering=0) as handle:
            handle.truncate(size)
            off_loop(os.fsync, handle.fileno())

    def seal(self, upload_id: str, manifest: dict[str, Any]) -> None:
        """Mark the upload complete: its files are durable, then the manifest is."""
        folder = self.path(upload_id)
        _fsync_dir(folder / FILES)
        _write_json(folder / MANIFEST, manifest)

    def mark_queued(self, upload_id: str, job: dict[str, Any]) -> None:
        self._write_marker(upload_id, JOB, job)

    def requeued(self, upload_id: str, message_id: str) -> int:
        """Record that the job was enqueued again; returns the requeue count.

        The job marker is rewritten, so its time is the new message's, and
        it keeps how many times the queue lost the message.
        """
        job = self.read(upload_id, JOB) or {}
        count = int(job.get("requeues", 0)) + 1
        self._write_marker(upload_id, JOB, {**job, "message_id": message_id,
                                            "enqueued_at": time.time(), "requeues": count})
        return count

    def claim(self, upload_id: str, claim: dict[str, Any]) -> None:
        self._write_marker(upload_id, CLAIM, claim)

    def finish(self, upload_id: str, result: dict[str, Any]) -> None:
        self._write_marker(upload_id, RESULT, result)

    def set_announcement(self, upload_id: str, record: dict[str, Any]) -> None:
        """Remember what still has to be announced, before the result it announces.

        Written first, so a crash or a broker outage between recording the
        result and enqueueing its announcements leaves this behind for the
        sweeper to send, instead of an outcome nobody is told about.
        """
        self._write_marker(upload_id, ANNOUNCE, record)

    def announcement(self, upload_id: str) -> dict[str, Any] | None:
        return self.read(upload_id, ANNOUNCE)

    def clear_announcement(self, upload_id: str) -> None:
        folder = self.path(upload_id)
        (folder / ANNOUNCE).unlink(missing_ok=True)
        _fsync_dir(folder)

    def mark_cancelled(self, upload_id: str) -> None:
        """Ask whoever holds the lock (writer or worker) to stop and remove the upload."""
        self._write_marker(upload_id, CANCELLED, {"cancelled_at": time.time()})

    def remove(self, upload_id: str) -> int:
        """Delete the upload; returns the bytes freed. The caller holds the lock."""
        folder = self.path(upload_id)
        size = _tree_size(folder)
        target = self.root / TRASH / f"{upload_id}.{time.time_ns()}"
        try:
            folder.rename(target)
        except FileNotFoundError:
            raise UploadMissing(upload_id) from None
        shutil.rmtree(target, ignore_errors=True)
        return size

    def remove_lock_file(self, upload_id: str) -> None:
        """Delete the lock file of an upload that is gone; the caller holds the lock.

        Lock files outlive their uploads (waiters must share one inode), so
        without this ``.locks`` would grow by one file per upload for ever.
        """
        self._lock_path(upload_id).unlink(missing_ok=True)

    def empty_trash(self) -> int:
        """Finish removals that a crash interrupted; returns the bytes freed."""
        freed = 0
        for entry in (self.root / TRASH).iterdir():
            freed += _tree_size(entry)
            shutil.rmtree(entry, ignore_errors=True)
        return freed

    # -- reading -------------------------------------------------------------

    def exists(self, upload_id: str) -> bool:
        return self.path(upload_id).is_dir()

    def cancelled(self, upload_id: str) -> bool:
        return (self.path(upload_id) / CANCELLED).exists()

    def tenant(self, upload_id: str) -> str:
        """Who sent the upload; ANONYMOUS for one stored before tenants were recorded."""
        recorded = self.read(upload_id, TENANT) or {}
        return str(recorded.get("tenant") or ANONYMOUS)

    def manifest(self, upload_id: str) -> dict[str, Any] | None:
        """What was stored (files, purpose, metadata); None until the upload is complete."""
        return self.read(upload_id, MANIFEST)

    def info(self, upload_id: str) -> dict[str, Any] | None:
        """A resumable upload's creation (purpose, metadata, name, length); None for multipart."""
        return self.read(upload_id, INFO)

    def progress(self, upload_id: str) -> dict[str, Any] | None:
        """A resumable upload's last progress record (see :meth:`save_progress`)."""
        return self.read(upload_id, PROGRESS)

    def job(self, upload_id: str) -> dict[str, Any] | None:
        """The job the API enqueued (its message id, requeues); None until then."""
        return self.read(upload_id, JOB)

    def read(self, upload_id: str, name: str) -> dict[str, Any] | None:
        try:
            return json.loads((self.path(upload_id) / name).read_text())
        except FileNotFoundError:
            return None

    def state(self, upload_id: str) -> State:
        folder = self.path(upload_id)
        if not folder.is_dir():
            raise UploadMissing(upload_id)
        result = self.read(upload_id, RESULT)
        if result is not None:
            return State(result["status"])
        markers = ((CLAIM, State.CLAIMED), (JOB, State.QUEUED), (MANIFEST, State.COMPLETE))
        for name, state in markers:
            if (folder / name).exists():
                return state
        return State.RECEIVING

    def status(self, upload_id: str) -> dict[str, Any]:
        """Everything known about the upload, for GET and for the API's status."""
        state = self.state(upload_id)
        return {
            "id": upload_id,
            "state": str(state),
            "tenant": self.tenant(upload_id),
            "cancelled": self.cancelled(upload_id),
            "manifest": self.read(upload_id, MANIFEST),
            "info": self.info(upload_id),
            "offset": (self.progress(upload_id) or {}).get("offset"),
            "job": self.read(upload_id, JOB),
            "claim": self.read(upload_id, CLAIM),
            "result": self.read(upload_id, RESULT),
        }

    def upload_ids(self) -> Iterator[str]:
        """Ids of the uploads in the root; other entries are not yielded."""
        with os.scandir(self.root) as entries:
            for entry in entries:
                if is_upload_id(entry.name) and entry.is_dir(follow_symlinks=False):
                    yield entry.name

    def stray_entries(self) -> Iterator[str]:
        """Names in the root that are neither uploads nor the store's own folders."""
        with os.scandir(self.root) as entries:
            for entry in entries:
                if entry.name in (LOCKS, TRASH):
                    continue
                if not (is_upload_id(entry.name) and entry.is_dir(follow_symlinks=False)):
                    yield entry.name

    def has_entry(self, upload_id: str) -> bool:
        """Whether anything at all, even a file or a dangling link, is at the upload's path."""
        return os.path.lexists(self.path(upload_id))

    def lock_files(self) -> Iterator[LockFile]:
        """The lock files named after an upload id, with their mtimes; nothing else."""
        with os.scandir(self.root / LOCKS) as entries:
            for entry in entries:
                upload_id = entry.name.removesuffix(_LOCK_SUFFIX)
                if upload_id == entry.name or not is_upload_id(upload_id):
                    continue
                try:
                    if entry.is_file(follow_symlinks=False):
                        yield LockFile(upload_id, entry.stat(follow_symlinks=False).st_mtime)
                except FileNotFoundError:
                    continue

    def timeline(self, upload_id: str) -> Timeline:
        """The upload's state and step times; raises UploadMissing if no real folder is there.

        An entry that is not a directory (a symlink swapped in after the
        listing, say) counts as missing, so nobody acts through a link.
        """
        try:
            mode = os.lstat(self.path(upload_id)).st_mode
        except FileNotFoundError:
            raise UploadMissing(upload_id) from None
        if not stat.S_ISDIR(mode):
            raise UploadMissing(upload_id)
        state = self.state(upload_id)
        return Timeline(
            state=state,
            last_activity=self.last_activity(upload_id) if state is State.RECEIVING else None,
            manifest_time=self.marker_time(upload_id, MANIFEST),
            job_time=self.marker_time(upload_id, JOB),
            claim_time=self.marker_time(upload_id, CLAIM),
            result_time=self.marker_time(upload_id, RESULT),
        )

    def last_activity(self, upload_id: str) -> float:
        """Newest modification time inside the upload: when bytes last arrived."""
        return _newest_mtime(self.path(upload_id))

    def marker_time(self, upload_id: str, name: str) -> float | None:
        try:
            return (self.path(upload_id) / name).stat().st_mtime
        except FileNotFoundError:
            return None

    def size(self, upload_id: str) -> int:
        return _tree_size(self.path(upload_id))

    def _write_marker(self, upload_id: str, name: str, payload: dict[str, Any]) -> None:
        folder = self.path(upload_id)
        if not folder.is_dir():
            raise UploadMissing(upload_id)
        _write_json(folder / name, payload)


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` so that readers see either nothing or all of it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as handle:
        handle.write(dumps(payload))
        handle.flush()
        off_loop(os.fsync, handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        off_loop(os.fsync, fd)
    finally:
        os.close(fd)


def _walk(path: Path) -> Iterator[os.stat_result]:
    """Stat every entry below ``path`` without following symlinks."""
    try:
        yield path.lstat()
        with os.scandir(path) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    yield from _walk(Path(entry.path))
                else:
                    yield entry.stat(follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError):
        return


def _tree_size(path: Path) -> int:
    return sum(st.st_size for st in _walk(path) if not _is_dir(st))


def _newest_mtime(path: Path) -> float:
    return max((st.st_mtime for st in _walk(path)), default=0.0)


def _is_dir(st: os.stat_result) -> bool:
    return stat.S_ISDIR(st.st_mode)
