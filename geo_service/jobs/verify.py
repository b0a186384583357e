"""Checks that stored bytes still match their manifest before anything uses them."""

import hashlib
from pathlib import Path
from typing import Any

from handoff.units import CHUNK_SIZE


class ManifestMismatch(Exception):
    """The stored bytes differ from what the manifest promises."""


def file_digest(path: Path) -> tuple[int, str]:
    """Size and sha256 of ``path``, read in bounded chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb", buffering=0) as handle:
        buffer = bytearray(CHUNK_SIZE)
        view = memoryview(buffer)
        while count := handle.readinto(buffer):
            digest.update(view[:count])
            size += count
    return size, digest.hexdigest()


def verify_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    for entry in manifest["files"]:
        try:
            size, sha256 = file_digest(folder / entry["path"])
        except FileNotFoundError:
            raise ManifestMismatch(f"{entry['name']!r}: stored file is missing") from None
        if size != entry["size"] or sha256 != entry["sha256"]:
            raise ManifestMismatch(
                f"{entry['name']!r}: stored {size} bytes sha256 {sha256}, "
                f"manifest says {entry['size']} bytes sha256 {entry['sha256']}"
            )
