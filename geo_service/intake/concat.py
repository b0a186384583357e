"""Joins complete partial uploads into one final upload: tus's concatenation, done on disk.

A client that sends one file over several connections uploads its parts as
partial uploads (each appended to as any resumable upload), then asks for
the final upload made of them, in order. The final's file is written here
once, from the partials' files. The first part's sha256 state is already
known (each partial keeps its state as it grows, from its byte 0, which is
the final's byte 0), so that part is copied by the store without being read
here (the kernel copies it on a filesystem); every later part is read once,
hashed and written.

The partials are removed only once the final is sealed: a crash in between
leaves them whole for another try, and the unsealed final is the
sweeper's, like any upload left receiving.
"""

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from geo_service.intake.append import Appender, Progress
from geo_service.store import State, UploadStore
from handoff.server.blocking import off_loop


class PartError(Exception):
    """A listed part cannot be joined; the message says which and why."""


@dataclass(frozen=True)
class Part:
    """A complete partial upload: its id and its durable progress (offset = its length)."""

    upload_id: str
    progress: Progress


@contextlib.contextmanager
def held_parts(store: UploadStore, part_ids: list[str], tenant: str, max_length: int,
               wait: float) -> Iterator[list[Part]]:
    """The parts, each under its lock (taken in id order, so two joins cannot deadlock).

    A writer still holding a part is asked to let go first, as for a resume.
    """
    if len(set(part_ids)) != len(part_ids):
        raise PartError("a partial upload is listed more than once")
    with contextlib.ExitStack() as locks:
        for upload_id in sorted(part_ids):
            locks.enter_context(store.take_over(upload_id, wait))
        yield [_complete_part(store, upload_id, tenant, max_length) for upload_id in part_ids]


def _complete_part(store: UploadStore, upload_id: str, tenant: str, max_length: int) -> Part:
    info = store.info(upload_id)
    if (info is None or store.tenant(upload_id) != tenant or not info.get("partial")
            or store.state(upload_id) is not State.RECEIVING):
        raise PartError(f"{upload_id} is not a partial upload of this tenant")
    progress = Appender(store, upload_id, max_length).settle()
    if progress.offset != info.get("length"):
        raise PartError(f"the partial upload {upload_id} is not complete: "
                        f"{progress.offset} of {info.get('length')} bytes")
    return Part(upload_id, progress)


def join(store: UploadStore, final_id: str, parts: list[Part]) -> Progress:
    """Write the parts, in order, into the final's (empty) file; its durable progress."""
    return off_loop(_join, store, final_id, parts)


def _join(store: UploadStore, final_id: str, parts: list[Part]) -> Progress:
    first, rest = parts[0], parts[1:]
    hasher = first.progress.hasher()
    with store.open_appender(final_id, 0) as target:
        target.copy_from(first.upload_id, first.progress.offset)
        for part in rest:
            for chunk in store.read_file(part.upload_id, 0, 0, part.progress.offset):
                hasher.update(chunk)
                target.write(chunk)
        target.sync()
    return Progress(sum(part.progress.offset for part in parts), hasher.serialize())
