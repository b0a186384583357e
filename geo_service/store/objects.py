"""The object store: uploads as objects in a bucket, the only code that knows their layout.

::

    <id>/<marker>.json          one small object per marker, PUT whole; its metadata
                                "written" holds when (time.time()), as text
    <id>/files/<n>              a committed file: a completed multipart upload (or one PUT)
    <id>/append/<offset:020d>   a resumable upload's segments, bytes [offset, offset + size)

An upload exists while its ``tenant.json`` does. A removal deletes that
first, so readers see the upload gone at once; objects left under an id
without it are a removal a crash cut short (:meth:`ObjectStore.empty_trash`).

Locks live apart from the bytes (a :class:`~geo_service.store.base.Locker`,
Redis in production). Any replica and any worker may serve any upload, so a
commit first checks that its writer still holds the lock
(:meth:`~geo_service.store.base.Locker.ensure_held`).
"""

import json
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geo_service.store.base import (
    AppendWriter,
    Busy,
    FileWriter,
    Locker,
    LockFile,
    LockWait,
    Marker,
    StopReason,
    UploadExists,
    UploadMissing,
    UploadStore,
    check_id,
)
from geo_service.store.bucket import Bucket, ObjectInfo, Part
from handoff.auth import ANONYMOUS
from handoff.ids import is_upload_id
from handoff.jsontext import dumps

#: The size of a file's parts to begin with; :func:`part_size` grows it for very large files.
PART_SIZE = 8 * 1024 * 1024
#: Parts of one file sent at once while more bytes arrive.
IN_FLIGHT = 4
#: The largest range one server-side part copy may take (S3's limit).
LARGEST_COPY = 5 * 1024**3
#: Seconds a writer trusts a "go on" (not cancelled, not wanted): asking per chunk costs much.
STOP_CHECK_INTERVAL = 0.5
#: Uploads whose last look is remembered; past this the memory starts again empty.
STOP_CHECKS_KEPT = 10_000
WRITTEN = "written"
FILES = "files"
APPEND = "append"


def part_size(number: int, base: int, max_parts: int) -> int:
    """The size of part ``number`` (from 1): ``base``, doubled every tenth of ``max_parts``.

    A writer does not know how large its file will be; doubling keeps
    small files in small parts and still lets ``max_parts`` parts hold
    ``base * max_parts / 10 * 1023`` bytes (8 TB from 8 MiB and 10,000).
    """
    return base * 2 ** ((number - 1) // max(1, max_parts // 10))


@dataclass(frozen=True)
class Segment:
    """One object of a resumable file: its bytes ``[start, start + size)``."""

    key: str
    start: int
    size: int

    @property
    def end(self) -> int:
        return self.start + self.size


def segment_key(upload_id: str, start: int) -> str:
    return f"{upload_id}/{APPEND}/{start:020d}"


def segments_of(objects: Iterable[ObjectInfo]) -> list[Segment]:
    """The segment objects, by start offset; keys that are not a segment's are skipped."""
    found = []
    for info in objects:
        name = info.key.rsplit("/", 1)[-1]
        if name.isdigit():
            found.append(Segment(info.key, int(name), info.size))
    return sorted(found, key=lambda segment: segment.start)


def chain(segments: list[Segment]) -> list[Segment]:
    """The segments that join up from offset 0: the file. Any after a gap are left-overs."""
    joined: list[Segment] = []
    for segment in segments:
        if segment.start != (joined[-1].end if joined else 0):
            break
        joined.append(segment)
    return joined


def cut_plan(segments: list[Segment], offset: int) -> tuple[list[str], Segment | None]:
    """What cutting the file at ``offset`` takes: keys to delete, and a segment to shorten.

    Deleted: every segment starting at or past the cut, and any left-over
    past a gap. The segment the cut falls inside is rewritten as its prefix.
    """
    kept = chain(segments)
    doomed = [s.key for s in segments if s not in kept or s.start >= offset]
    straddling = next((s for s in kept if s.start < offset < s.end), None)
    return doomed, straddling


def ranges(start: int, size: int, largest: int) -> list[tuple[int, int]]:
    """``[start, start + size)`` as consecutive (start, size) pieces of at most ``largest``."""
    return [(first, min(largest, start + size - first))
            for first in range(start, start + size, largest)]


@dataclass(frozen=True)
class Piece:
    """Bytes ``[start, start + size)`` of the object ``key``."""

    key: str
    start: int
    size: int


@dataclass(frozen=True)
class Step:
    """One part of a joined object: copied inside the store, or gathered through memory."""

    pieces: tuple[Piece, ...]
    copied: bool


def join_plan(segments: list[Segment], min_part: int, largest: int) -> list[Step]:
    """The parts that join ``segments`` into one object.

    A run of at least ``min_part`` bytes is copied inside the store; shorter
    runs are gathered, ``min_part`` bytes at a time, through memory. Every
    part but the last is then at least ``min_part`` bytes, as S3 requires,
    and memory never holds more than ``min_part``.
    """
    steps: list[Step] = []
    gathered: list[Piece] = []
    held = 0
    for segment in segments:
        position = 0
        while position < segment.size:
            left = segment.size - position
            if not gathered and left >= min_part:
                taken = min(left, largest)
                steps.append(Step((Piece(segment.key, position, taken),), copied=True))
            else:
                taken = min(left, min_part - held)
                gathered.append(Piece(segment.key, position, taken))
                held += taken
                if held >= min_part:
                    steps.append(Step(tuple(gathered), copied=False))
                    gathered, held = [], 0
            position += taken
    if gathered:
        steps.append(Step(tuple(gathered), copied=False))
    return steps


class ObjectStore(UploadStore):
    """Uploads as objects in ``bucket`` (see the module's docstring), locked by ``locker``."""

    def __init__(self, bucket: Bucket, locker: Locker) -> None:
        self.bucket = bucket
        self.locker = locker
        self._quiet_since: dict[str, float] = {}

    def describe(self) -> str:
        return self.bucket.describe()

    def problem(self) -> str | None:
        return self.bucket.problem()

    def free_bytes(self) -> int:
        """A bucket does not run out, as far as placing an upload is concerned."""
        return sys.maxsize

    # -- locks -----------------------------------------------------------------

    def lock(self, upload_id: str, timeout: float = LockWait.NONE
             ) -> AbstractContextManager[None]:
        return self.locker.lock(check_id(upload_id), timeout)

    def take_over(self, upload_id: str, timeout: float) -> AbstractContextManager[None]:
        return self.locker.take_over(check_id(upload_id), timeout)

    def stop_reason(self, upload_id: str) -> StopReason | None:
        """Asked after every chunk a writer receives: an answer of "go on" holds for a while.

        Asking the bucket (cancelled?) and Redis (wanted?) per chunk would
        cost a round trip or two per chunk; a writer learns of either within
        :data:`STOP_CHECK_INTERVAL` instead, which a cancel or a take-over,
        waiting seconds, does not notice.
        """
        upload_id = check_id(upload_id)
        now = time.monotonic()
        if now - self._quiet_since.get(upload_id, -STOP_CHECK_INTERVAL) < STOP_CHECK_INTERVAL:
            return None
        reason = (StopReason.CANCELLED if self.cancelled(upload_id)
                  else StopReason.WANTED if self.locker.stop_requested(upload_id) else None)
        if reason is not None:
            self._quiet_since.pop(upload_id, None)
            return reason
        if len(self._quiet_since) >= STOP_CHECKS_KEPT:  # a long-lived process
            self._quiet_since.clear()
        self._quiet_since[upload_id] = now
        return None

    def mark_cancelled(self, upload_id: str) -> None:
        """Cancelling here is seen here at once; elsewhere within the check interval."""
        super().mark_cancelled(upload_id)
        self._quiet_since.pop(upload_id, None)

    def lock_files(self) -> Iterator[LockFile]:
        return self.locker.lock_files()

    def remove_lock_file(self, upload_id: str) -> None:
        self.locker.remove_lock_file(upload_id)

    # -- creating and writing --------------------------------------------------

    def create(self, upload_id: str, tenant: str = ANONYMOUS) -> None:
        """The check and the tenant's PUT under the upload's lock: a bucket has no create-once."""
        with self.lock(upload_id, LockWait.CANCEL):
            if self.exists(upload_id):
                raise UploadExists(upload_id)
            self._put_marker(upload_id, Marker.TENANT, {"tenant": tenant})

    def create_resumable(self, upload_id: str, tenant: str, info: dict[str, Any],
                         progress: dict[str, Any]) -> None:
        """An empty resumable file is no segment at all: info, then progress."""
        self.create(upload_id, tenant)
        self.set_info(upload_id, info)
        self.save_progress(upload_id, progress)

    def open_writer(self, upload_id: str, index: int) -> FileWriter:
        return _ObjectWriter(self.bucket, f"{check_id(upload_id)}/{FILES}/{index}",
                             lambda: self.locker.ensure_held(upload_id))

    def open_appender(self, upload_id: str, offset: int) -> AppendWriter:
        self.truncate(upload_id, offset)
        return _Appender(self, upload_id, offset)

    def durable_size(self, upload_id: str) -> int:
        """Every segment is durable once it exists; a sealed upload's is its one file."""
        segments = self._segments(upload_id)
        if segments:
            return segments[-1].end
        info = self.bucket.head(self._file_key(upload_id, 0))
        return info.size if info is not None else 0

    def truncate(self, upload_id: str, size: int) -> None:
        """Segments past the cut go first: a crash then leaves a longer file, never a gap."""
        doomed, straddling = cut_plan(segments_of(self.bucket.listing(self._append(upload_id))),
                                      size)
        self.bucket.delete(doomed)
        if straddling is not None:
            self._copy_range(straddling.key, size - straddling.start, straddling.key)

    def read_file(self, upload_id: str, index: int = 0, start: int = 0,
                  size: int | None = None) -> Iterator[bytes]:
        """A committed file; file 0 of a resumable upload not yet sealed is read across segments."""
        try:
            return self.bucket.read(self._file_key(upload_id, index), start, size)
        except FileNotFoundError:
            if index != 0 or not self.has_marker(upload_id, Marker.INFO):
                raise
        return _read_across(self.bucket, self._segments(upload_id), start, size)

    def local_path(self, upload_id: str, index: int) -> Path | None:
        """None: the bytes are in the bucket, the worker downloads them."""
        check_id(upload_id)
        return None

    def seal(self, upload_id: str, manifest: dict[str, Any]) -> None:
        """A resumable upload's segments are joined into ``files/0`` first, then deleted.

        The worker then reads one object, however the upload came in. A
        crash after the join leaves segments and file with the same bytes;
        sealing again joins them again.
        """
        segments = self._segments(upload_id)
        resumable = self.has_marker(upload_id, Marker.INFO)
        if segments or (resumable and self.bucket.head(self._file_key(upload_id, 0)) is None):
            self._join(segments, self._file_key(upload_id, 0))
            self.bucket.delete(s.key for s in segments_of(
                self.bucket.listing(self._append(upload_id))))
        super().seal(upload_id, manifest)

    # -- markers ---------------------------------------------------------------

    def write_marker(self, upload_id: str, marker: Marker, payload: dict[str, Any]) -> None:
        if not self.exists(upload_id):
            raise UploadMissing(upload_id)
        self._put_marker(upload_id, marker, payload)

    def read_marker(self, upload_id: str, marker: Marker) -> dict[str, Any] | None:
        data = self.bucket.get(self._marker_key(upload_id, marker))
        return None if data is None else json.loads(data)

    def marker_time(self, upload_id: str, marker: Marker) -> float | None:
        info = self.bucket.head(self._marker_key(upload_id, marker))
        if info is None:
            return None
        return float(info.metadata.get(WRITTEN, info.modified))

    def delete_marker(self, upload_id: str, marker: Marker) -> None:
        self.bucket.delete([self._marker_key(upload_id, marker)])

    def file_location(self, index: int) -> str:
        return f"{FILES}/{index}"

    def exists(self, upload_id: str) -> bool:
        return self.bucket.head(self._marker_key(upload_id, Marker.TENANT)) is not None

    def last_activity(self, upload_id: str) -> float:
        """The newest object under the upload, or part upload begun for it."""
        folder = f"{check_id(upload_id)}/"
        times = [info.modified for info in self.bucket.listing(folder)]
        times += [write.started for write in self.bucket.pending(folder)]
        return max(times, default=0.0)

    # -- removing --------------------------------------------------------------

    def remove(self, upload_id: str) -> int:
        """``tenant.json`` first (the upload is gone for readers), then the rest, then parts."""
        folder = f"{check_id(upload_id)}/"
        objects = list(self.bucket.listing(folder))
        tenant = self._marker_key(upload_id, Marker.TENANT)
        if tenant not in {info.key for info in objects}:
            raise UploadMissing(upload_id)
        self.bucket.delete([tenant])
        self._purge(upload_id, [info.key for info in objects if info.key != tenant])
        return sum(info.size for info in objects)

    def unfinished_removals(self) -> list[str]:
        """Ids with objects but no ``tenant.json``: a removal stopped half-way.

        Some services (SeaweedFS) keep listing a folder emptied of objects:
        such an id is no removal left to finish.
        """
        return sorted(name for name in self.bucket.folders("")
                      if is_upload_id(name) and not self.exists(name)
                      and next(iter(self.bucket.listing(f"{name}/")), None) is not None)

    def empty_trash(self) -> int:
        freed = 0
        for upload_id in self.unfinished_removals():
            objects = list(self.bucket.listing(f"{upload_id}/"))
            self._purge(upload_id, [info.key for info in objects])
            freed += sum(info.size for info in objects)
        return freed

    def abort_abandoned(self, before: float) -> int:
        """Abort part uploads begun before ``before`` whose upload nobody holds.

        A writer still sending a very large file holds its upload's lock, so
        its part upload is left alone however old it is.
        """
        aborted = 0
        for write in list(self.bucket.pending("")):
            if write.started < before and not self._held(write.key.split("/", 1)[0]):
                self.bucket.abort(write.key, write.handle)
                aborted += 1
        return aborted

    def _held(self, name: str) -> bool:
        if not is_upload_id(name):
            return False
        try:
            with self.lock(name):
                return False
        except Busy:
            return True

    def _purge(self, upload_id: str, keys: list[str]) -> None:
        self.bucket.delete(keys)
        for write in list(self.bucket.pending(f"{upload_id}/")):
            self.bucket.abort(write.key, write.handle)

    # -- the sweeper's view ----------------------------------------------------

    def upload_ids(self) -> Iterator[str]:
        for name in self.bucket.folders(""):
            if is_upload_id(name) and self.exists(name):
                yield name

    def stray_entries(self) -> Iterator[str]:
        """Folders not named by an upload id (objects at the prefix itself are not listed)."""
        return (name for name in self.bucket.folders("") if not is_upload_id(name))

    def has_entry(self, upload_id: str) -> bool:
        folder = f"{check_id(upload_id)}/"
        return (next(iter(self.bucket.listing(folder)), None) is not None
                or next(iter(self.bucket.pending(folder)), None) is not None)

    def size(self, upload_id: str) -> int:
        return sum(info.size for info in self.bucket.listing(f"{check_id(upload_id)}/"))

    # -- the layout --------------------------------------------------------------

    def _marker_key(self, upload_id: str, marker: Marker) -> str:
        return f"{check_id(upload_id)}/{marker.value}.json"

    def _file_key(self, upload_id: str, index: int) -> str:
        return f"{check_id(upload_id)}/{FILES}/{index}"

    def _append(self, upload_id: str) -> str:
        return f"{check_id(upload_id)}/{APPEND}/"

    def _segments(self, upload_id: str) -> list[Segment]:
        return chain(segments_of(self.bucket.listing(self._append(upload_id))))

    def _put_marker(self, upload_id: str, marker: Marker, payload: dict[str, Any]) -> None:
        self.bucket.put(self._marker_key(upload_id, marker), dumps(payload).encode(),
                        {WRITTEN: repr(time.time())})

    def _copy_range(self, source: str, size: int, target: str) -> None:
        """The first ``size`` bytes of ``source`` as ``target``, copied inside the store."""
        self._join([Segment(source, 0, size)], target)

    def _join(self, segments: list[Segment], target: str) -> None:
        """``segments`` joined into the object ``target`` (see :func:`join_plan`)."""
        steps = join_plan(segments, self.bucket.min_part_size, LARGEST_COPY)
        if not steps:
            self.bucket.put(target, b"")
            return
        handle = self.bucket.begin(target)
        try:
            parts = [self._join_step(target, handle, number, step)
                     for number, step in enumerate(steps, start=1)]
            self.bucket.complete(target, handle, parts)
        except BaseException:
            self.bucket.abort(target, handle)
            raise

    def _join_step(self, target: str, handle: str, number: int, step: Step) -> Part:
        if step.copied:
            piece = step.pieces[0]
            return self.bucket.copy_part(target, handle, number, piece.key, piece.start,
                                         piece.size)
        buffer = bytearray()
        for piece in step.pieces:
            for chunk in self.bucket.read(piece.key, piece.start, piece.size):
                buffer += chunk
        return self.bucket.put_part(target, handle, number, bytes(buffer))


def _read_across(bucket: Bucket, segments: list[Segment], start: int,
                 size: int | None) -> Iterator[bytes]:
    """Bytes ``[start, start + size)`` of the file the segments make, one segment after another."""
    end = segments[-1].end if segments else 0
    stop = end if size is None else start + size
    if stop > end:
        raise OSError(f"the file is {end} bytes, shorter than asked")
    for segment in segments:
        first, last = max(start, segment.start), min(stop, segment.end)
        if first < last:
            yield from bucket.read(segment.key, first - segment.start, last - first)


class PartBuffer:
    """The bytes of the part being filled, kept as the chunks they came in.

    They are copied once, when the part is joined to be sent: gathering
    them into a growing buffer first would copy every byte twice, and on
    a busy geo service a copy per byte costs as much CPU as its sha256.
    """

    def __init__(self) -> None:
        self.chunks: list[bytes | memoryview] = []
        self.size = 0

    def take(self, data: bytes | memoryview, limit: int) -> bytes | memoryview:
        """Keep what of ``data`` fits under ``limit`` bytes; returns the rest."""
        room = limit - self.size
        kept = data[:room]
        # A view of bytes (what the form parser gives) is kept as it is, since
        # bytes never change; one of a buffer its owner may reuse is copied.
        if isinstance(kept, memoryview) and not isinstance(kept.obj, bytes):
            kept = bytes(kept)
        self.chunks.append(kept)
        self.size += len(kept)
        return data[room:]

    def joined(self) -> bytes:
        """The part's bytes, in one object; the part starts empty again."""
        part = b"".join(self.chunks)
        self.chunks, self.size = [], 0
        return part


class _ObjectWriter(FileWriter):
    """A new object, sent in parts by a few threads as it fills; one PUT if it stays small.

    Memory holds at most the part being filled and :data:`IN_FLIGHT` parts
    being sent. ``before_commit`` raises if the writer may no longer write
    (its lock was lost): the object then never appears.
    """

    def __init__(self, bucket: Bucket, key: str, before_commit: Callable[[], None]) -> None:
        self._bucket = bucket
        self._key = key
        self._before_commit = before_commit
        self._pending = PartBuffer()
        self._handle: str | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._sent: list[Future[Part]] = []
        self._slots = threading.BoundedSemaphore(IN_FLIGHT)
        self._size = 0
        self._done = False

    def write(self, data: bytes | memoryview) -> None:
        self._size += len(data)
        while data:
            data = self._pending.take(data, self._part_size())
            if self._pending.size >= self._part_size():
                self._send()

    def commit(self) -> int:
        assert not self._done, "the file was committed or aborted already"
        if self._handle is None:
            self._before_commit()
            self._bucket.put(self._key, self._pending.joined())
        else:
            if self._pending.size:
                self._send()
            parts = [sent.result() for sent in self._sent]
            self._before_commit()
            self._bucket.complete(self._key, self._handle, parts)
        self._finish()
        return self._size

    def abort(self) -> None:
        if self._done:
            return
        for sent in self._sent:
            sent.cancel()
        self._finish()
        if self._handle is not None:
            self._bucket.abort(self._key, self._handle)

    def _part_size(self) -> int:
        return part_size(len(self._sent) + 1, max(PART_SIZE, self._bucket.min_part_size),
                         self._bucket.max_parts)

    def _send(self) -> None:
        """Hand the full buffer to a sending thread, once one of the slots is free."""
        if self._handle is None:
            self._handle = self._bucket.begin(self._key)
            self._pool = ThreadPoolExecutor(IN_FLIGHT, thread_name_prefix="part")
        assert self._pool is not None
        self._slots.acquire()
        failed = next((sent for sent in self._sent if sent.done() and sent.exception()), None)
        if failed is not None:
            self._slots.release()
            failed.result()
        part = self._pending.joined()
        sent = self._pool.submit(self._bucket.put_part, self._key, self._handle,
                                 len(self._sent) + 1, part)
        sent.add_done_callback(lambda _: self._slots.release())
        self._sent.append(sent)

    def _finish(self) -> None:
        self._done = True
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self._pending.joined()


class _Appender(AppendWriter):
    """Bytes from ``offset``: each :meth:`sync` makes what came since one segment object."""

    def __init__(self, store: ObjectStore, upload_id: str, offset: int) -> None:
        self._store = store
        self._upload_id = upload_id
        self._offset = offset
        self._segment: _ObjectWriter | None = None

    def write(self, data: bytes | memoryview) -> None:
        if not data:
            return
        if self._segment is None:
            self._segment = _ObjectWriter(self._store.bucket,
                                          segment_key(self._upload_id, self._offset),
                                          lambda: self._store.locker.ensure_held(self._upload_id))
        self._segment.write(data)
        self._offset += len(data)

    def copy_from(self, upload_id: str, size: int) -> None:
        """The other upload's segments copied inside the store, each to its place here."""
        self.sync()
        segments = self._store._segments(upload_id)
        if size > (segments[-1].end if segments else 0):
            raise OSError(f"{upload_id}'s file is shorter than {size} bytes")
        for segment in segments:
            taken = min(segment.size, size - segment.start)
            if taken > 0:
                self._store._copy_range(segment.key, taken,
                                        segment_key(self._upload_id, self._offset + segment.start))
        self._offset += size

    def sync(self) -> int:
        if self._segment is not None:
            segment, self._segment = self._segment, None
            segment.commit()
        return self._offset

    def close(self) -> None:
        """What was written is kept, as a file's unsynced bytes usually are."""
        if self._segment is not None:
            segment, self._segment = self._segment, None
            try:
                segment.commit()
            except BaseException:
                segment.abort()
                raise
