"""Checks that stored bytes still match their manifest before anything uses them.

Each file is read once: one the store keeps locally is hashed where it lies;
any other is downloaded into the job's scratch folder and hashed as it is
written, so the copy the processor reads is the copy that was verified.
"""

import hashlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from geo_service.store import UploadStore
from handoff.units import CHUNK_SIZE


class ManifestMismatch(Exception):
    """The stored bytes differ from what the manifest promises."""


def file_digest(chunks: Iterable[bytes]) -> tuple[int, str]:
    """Size and sha256 of a file read as ``chunks``."""
    digest = hashlib.sha256()
    size = 0
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def downloads(store: UploadStore, upload_id: str, manifest: dict[str, Any]) -> int:
    """Bytes of the upload's files the store has no local path for: what the worker copies."""
    return sum(entry["size"] for index, entry in enumerate(manifest["files"])
               if store.local_path(upload_id, index) is None)


def verified_files(store: UploadStore, upload_id: str, manifest: dict[str, Any],
                   copies: Path) -> list[Path]:
    """A local path per manifest entry, each checked against its entry in the same read.

    Copies go to ``copies/<n>``, named by position, never by the client's
    name; raises :class:`ManifestMismatch` for a file that differs, and
    leaves no copy of it.
    """
    paths = []
    for index, entry in enumerate(manifest["files"]):
        path = store.local_path(upload_id, index)
        if path is None:
            copies.mkdir(exist_ok=True)
        try:
            if path is None:
                path = _download(entry, store.read_file(upload_id, index), copies / str(index))
            else:
                _check(entry, file_digest(_chunks(path)))
        except FileNotFoundError:
            raise ManifestMismatch(f"{entry['name']!r}: stored file is missing") from None
        paths.append(path)
    return paths


def _download(entry: dict[str, Any], chunks: Iterable[bytes], copy: Path) -> Path:
    """Write ``chunks`` to ``copy``, hashing them on the way; no copy stays unless it matches."""
    try:
        with open(copy, "xb") as target:
            _check(entry, file_digest(_written(entry, chunks, target.write)))
    except BaseException:
        copy.unlink(missing_ok=True)
        raise
    return copy


def _written(entry: dict[str, Any], chunks: Iterable[bytes],
             write: Callable[[bytes], object]) -> Iterator[bytes]:
    """``chunks`` passed on as each is written: the copy and the hash from one read.

    A stored file longer than its entry stops at the first byte past it: the
    copy never takes more scratch space than the job reserved.
    """
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > entry["size"]:
            raise ManifestMismatch(f"{entry['name']!r}: stored more than the "
                                   f"{entry['size']} bytes the manifest says")
        write(chunk)
        yield chunk


def _chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb", buffering=0) as handle:
        while chunk := handle.read(CHUNK_SIZE):
            yield chunk


def _check(entry: dict[str, Any], digested: tuple[int, str]) -> None:
    size, sha256 = digested
    if size != entry["size"] or sha256 != entry["sha256"]:
        raise ManifestMismatch(
            f"{entry['name']!r}: stored {size} bytes sha256 {sha256}, "
            f"manifest says {entry['size']} bytes sha256 {entry['sha256']}"
        )
