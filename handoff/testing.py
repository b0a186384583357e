"""Unit-testing a processor on files the test makes, without any server.

::

    from handoff.testing import run_processor
    from mypackage import process

    def test_counts_words():
        assert run_processor(process, {"a.txt": b"two words"}) == {"files": 1, "words": 2}

The files are written into a temporary folder the way an upload's files are
stored (streamed, hashed on the way), and the :class:`~handoff.processors.Job`
carries the manifest entries the worker's jobs carry (field, name, content
type, size, sha256, and a ``path`` relative to the upload). So the processor
meets its files, entries, an empty scratch folder and settings as it
will in production, and its result is checked the way the worker checks it.

A processor's exceptions reach the test unchanged: ``pytest.raises(ValidationFailed)``
is how to test a refusal.
"""

import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

from handoff.ids import new_upload_id
from handoff.jsontext import dumps
from handoff.processors import Job, JobFile, Processor, stored_result
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
    upload_id = new_upload_id()
    folder = root / "uploads" / upload_id
    work_dir = folder / "work"
    work_dir.mkdir(parents=True)
    stored = tuple(_store_file(folder, index, name, content)
                   for index, (name, content) in enumerate(_named(files)))
    # Metadata travels as JSON in production, so the processor gets it as JSON gives it back.
    sent = json.loads(dumps(metadata or {}))
    return Job(upload_id, purpose, sent, stored, work_dir, dict(settings or {}))


def _store_file(folder: Path, index: int, name: str,
                content: bytes | os.PathLike[str] | str) -> JobFile:
    """Stream one file to ``folder``, hashing it on the way."""
    relative = Path("data") / str(index)
    path = folder / relative
    path.parent.mkdir(exist_ok=True)
    digest, size = hashlib.sha256(), 0
    with _source(content) as source, open(path, "xb") as target:
        while chunk := source.read(CHUNK_SIZE):
            digest.update(chunk)
            target.write(chunk)
            size += len(chunk)
    entry = {"path": str(relative), "field": "file", "name": name,
             "content_type": "application/octet-stream", "size": size,
             "sha256": digest.hexdigest()}
    return JobFile(entry, path)


def _named(files: Files) -> list[tuple[str, bytes | os.PathLike[str] | str]]:
    if not isinstance(files, Mapping):
        return [(Path(path).name, path) for path in files]
    for name, content in files.items():
        if not isinstance(content, bytes | os.PathLike):
            raise TypeError(f"{name!r}: give its bytes or a Path, not {type(content).__name__}")
    return list(files.items())


def _source(content: bytes | os.PathLike[str] | str) -> IO[bytes]:
    if isinstance(content, bytes):
        return io.BytesIO(content)
    return open(content, "rb")
