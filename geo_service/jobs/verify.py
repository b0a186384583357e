"""Checks that stored bytes still match their manifest before anything uses them."""

import hashlib
from collections.abc import Iterable
from typing import Any

from geo_service.store import UploadStore


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


def verify_manifest(store: UploadStore, upload_id: str, manifest: dict[str, Any]) -> None:
    """Read every file of the upload back from the store and compare it with its entry."""
    for index, entry in enumerate(manifest["files"]):
        try:
            size, sha256 = file_digest(store.read_file(upload_id, index))
        except FileNotFoundError:
            raise ManifestMismatch(f"{entry['name']!r}: stored file is missing") from None
        if size != entry["size"] or sha256 != entry["sha256"]:
            raise ManifestMismatch(
                f"{entry['name']!r}: stored {size} bytes sha256 {sha256}, "
                f"manifest says {entry['size']} bytes sha256 {entry['sha256']}"
            )
