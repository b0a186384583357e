"""The upload store's interface: what the services may ask of any store.

Drawn after tusd's DataStore and Locker: an upload is created, its files are
written as streams, a resumable file grows by appends at an offset, and the
upload is sealed with its manifest; markers record its state. Nothing here
names a path: a filesystem keeps files as files, an object store as objects
written in parts (an S3 multipart upload, Azure staged blocks), so a file is
visible only once committed, and a lock may be a Redis key with an expiry
rather than a flock. Callers never learn where bytes live, except for a
file's own local path where the store has one (:meth:`UploadStore.local_path`),
which a job's processor may read in place.

An implementation provides primitives only: markers are read, timed,
written and deleted whole (an object store keeps each as one small object),
and what each marker means, the upload's state among them, is derived here
once.

Every method that changes an upload expects the caller to hold its lock
(:meth:`UploadStore.lock`), except :meth:`UploadStore.create` and
:meth:`UploadStore.mark_cancelled`, which a tenant's request may make while
someone else holds it.
"""

import enum
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from handoff.auth import ANONYMOUS
from handoff.ids import is_upload_id
from handoff.states import State


class InvalidId(ValueError):
    """Not a canonical upload id; nothing was looked up with it."""


class UploadExists(Exception):
    """An upload with this id is already stored."""


class UploadMissing(Exception):
    """No upload with this id is stored."""


class Busy(Exception):
    """Someone else holds the upload's lock."""


class LockLost(Exception):
    """The caller's lock expired and may be someone else's now: it must not write."""


def check_id(upload_id: str) -> str:
    """``upload_id`` if it is a canonical upload id; raises :class:`InvalidId` otherwise."""
    if not is_upload_id(upload_id):
        raise InvalidId(upload_id)
    return upload_id


class LockWait:
    """How long each kind of caller waits for an upload's lock, in seconds, all in one place.

    A worker waits long (the writer that just sealed the upload may still be
    answering); a cancel or a take-over waits as long as a client would for
    an answer; the sweeper never waits: a busy upload is not its to touch.
    """

    WORKER = 30.0
    CANCEL = 10.0
    TAKE_OVER = 10.0
    NONE = 0.0


class StopReason(enum.Enum):
    """Why the holder of an upload's lock should let go of it."""

    CANCELLED = "cancelled"  # its tenant cancelled it: stop and remove it
    WANTED = "wanted"  # another request waits for the lock: keep what is durable, let go


class Marker(enum.Enum):
    """The small records that say where an upload stands, each written whole or not at all.

    A filesystem keeps each as a file, an object store as one small object.
    """

    TENANT = "tenant"  # who sent it, written with the upload
    INFO = "info"  # a resumable upload's creation: purpose, metadata, name, length
    PROGRESS = "progress"  # a resumable upload's durable offset and its sha256 state there
    CANCELLED = "cancelled"  # its tenant cancelled it: the writer or worker stops
    MANIFEST = "manifest"  # written last: "fully written"
    JOB = "job"  # the API enqueued a job for it
    CLAIM = "claim"  # a worker took the job
    RESULT = "result"  # the processor's outcome (done or failed)
    ANNOUNCE = "announce"  # announcements of the outcome not yet enqueued


# The steps after receiving, furthest first, each known by its marker (the result aside).
_STEPS = ((Marker.CLAIM, State.CLAIMED), (Marker.JOB, State.QUEUED),
          (Marker.MANIFEST, State.COMPLETE))


def _reader(marker: Marker, doc: str) -> Callable[["UploadStore", str], dict[str, Any] | None]:
    """A method that reads one marker: what each of them means is in its name and ``doc``."""

    def read(self: "UploadStore", upload_id: str) -> dict[str, Any] | None:
        return self.read_marker(upload_id, marker)

    read.__doc__ = doc
    return read


@dataclass(frozen=True)
class Timeline:
    """An upload's state and when it reached each step, for rules that judge by age.

    Times are POSIX timestamps, ``None`` for a step not reached.
    ``last_activity``, when bytes last arrived, is only read while the
    upload is receiving: finding it may walk the whole upload.
    """

    state: State
    last_activity: float | None
    manifest_time: float | None
    job_time: float | None
    claim_time: float | None
    result_time: float | None


class LockFile(NamedTuple):
    """A lock record the store keeps for an upload id, and when it was last taken."""

    upload_id: str
    mtime: float


class FileWriter(ABC):
    """One new file of an upload, written as a stream; invisible until :meth:`commit`.

    An object store sends parts as they fill (S3 parts of at least 5 MiB
    but the last); closing without a commit aborts and leaves nothing.
    """

    @abstractmethod
    def write(self, data: bytes | memoryview) -> None: ...

    @abstractmethod
    def commit(self) -> int:
        """Make the file durable and visible; returns its size."""

    @abstractmethod
    def abort(self) -> None:
        """Drop what was written; nothing of the file stays visible."""

    def __enter__(self) -> "FileWriter":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.abort()


class AppendWriter(ABC):
    """A resumable upload's file, written on from an offset; durable at each :meth:`sync`."""

    @abstractmethod
    def write(self, data: bytes | memoryview) -> None: ...

    @abstractmethod
    def copy_from(self, upload_id: str, size: int) -> None:
        """Append the first ``size`` bytes of another upload's resumable file.

        Where the store can, the bytes are copied without passing through here.
        """

    @abstractmethod
    def sync(self) -> int:
        """Make every byte written so far durable; returns the file's size."""

    @abstractmethod
    def close(self) -> None:
        """Stop writing; bytes not synced may or may not have been kept."""

    def __enter__(self) -> "AppendWriter":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Locker(ABC):
    """Upload locks, apart from the bytes: flock beside a filesystem, Redis for an object store.

    A Redis locker would hold a key with an expiry and a fencing token, and
    keep the "let go" request as a key beside it.
    """

    @abstractmethod
    def lock(self, upload_id: str, timeout: float) -> AbstractContextManager[None]: ...

    @abstractmethod
    def take_over(self, upload_id: str, timeout: float) -> AbstractContextManager[None]:
        """The lock, asking its holder to let go while waiting for it."""

    @abstractmethod
    def stop_requested(self, upload_id: str) -> bool:
        """Whether someone waits in :meth:`take_over` for the lock this caller holds."""

    @abstractmethod
    def lock_files(self) -> Iterator[LockFile]: ...

    @abstractmethod
    def remove_lock_file(self, upload_id: str) -> None: ...

    @abstractmethod
    def ensure_held(self, upload_id: str) -> None:
        """Raise :class:`LockLost` unless this process still holds the lock; called before a commit.

        A lock with an expiry checks its fencing token here.
        """


class UploadStore(ABC):
    """Where uploads' bytes and markers live; see the module's docstring."""

    # -- locks -----------------------------------------------------------------

    @abstractmethod
    def lock(self, upload_id: str, timeout: float = LockWait.NONE
             ) -> AbstractContextManager[None]:
        """The upload's exclusive lock; raises :class:`Busy` after ``timeout`` seconds.

        It dies with its holder: a killed writer never blocks an upload for ever.
        """

    @abstractmethod
    def take_over(self, upload_id: str, timeout: float) -> AbstractContextManager[None]:
        """The upload's lock, asking its holder to let go while waiting (:meth:`stop_reason`)."""

    @abstractmethod
    def stop_reason(self, upload_id: str) -> StopReason | None:
        """Whether, and why, the lock holder should let go: what every writer polls."""

    # -- creating and writing --------------------------------------------------

    @abstractmethod
    def create(self, upload_id: str, tenant: str) -> None:
        """Make ``tenant``'s empty upload; raises :class:`UploadExists`."""

    @abstractmethod
    def create_resumable(self, upload_id: str, tenant: str, info: dict[str, Any],
                         progress: dict[str, Any]) -> None:
        """Make an empty resumable upload: its info, its empty file, then its progress.

        The progress comes last: an upload without it was never completely
        created and is the sweeper's.
        """

    @abstractmethod
    def open_writer(self, upload_id: str, index: int) -> FileWriter:
        """A writer for the upload's file number ``index``."""

    @abstractmethod
    def open_appender(self, upload_id: str, offset: int) -> AppendWriter:
        """A writer for the resumable upload's file, from ``offset`` (bytes after it are cut)."""

    @abstractmethod
    def durable_size(self, upload_id: str) -> int:
        """The resumable file's size once what is there is made durable."""

    @abstractmethod
    def truncate(self, upload_id: str, size: int) -> None:
        """Cut the resumable file back to ``size`` bytes, durably."""

    @abstractmethod
    def read_file(self, upload_id: str, index: int = 0, start: int = 0,
                  size: int | None = None) -> Iterator[bytes]:
        """The bytes of the upload's file ``index`` from ``start`` (``size`` of them, or all).

        Raises FileNotFoundError for a file that was never committed.
        """

    @abstractmethod
    def local_path(self, upload_id: str, index: int) -> Path | None:
        """The upload's file ``index`` as a local file, where the store keeps it as one.

        A processor may read it in place (never write it). None where the
        store has no local file (an object store): the worker downloads it
        into its own scratch space instead.
        """

    # -- markers: the primitives ------------------------------------------------

    @abstractmethod
    def write_marker(self, upload_id: str, marker: Marker, payload: dict[str, Any]) -> None:
        """Record ``payload`` as the marker, replacing any before it, durably and atomically.

        A reader sees the old record or the whole new one, never part of it.
        Raises :class:`UploadMissing`.
        """

    @abstractmethod
    def read_marker(self, upload_id: str, marker: Marker) -> dict[str, Any] | None:
        """The marker's record; None if it was never written (or the upload is missing)."""

    @abstractmethod
    def marker_time(self, upload_id: str, marker: Marker) -> float | None:
        """When the marker was last written (a POSIX timestamp); None if it is not there.

        Cheaper than reading it: writers ask per chunk whether they were cancelled.
        """

    @abstractmethod
    def delete_marker(self, upload_id: str, marker: Marker) -> None:
        """Remove the marker durably; one that is not there is no error."""

    @abstractmethod
    def file_location(self, index: int) -> str:
        """Where the store keeps an upload's file ``index``, as its manifest records it."""

    def has_marker(self, upload_id: str, marker: Marker) -> bool:
        return self.marker_time(upload_id, marker) is not None

    # -- markers: what each one means -------------------------------------------

    def seal(self, upload_id: str, manifest: dict[str, Any]) -> None:
        """Mark the upload complete: its files durable, then the manifest.

        ``manifest["files"]`` lists the files in index order; the store fills
        in where each is (an entry's ``path``, in ``manifest`` itself), nobody
        else. Committed files are durable here; a store that needs more
        before the manifest (a folder's fsync) does it, then calls this.
        """
        manifest["files"] = [{"path": self.file_location(index)}
                             | {k: v for k, v in entry.items() if k != "path"}
                             for index, entry in enumerate(manifest["files"])]
        self.write_marker(upload_id, Marker.MANIFEST, manifest)

    def set_info(self, upload_id: str, info: dict[str, Any]) -> None:
        self.write_marker(upload_id, Marker.INFO, info)

    def save_progress(self, upload_id: str, progress: dict[str, Any]) -> None:
        """Record a resumable upload's progress; its bytes up to there must be synced first."""
        self.write_marker(upload_id, Marker.PROGRESS, progress)

    def mark_queued(self, upload_id: str, job: dict[str, Any]) -> None:
        self.write_marker(upload_id, Marker.JOB, job)

    def requeued(self, upload_id: str, message_id: str) -> int:
        """Rewrite the job marker, so its time is the new message's; returns the requeues so far."""
        job = self.job(upload_id) or {}
        count = int(job.get("requeues", 0)) + 1
        self.write_marker(upload_id, Marker.JOB, {**job, "message_id": message_id,
                                                  "enqueued_at": time.time(), "requeues": count})
        return count

    def claim(self, upload_id: str, claim: dict[str, Any]) -> None:
        self.write_marker(upload_id, Marker.CLAIM, claim)

    def finish(self, upload_id: str, result: dict[str, Any],
               announcement: dict[str, Any] | None = None) -> None:
        """Record the outcome, and what of it is still to be announced, together.

        The announcement is recorded first, so a crash between the two
        leaves it for the sweeper to send, never an outcome nobody is told of.
        """
        if announcement is not None:
            self.set_announcement(upload_id, announcement)
        self.write_marker(upload_id, Marker.RESULT, result)

    def set_announcement(self, upload_id: str, record: dict[str, Any]) -> None:
        self.write_marker(upload_id, Marker.ANNOUNCE, record)

    def clear_announcement(self, upload_id: str) -> None:
        self.delete_marker(upload_id, Marker.ANNOUNCE)

    def mark_cancelled(self, upload_id: str) -> None:
        """Ask whoever holds the lock (writer or worker) to stop and remove the upload."""
        self.write_marker(upload_id, Marker.CANCELLED, {"cancelled_at": time.time()})

    def cancelled(self, upload_id: str) -> bool:
        return self.has_marker(upload_id, Marker.CANCELLED)

    @abstractmethod
    def exists(self, upload_id: str) -> bool: ...

    def tenant(self, upload_id: str) -> str:
        """Who sent the upload; ANONYMOUS for one stored before tenants were recorded."""
        recorded = self.read_marker(upload_id, Marker.TENANT) or {}
        return str(recorded.get("tenant") or ANONYMOUS)

    manifest = _reader(Marker.MANIFEST, "What was stored (files, purpose, metadata); "
                                         "None until the upload is complete.")
    info = _reader(Marker.INFO, "A resumable upload's creation (purpose, metadata, name, "
                                "length); None for multipart.")
    progress = _reader(Marker.PROGRESS, "A resumable upload's durable offset and its sha256 state.")
    job = _reader(Marker.JOB, "What the API enqueued; None until it did.")
    claimed = _reader(Marker.CLAIM, "Which worker took the job; None until one did.")
    result = _reader(Marker.RESULT, "The processor's outcome, with its ``status``; None until "
                                    "there is one.")
    announcement = _reader(Marker.ANNOUNCE, "What of the outcome is still to be announced.")

    def state(self, upload_id: str) -> State:
        """The furthest step the upload has a marker for; raises :class:`UploadMissing`."""
        if not self.exists(upload_id):
            raise UploadMissing(upload_id)
        result = self.result(upload_id)
        if result is not None:
            return State(result["status"])
        for marker, state in _STEPS:
            if self.has_marker(upload_id, marker):
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
            "manifest": self.manifest(upload_id),
            "info": self.info(upload_id),
            "offset": (self.progress(upload_id) or {}).get("offset"),
            "job": self.job(upload_id),
            "claim": self.claimed(upload_id),
            "result": self.result(upload_id),
        }

    def timeline(self, upload_id: str) -> Timeline:
        """The state and step times; raises :class:`UploadMissing`, even for a non-upload."""
        state = self.state(upload_id)
        return Timeline(
            state=state,
            last_activity=self.last_activity(upload_id) if state is State.RECEIVING else None,
            manifest_time=self.marker_time(upload_id, Marker.MANIFEST),
            job_time=self.marker_time(upload_id, Marker.JOB),
            claim_time=self.marker_time(upload_id, Marker.CLAIM),
            result_time=self.marker_time(upload_id, Marker.RESULT),
        )

    @abstractmethod
    def last_activity(self, upload_id: str) -> float:
        """When bytes last arrived."""

    # -- removing --------------------------------------------------------------

    @abstractmethod
    def remove(self, upload_id: str) -> int:
        """Delete the upload at once for readers; returns the bytes freed."""

    def remove_if_cancelled(self, upload_id: str) -> bool:
        """Remove the upload if its tenant cancelled it; whether it did (the caller holds the lock).

        The one way a cancelled upload goes: whoever holds the lock when it
        learns of the cancel (writer, worker) removes it here.
        """
        if not self.cancelled(upload_id):
            return False
        self.remove(upload_id)
        return True

    # -- the sweeper's view ----------------------------------------------------

    @abstractmethod
    def upload_ids(self) -> Iterator[str]: ...

    @abstractmethod
    def stray_entries(self) -> Iterator[str]:
        """Names the store holds that are neither uploads nor its own."""

    @abstractmethod
    def has_entry(self, upload_id: str) -> bool:
        """Whether anything at all, even something not an upload, is stored under the id."""

    @abstractmethod
    def size(self, upload_id: str) -> int: ...

    @abstractmethod
    def lock_files(self) -> Iterator[LockFile]: ...

    @abstractmethod
    def remove_lock_file(self, upload_id: str) -> None:
        """Forget the lock record of an upload that is gone; the caller holds the lock."""

    @abstractmethod
    def unfinished_removals(self) -> list[str]:
        """Removals begun but not finished (a crash in between); :meth:`empty_trash` ends them."""

    @abstractmethod
    def empty_trash(self) -> int:
        """Finish removals that a crash interrupted; returns the bytes freed."""

    @abstractmethod
    def abort_abandoned(self, before: float) -> int:
        """Abort files begun before ``before`` (a POSIX time) by writers that are gone.

        Half-written files of an object store (a multipart upload, staged
        blocks) are listed nowhere but here and cost storage until aborted.
        Returns how many were aborted.
        """

    # -- the store as a whole --------------------------------------------------

    @abstractmethod
    def problem(self) -> str | None:
        """What keeps the store from serving, for readiness; None when it can."""

    @abstractmethod
    def free_bytes(self) -> int:
        """Room left for uploads, for placement."""

    @abstractmethod
    def describe(self) -> str:
        """Where the store is, for messages."""
