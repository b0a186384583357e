"""The filesystem store: the only code that knows how uploads are laid out on disk.

::

    <root>/<id>/tenant.json     who sent it, written with the folder
    <root>/<id>/info.json       a resumable upload's creation: purpose, metadata, name, length
    <root>/<id>/progress.json   a resumable upload's durable offset and its sha256 state there
    <root>/<id>/cancelled.json  its tenant cancelled it: the writer or worker stops
    <root>/<id>/files/<n>       the bytes, named by position, never by the client
    <root>/<id>/files/<n>.part  a file being written, renamed to ``<n>`` when committed
    <root>/<id>/manifest.json   written last, atomically: "fully written"
    <root>/<id>/job.json        the API enqueued a job for it
    <root>/<id>/claim.json      a worker took the job
    <root>/<id>/result.json     the processor's outcome (done or failed)
    <root>/<id>/announce.json   announcements of the outcome not yet enqueued
    <root>/.locks/<id>.lock     the upload's advisory lock
    <root>/.locks/<id>.stop     someone waits for the lock: its holder should let go
    <root>/.trash/<id>.<ns>/    an upload being deleted

An upload is deleted by renaming it into ``.trash`` first, so readers see it
vanish at once and a crash half-way through the removal is finished later.
"""

import contextlib
import errno
import json
import os
import shutil
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO, Any

from geo_service.store.base import (
    AppendWriter,
    FileWriter,
    LockFile,
    Marker,
    StopReason,
    Timeline,
    UploadExists,
    UploadMissing,
    UploadStore,
    check_id,
)
from geo_service.store.locks import FlockLocker
from handoff.auth import ANONYMOUS
from handoff.ids import is_upload_id
from handoff.jsontext import dumps
from handoff.server.blocking import off_loop
from handoff.units import CHUNK_SIZE


def marker_file(marker: Marker) -> str:
    """A marker's file in the upload's folder: ``manifest.json`` for the manifest."""
    return f"{marker.value}.json"


TENANT = marker_file(Marker.TENANT)
INFO = marker_file(Marker.INFO)
PROGRESS = marker_file(Marker.PROGRESS)
CANCELLED = marker_file(Marker.CANCELLED)
MANIFEST = marker_file(Marker.MANIFEST)
JOB = marker_file(Marker.JOB)
CLAIM = marker_file(Marker.CLAIM)
RESULT = marker_file(Marker.RESULT)
FILES = "files"
LOCKS = ".locks"
TRASH = ".trash"
_PART = ".part"
# copy_file_range's refusals that mean "not between these files": copy through memory.
_NO_KERNEL_COPY = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP}


class FileStore(UploadStore):
    """Uploads as folders under ``root``, locked by flock (:class:`FlockLocker`)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.locker = FlockLocker(self.root / LOCKS)
        (self.root / TRASH).mkdir(exist_ok=True)

    def describe(self) -> str:
        return str(self.root)

    def problem(self) -> str | None:
        return None if self.root.is_dir() else f"{self.root} is missing"

    def free_bytes(self) -> int:
        try:
            return shutil.disk_usage(self.root).free
        except OSError:
            return 0

    # -- locks -----------------------------------------------------------------

    def lock(self, upload_id: str, timeout: float = 0) -> AbstractContextManager[None]:
        return self.locker.lock(upload_id, timeout)

    def take_over(self, upload_id: str, timeout: float) -> AbstractContextManager[None]:
        return self.locker.take_over(upload_id, timeout)

    def stop_reason(self, upload_id: str) -> StopReason | None:
        if self.cancelled(upload_id):
            return StopReason.CANCELLED
        if self.locker.stop_requested(upload_id):
            return StopReason.WANTED
        return None

    def lock_files(self) -> Iterator[LockFile]:
        return self.locker.lock_files()

    def remove_lock_file(self, upload_id: str) -> None:
        self.locker.remove_lock_file(upload_id)

    # -- creating and writing --------------------------------------------------

    def create(self, upload_id: str, tenant: str = ANONYMOUS) -> None:
        """Make the folder and record its tenant at once, so the upload is its tenant's alone."""
        folder = self._folder(upload_id)
        try:
            folder.mkdir()
        except FileExistsError:
            raise UploadExists(upload_id) from None
        self.write_marker(upload_id, Marker.TENANT, {"tenant": tenant})
        (folder / FILES).mkdir()

    def create_resumable(self, upload_id: str, tenant: str, info: dict[str, Any],
                         progress: dict[str, Any]) -> None:
        self.create(upload_id, tenant)
        self.set_info(upload_id, info)
        with open(self._file(upload_id, 0), "xb") as handle:
            off_loop(os.fsync, handle.fileno())
        _fsync_dir(self._folder(upload_id) / FILES)
        self.save_progress(upload_id, progress)

    def open_writer(self, upload_id: str, index: int) -> FileWriter:
        return _NewFile(self._file(upload_id, index))

    def open_appender(self, upload_id: str, offset: int) -> AppendWriter:
        return _Appender(self._file(upload_id, 0), offset, lambda source: self._file(source, 0))

    def durable_size(self, upload_id: str) -> int:
        with open(self._file(upload_id, 0), "rb", buffering=0) as handle:
            off_loop(os.fsync, handle.fileno())
            return os.fstat(handle.fileno()).st_size

    def truncate(self, upload_id: str, size: int) -> None:
        with open(self._file(upload_id, 0), "r+b", buffering=0) as handle:
            handle.truncate(size)
            off_loop(os.fsync, handle.fileno())

    def read_file(self, upload_id: str, index: int = 0, start: int = 0,
                  size: int | None = None) -> Iterator[bytes]:
        handle = open(self._file(upload_id, index), "rb", buffering=0)  # noqa: SIM115
        return _chunks(handle, start, size)

    def local_path(self, upload_id: str, index: int) -> Path:
        return self._file(upload_id, index)

    # -- markers ---------------------------------------------------------------

    def write_marker(self, upload_id: str, marker: Marker, payload: dict[str, Any]) -> None:
        """A temporary file fsynced, renamed over the marker's file, then the folder fsynced."""
        if not self._folder(upload_id).is_dir():
            raise UploadMissing(upload_id)
        _write_json(self._marker(upload_id, marker), payload)

    def read_marker(self, upload_id: str, marker: Marker) -> dict[str, Any] | None:
        try:
            return json.loads(self._marker(upload_id, marker).read_text())
        except FileNotFoundError:
            return None

    def marker_time(self, upload_id: str, marker: Marker) -> float | None:
        try:
            return self._marker(upload_id, marker).stat().st_mtime
        except FileNotFoundError:
            return None

    def delete_marker(self, upload_id: str, marker: Marker) -> None:
        path = self._marker(upload_id, marker)
        path.unlink(missing_ok=True)
        _fsync_dir(path.parent)

    def file_location(self, index: int) -> str:
        return f"{FILES}/{index}"

    def seal(self, upload_id: str, manifest: dict[str, Any]) -> None:
        """The files' folder is fsynced first: their renames must last before the manifest does."""
        _fsync_dir(self._folder(upload_id) / FILES)
        super().seal(upload_id, manifest)

    def exists(self, upload_id: str) -> bool:
        return self._folder(upload_id).is_dir()

    def timeline(self, upload_id: str) -> Timeline:
        """An entry that is not a directory (a symlink swapped in, say) counts as missing."""
        try:
            mode = os.lstat(self._folder(upload_id)).st_mode
        except FileNotFoundError:
            raise UploadMissing(upload_id) from None
        if not stat.S_ISDIR(mode):
            raise UploadMissing(upload_id)
        return super().timeline(upload_id)

    def last_activity(self, upload_id: str) -> float:
        """Newest modification time inside the upload."""
        return _newest_mtime(self._folder(upload_id))

    # -- removing --------------------------------------------------------------

    def remove(self, upload_id: str) -> int:
        folder = self._folder(upload_id)
        size = _tree_size(folder)
        target = self.root / TRASH / f"{upload_id}.{time.time_ns()}"
        try:
            folder.rename(target)
        except FileNotFoundError:
            raise UploadMissing(upload_id) from None
        shutil.rmtree(target, ignore_errors=True)
        return size

    def unfinished_removals(self) -> list[str]:
        return sorted(entry.name for entry in (self.root / TRASH).iterdir())

    def empty_trash(self) -> int:
        freed = 0
        for entry in (self.root / TRASH).iterdir():
            freed += _tree_size(entry)
            shutil.rmtree(entry, ignore_errors=True)
        return freed

    def abort_abandoned(self, before: float) -> int:
        """Nothing to abort: a partial file lives in its upload's folder and goes with it."""
        return 0

    # -- the sweeper's view ----------------------------------------------------

    def upload_ids(self) -> Iterator[str]:
        """Ids of the upload folders in the root; other entries are not yielded."""
        with os.scandir(self.root) as entries:
            for entry in entries:
                if is_upload_id(entry.name) and entry.is_dir(follow_symlinks=False):
                    yield entry.name

    def stray_entries(self) -> Iterator[str]:
        with os.scandir(self.root) as entries:
            for entry in entries:
                if entry.name in (LOCKS, TRASH):
                    continue
                if not (is_upload_id(entry.name) and entry.is_dir(follow_symlinks=False)):
                    yield entry.name

    def has_entry(self, upload_id: str) -> bool:
        return os.path.lexists(self._folder(upload_id))

    def size(self, upload_id: str) -> int:
        return _tree_size(self._folder(upload_id))

    def backdate(self, upload_id: str, seconds: float) -> None:
        """Make everything the upload and its lock file record ``seconds`` older.

        Not part of the interface: for benchmarks and tests that need old
        uploads without waiting for them to age.
        """
        for path in [self.locker.lock_path(upload_id), *_tree(self._folder(upload_id))]:
            if path.exists():
                stamp = path.lstat().st_mtime - seconds
                os.utime(path, (stamp, stamp), follow_symlinks=False)

    # -- the layout --------------------------------------------------------------

    def _folder(self, upload_id: str) -> Path:
        return self.root / check_id(upload_id)

    def _file(self, upload_id: str, index: int) -> Path:
        return self._folder(upload_id) / FILES / str(index)

    def _marker(self, upload_id: str, marker: Marker) -> Path:
        return self._folder(upload_id) / marker_file(marker)


def _write_all(handle: IO[bytes], data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[handle.write(view) :]


class _NewFile(FileWriter):
    """``files/<n>.part``, unbuffered, fsynced and renamed to ``files/<n>`` on commit."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._part = path.with_name(path.name + _PART)
        if path.exists():
            raise FileExistsError(errno.EEXIST, "file already committed", str(path))
        self._handle: IO[bytes] | None = open(self._part, "xb", buffering=0)  # noqa: SIM115

    def write(self, data: bytes | memoryview) -> None:
        assert self._handle is not None
        _write_all(self._handle, data)

    def commit(self) -> int:
        assert self._handle is not None
        off_loop(os.fsync, self._handle.fileno())
        size = os.fstat(self._handle.fileno()).st_size
        self._handle.close()
        self._handle = None
        os.rename(self._part, self._path)
        return size

    def abort(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
            self._part.unlink(missing_ok=True)


class _Appender(AppendWriter):
    """The resumable file opened at an offset; bytes past it are cut at the first sync."""

    def __init__(self, path: Path, offset: int, sources: Callable[[str], Path]) -> None:
        self._sources = sources
        self._offset = offset
        self._handle = open(path, "r+b", buffering=0)  # noqa: SIM115 - closed in close()
        self._handle.seek(offset)

    def write(self, data: bytes | memoryview) -> None:
        _write_all(self._handle, data)
        self._offset += len(data)

    def copy_from(self, upload_id: str, size: int) -> None:
        """By ``copy_file_range`` where the filesystem allows, else through memory."""
        with open(self._sources(upload_id), "rb", buffering=0) as source:
            copied = _kernel_copy(source, self._handle, size)
            self._offset += copied
            for chunk in _chunks(source, copied, size - copied):
                self.write(chunk)

    def sync(self) -> int:
        """fsync what was written; the rest of a chunk whose write failed is cut off."""
        self._handle.truncate(self._offset)
        off_loop(os.fsync, self._handle.fileno())
        return self._offset

    def close(self) -> None:
        self._handle.close()


def _kernel_copy(source: IO[bytes], target: IO[bytes], count: int) -> int:
    """Copy up to ``count`` bytes in the kernel; how many it did (0 where it refuses)."""
    done = 0
    try:
        while done < count:
            copied = os.copy_file_range(source.fileno(), target.fileno(), count - done)
            if copied == 0:
                raise OSError(errno.EIO, "the source file is shorter than asked")
            done += copied
    except OSError as exc:
        if exc.errno not in _NO_KERNEL_COPY or done:
            raise
    return done


def _chunks(handle: IO[bytes], start: int, size: int | None) -> Iterator[bytes]:
    """Read ``size`` bytes (or to the end) from ``start``, then close ``handle``."""
    with handle:
        handle.seek(start)
        left = size
        while left is None or left > 0:
            chunk = handle.read(CHUNK_SIZE if left is None else min(CHUNK_SIZE, left))
            if not chunk:
                if left:
                    raise OSError(errno.EIO, "the file is shorter than asked")
                return
            if left is not None:
                left -= len(chunk)
            yield chunk


class Conflict(Exception):
    """An entry is both at the volume's root and in the replica's folder; nothing overwritten."""


def relocate(volume: Path, replica: str) -> Iterator[str]:
    """Move a store kept at the volume's root (releases before named replicas) into ``replica``.

    Yields each name as it is moved; once moved, or on a new volume, there is
    nothing to do. An entry present in both places is left where it is
    and raises :class:`Conflict`, so the pod does not start on a store
    split in two.
    """
    names = sorted(name for name in os.listdir(volume) if not name.startswith("."))
    for name in [LOCKS, TRASH, *names]:
        source, target = volume / name, volume / replica / name
        if name in (replica, "lost+found") or not os.path.lexists(source):
            continue
        target.parent.mkdir(exist_ok=True)
        if target.is_dir():
            _merge(source, target)
        elif not os.path.lexists(target):
            source.rename(target)
        if os.path.lexists(source):
            raise Conflict(f"{name} is at the volume's root and in {replica}/ too: left in place")
        yield name


def _merge(source: Path, target: Path) -> None:
    """Move what ``source`` holds into ``target``, never over an entry there; drop it if empty."""
    for entry in source.iterdir():
        if not os.path.lexists(target / entry.name):
            entry.rename(target / entry.name)
    with contextlib.suppress(OSError):
        source.rmdir()


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


def _tree(path: Path) -> Iterator[Path]:
    """``path`` and everything below it, without following symlinks."""
    yield path
    if path.is_dir() and not path.is_symlink():
        for entry in path.iterdir():
            yield from _tree(entry)


def _tree_size(path: Path) -> int:
    return sum(st.st_size for st in _walk(path) if not _is_dir(st))


def _newest_mtime(path: Path) -> float:
    return max((st.st_mtime for st in _walk(path)), default=0.0)


def _is_dir(st: os.stat_result) -> bool:
    return stat.S_ISDIR(st.st_mode)
