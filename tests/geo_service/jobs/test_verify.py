"""Stored bytes against their manifest, read back through the store."""

import hashlib
from pathlib import Path
from typing import Any

import pytest

from geo_service.jobs.verify import ManifestMismatch, file_digest, verify_manifest
from geo_service.store import FileStore
from tests.geo_service.store import disk

DATA = bytes(range(256)) * 50
UPLOAD_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"


def entry(name: str, data: bytes) -> dict[str, Any]:
    return {"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    store = FileStore(tmp_path / "uploads")
    store.create(UPLOAD_ID, "alice")
    for index, data in enumerate((DATA, b"")):
        with store.open_writer(UPLOAD_ID, index) as writer:
            writer.write(data)
            writer.commit()
    return store


MANIFEST = {"files": [entry("a.bin", DATA), entry("empty.txt", b"")]}


@pytest.mark.parametrize("chunk", [1, 100, 256, len(DATA)])
def test_file_digest_in_any_chunk_size(chunk: int) -> None:
    chunks = [DATA[start:start + chunk] for start in range(0, len(DATA), chunk)]
    assert file_digest(chunks) == (len(DATA), hashlib.sha256(DATA).hexdigest())


def test_file_digest_of_an_empty_file(store: FileStore) -> None:
    assert file_digest(store.read_file(UPLOAD_ID, 1)) == (0, hashlib.sha256(b"").hexdigest())


def test_matching_files_pass(store: FileStore) -> None:
    verify_manifest(store, UPLOAD_ID, MANIFEST)


def test_a_manifest_without_files_passes(store: FileStore) -> None:
    verify_manifest(store, UPLOAD_ID, {"files": []})


def test_a_changed_byte_is_a_mismatch_naming_the_file(store: FileStore) -> None:
    tampered = bytearray(DATA)
    tampered[1234] ^= 0x01
    disk.file_path(store, UPLOAD_ID, 0).write_bytes(bytes(tampered))
    with pytest.raises(ManifestMismatch) as caught:
        verify_manifest(store, UPLOAD_ID, MANIFEST)
    message = str(caught.value)
    assert message.startswith("'a.bin': ")
    assert f"stored {len(DATA)} bytes sha256 {hashlib.sha256(tampered).hexdigest()}" in message
    assert f"manifest says {len(DATA)} bytes" in message


def test_a_changed_size_is_a_mismatch(store: FileStore) -> None:
    disk.file_path(store, UPLOAD_ID, 1).write_bytes(b"!")
    with pytest.raises(ManifestMismatch, match=r"'empty\.txt': stored 1 bytes"):
        verify_manifest(store, UPLOAD_ID, MANIFEST)


def test_the_manifest_is_the_reference_not_the_disk(store: FileStore) -> None:
    wrong = {"files": [{**entry("a.bin", DATA), "sha256": "0" * 64}]}
    with pytest.raises(ManifestMismatch, match=r"manifest says .* sha256 0{64}$"):
        verify_manifest(store, UPLOAD_ID, wrong)


def test_a_missing_file_is_a_mismatch_naming_the_file(store: FileStore) -> None:
    disk.file_path(store, UPLOAD_ID, 1).unlink()
    with pytest.raises(ManifestMismatch, match=r"'empty\.txt'"):
        verify_manifest(store, UPLOAD_ID, MANIFEST)
