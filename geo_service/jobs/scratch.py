"""The worker's scratch space: one folder per job, within a bound shared by the whole pod.

A job's folder, ``<scratch dir>/<upload id>/``, holds the copies of files the
store keeps no local path for (``files/<n>``) and the processor's ``work/``.
It is emptied when an attempt starts and removed when it ends.

Before a job takes its folder it reserves what it may need: the bytes it
downloads (the manifest's sizes) plus :data:`PROCESSOR_ROOM` for the
processor's own files. The bound is ``HANDOFF_SCRATCH_LIMIT``, or, at 0, the
disk's free space. A job that could not fit even in an empty scratch space
fails at once (:class:`TooLarge`); one that does not fit now, because other
jobs hold their reservations, raises :class:`NoRoomYet` and is retried later.

Reservations are files, ``<upload id>.job``, each flocked by its job for as
long as it runs, so every thread and every worker process of the pod sees
them; admission happens under ``.lock``, one flock for the whole folder. A
record nobody holds belonged to a killed process: its folder is removed and
its reservation forgotten when the next job is admitted.
"""

import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from geo_service.store import check_id
from handoff.config import Settings, variable
from handoff.ids import is_upload_id
from handoff.units import MiB, format_size

DEFAULT_FOLDER = "handoff-scratch"
# Reserved for what a processor writes in work/: not enforced, only counted.
PROCESSOR_ROOM = 256 * MiB
_LOCK = ".lock"
_RECORD = ".job"


class TooLarge(Exception):
    """The job could never fit in the scratch space: it fails rather than waits."""


class NoRoomYet(Exception):
    """Other jobs hold the scratch space the job needs; it may fit once they finish."""


@dataclass(frozen=True)
class Need:
    """What a job reserves: the files it downloads and room for its processor."""

    files: int
    room: int

    @property
    def total(self) -> int:
        return self.files + self.room

    def __str__(self) -> str:
        return (f"{format_size(self.total)} of scratch space ({format_size(self.files)} of "
                f"files to download + {format_size(self.room)} for the processor)")


class Scratch:
    """The scratch folder under ``root``, holding at most ``limit`` bytes (0: the disk's free)."""

    def __init__(self, root: Path, limit: int = 0, room: int = PROCESSOR_ROOM) -> None:
        self.root = root
        self.limit = limit
        self.room = room
        root.mkdir(parents=True, exist_ok=True)

    @classmethod
    def from_settings(cls, settings: Settings) -> "Scratch":
        root = settings.scratch_dir or Path(tempfile.gettempdir()) / DEFAULT_FOLDER
        return cls(root, settings.scratch_limit)

    @contextmanager
    def job(self, upload_id: str, downloads: int) -> Iterator[Path]:
        """An empty folder for the job, its reservation held until the job ends."""
        need = Need(downloads, self.room)
        folder = self.root / check_id(upload_id)
        with self._admitted(upload_id, need):
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            try:
                yield folder
            finally:
                shutil.rmtree(folder, ignore_errors=True)

    @contextmanager
    def _admitted(self, upload_id: str, need: Need) -> Iterator[None]:
        record = self.root / f"{upload_id}{_RECORD}"
        with self._locked():
            self._check(need, self._live())
            handle = open(record, "w")  # noqa: SIM115 - closed below, after the job
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.write(json.dumps({"bytes": need.total}))
            handle.flush()
        try:
            yield
        finally:
            with self._locked():
                record.unlink(missing_ok=True)
                handle.close()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """The whole folder's admission lock, between threads and processes alike."""
        with open(self.root / _LOCK, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def _live(self) -> dict[Path, int]:
        """Each live job's folder and the bytes it reserved; what dead jobs left is removed."""
        live: dict[Path, int] = {}
        for record in self.root.glob(f"*{_RECORD}"):
            if not is_upload_id(record.stem):
                continue
            with open(record) as handle:
                if _free(handle):
                    record.unlink()
                else:
                    live[record.with_suffix("")] = json.loads(handle.read())["bytes"]
        for entry in self.root.iterdir():
            if is_upload_id(entry.name) and entry.is_dir() and entry not in live:
                shutil.rmtree(entry, ignore_errors=True)
        return live

    def _check(self, need: Need, live: dict[Path, int]) -> None:
        """Refuse the job for good, or for now, or let it in."""
        if self.limit:
            if need.total > self.limit:
                raise TooLarge(f"the job needs {need}, more than "
                               f"{variable('scratch_limit')} ({format_size(self.limit)})")
            if need.total > self.limit - sum(live.values()):
                raise NoRoomYet(f"the job needs {need}; other jobs hold the rest of "
                                f"{variable('scratch_limit')} ({format_size(self.limit)})")
            return
        disk = shutil.disk_usage(self.root)
        if need.total > disk.total:
            raise TooLarge(f"the job needs {need}, more than the whole disk of "
                           f"{variable('scratch_dir')} ({self.root}, {format_size(disk.total)}); "
                           f"{variable('scratch_limit')} is 0: the disk's free space")
        # Other jobs' bytes already on disk are out of the free space: count the rest only.
        pending = sum(max(0, reserved - _used(folder)) for folder, reserved in live.items())
        if need.total > disk.free - pending:
            raise NoRoomYet(f"the job needs {need}; {self.root} has "
                            f"{format_size(max(0, disk.free - pending))} free for it now")


def _free(handle: IO[str]) -> bool:
    """Whether nobody holds the record's flock: the job that wrote it is gone."""
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _used(folder: Path) -> int:
    """Bytes a job has written into its folder so far."""
    total = 0
    for parent, _, names in os.walk(folder):
        for name in names:
            try:
                total += os.lstat(os.path.join(parent, name)).st_size
            except FileNotFoundError:
                continue
    return total
