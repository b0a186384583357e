"""Unit-testing a processor on files the test makes, without any server.

::

    from handoff.testing import run_processor
    from mypackage import process

    def test_counts_words():
        assert run_processor(process, {"a.txt": b"two words"}) == {"files": 1, "words": 2}

The files are stored by the geo service's own receiver into a real upload
store (in a temporary folder), and the :class:`~handoff.processors.Job` is
built by the same code the worker uses. So the processor meets the paths,
manifest entries, scratch folder and settings it will meet in production,
and its result is checked the way the worker checks it.

A processor's exceptions reach the test unchanged: ``pytest.raises(ValidationFailed)``
is how to test a refusal.
"""

import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

from requests_toolbelt import MultipartEncoder

from geo_service.intake.receive import Receiver
from geo_service.jobs.run import prepare_job
from geo_service.store import UploadStore
from handoff.config import Settings
from handoff.form import upload_limits
from handoff.ids import new_upload_id
from handoff.jsontext import dumps
from handoff.processors import Job, Processor, stored_result
from handoff.units import CHUNK_SIZE

DEFAULT_PURPOSE = "test"

Files = Mapping[str, bytes | os.PathLike[str]] | Iterable[str | os.PathLike[str]]


def run_processor(process: Processor, files: Files, *, purpose: str = DEFAULT_PURPOSE,
                  metadata: dict[str, Any] | None = None,
                  settings: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``process`` run on an upload of ``files``; its result as clients would see it.

    ``files`` maps each file name to its bytes or to a :class:`~pathlib.Path`
    to read them from, or is a list of paths (each named by its last
    component). A ``str`` value in a mapping is refused: it could be either.
    ``settings`` is what the processor finds in ``job.settings``: names in
    lower case, values as strings, as the worker would read them from
    ``HANDOFF_PROCESSOR_<PURPOSE>_<NAME>``. Raises
    :class:`~handoff.processors.BadResult` for a result the worker could
    not store.
    """
    with tempfile.TemporaryDirectory(prefix="handoff-test-") as root:
        job = make_job(Path(root), files, purpose=purpose, metadata=metadata, settings=settings)
        return stored_result(process(job))


def make_job(root: Path, files: Files, *, purpose: str = DEFAULT_PURPOSE,
             metadata: dict[str, Any] | None = None,
             settings: Mapping[str, str] | None = None) -> Job:
    """A job for an upload of ``files`` stored under ``root``, which the caller removes.

    For tests that look at the scratch folder or the stored files after
    the processor ran; :func:`run_processor` is the short way.
    """
    store = UploadStore(root / "uploads")
    upload_id = new_upload_id()
    store.create(upload_id)
    with store.lock(upload_id):
        manifest = _receive(store, upload_id, purpose, metadata or {}, files)
    return prepare_job(store, upload_id, purpose, manifest["metadata"], manifest,
                       dict(settings or {}))


def _receive(store: UploadStore, upload_id: str, purpose: str, metadata: dict[str, Any],
             files: Files) -> dict[str, Any]:
    """Send the files through the geo service's receiver, as one upload form."""
    receiver = Receiver(store, upload_id, {purpose}, upload_limits(Settings()))
    with ExitStack() as opened:
        fields: list[tuple[str, Any]] = [("purpose", purpose), ("metadata", dumps(metadata))]
        fields.extend(("file", (name, _open(content, opened), "application/octet-stream"))
                      for name, content in _named(files))
        encoder = MultipartEncoder(fields)
        chunks: Iterator[bytes] = iter(lambda: encoder.read(CHUNK_SIZE), b"")
        return receiver.receive(chunks, encoder.boundary_value.encode())


def _named(files: Files) -> list[tuple[str, bytes | os.PathLike[str] | str]]:
    if not isinstance(files, Mapping):
        return [(Path(path).name, path) for path in files]
    for name, content in files.items():
        if not isinstance(content, bytes | os.PathLike):
            raise TypeError(f"{name!r}: give its bytes or a Path, not {type(content).__name__}")
    return list(files.items())


def _open(content: bytes | os.PathLike[str] | str, opened: ExitStack) -> bytes | IO[bytes]:
    if isinstance(content, bytes):
        return content
    return opened.enter_context(open(content, "rb"))
