"""Stored bytes against their manifest: hashed in place, or downloaded and hashed in one read."""

import hashlib
from pathlib import Path
from typing import Any

import pytest

from geo_service.jobs.verify import ManifestMismatch, downloads, file_digest, verified_files
from geo_service.store import FileStore
from tests.geo_service.jobs.downloading import CountingStore, RemoteStore
from tests.geo_service.store import disk

DATA = bytes(range(256)) * 50
UPLOAD_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"


def entry(name: str, data: bytes) -> dict[str, Any]:
    return {"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


MANIFEST = {"files": [entry("../../a.bin", DATA), entry("empty.txt", b"")]}


def filled(store: FileStore) -> FileStore:
    store.create(UPLOAD_ID, "alice")
    for index, data in enumerate((DATA, b"")):
        with store.open_writer(UPLOAD_ID, index) as writer:
            writer.write(data)
            writer.commit()
    return store


@pytest.fixture(params=[CountingStore, RemoteStore], ids=["local", "downloaded"])
def store(tmp_path: Path, request: pytest.FixtureRequest) -> FileStore:
    return filled(request.param(tmp_path / "uploads"))


@pytest.fixture
def copies(tmp_path: Path) -> Path:
    (tmp_path / "job").mkdir()
    return tmp_path / "job" / "files"


def flip_a_byte(store: FileStore) -> bytes:
    tampered = bytearray(DATA)
    tampered[1234] ^= 0x01
    disk.file_path(store, UPLOAD_ID, 0).write_bytes(bytes(tampered))
    return bytes(tampered)


@pytest.mark.parametrize("chunk", [1, 100, 256, len(DATA)])
def test_file_digest_in_any_chunk_size(chunk: int) -> None:
    chunks = [DATA[start:start + chunk] for start in range(0, len(DATA), chunk)]
    assert file_digest(chunks) == (len(DATA), hashlib.sha256(DATA).hexdigest())


def test_file_digest_of_an_empty_file(store: FileStore) -> None:
    assert file_digest(store.read_file(UPLOAD_ID, 1)) == (0, hashlib.sha256(b"").hexdigest())


def test_local_files_are_hashed_where_they_lie(tmp_path: Path, copies: Path) -> None:
    store = filled(CountingStore(tmp_path / "uploads"))
    paths = verified_files(store, UPLOAD_ID, MANIFEST, copies)
    assert paths == [disk.file_path(store, UPLOAD_ID, 0), disk.file_path(store, UPLOAD_ID, 1)]
    assert not copies.exists()
    assert downloads(store, UPLOAD_ID, MANIFEST) == 0


def test_a_download_is_copied_and_verified_in_one_read_named_by_position(
        tmp_path: Path, copies: Path) -> None:
    store = filled(RemoteStore(tmp_path / "uploads"))
    paths = verified_files(store, UPLOAD_ID, MANIFEST, copies)
    assert store.reads == [0, 1], "each file read once, for the copy and its hash together"
    assert paths == [copies / "0", copies / "1"]
    assert [path.read_bytes() for path in paths] == [DATA, b""]
    assert downloads(store, UPLOAD_ID, MANIFEST) == len(DATA)


def test_a_manifest_without_files_passes(store: FileStore, copies: Path) -> None:
    assert verified_files(store, UPLOAD_ID, {"files": []}, copies) == []


def test_a_changed_byte_is_a_mismatch_naming_the_file_and_leaves_no_copy(
        store: FileStore, copies: Path) -> None:
    tampered = flip_a_byte(store)
    with pytest.raises(ManifestMismatch) as caught:
        verified_files(store, UPLOAD_ID, MANIFEST, copies)
    message = str(caught.value)
    assert message.startswith("'../../a.bin': ")
    assert f"stored {len(DATA)} bytes sha256 {hashlib.sha256(tampered).hexdigest()}" in message
    assert f"manifest says {len(DATA)} bytes" in message
    assert not (copies / "0").exists()


def test_a_changed_size_is_a_mismatch(store: FileStore, copies: Path) -> None:
    disk.file_path(store, UPLOAD_ID, 0).write_bytes(DATA[:-1])
    shorter = rf"'\.\./\.\./a\.bin': stored {len(DATA) - 1} bytes"
    with pytest.raises(ManifestMismatch, match=shorter):
        verified_files(store, UPLOAD_ID, MANIFEST, copies)
    assert not (copies / "0").exists()


def test_a_longer_file_is_a_mismatch(store: FileStore, copies: Path) -> None:
    disk.file_path(store, UPLOAD_ID, 1).write_bytes(b"!")
    with pytest.raises(ManifestMismatch, match=r"'empty\.txt': stored (1 bytes|more than the 0)"):
        verified_files(store, UPLOAD_ID, MANIFEST, copies)
    assert not (copies / "1").exists()


def test_a_download_longer_than_its_entry_stops_at_the_entrys_size(
        tmp_path: Path, copies: Path) -> None:
    store = filled(RemoteStore(tmp_path / "uploads"))
    disk.file_path(store, UPLOAD_ID, 1).write_bytes(b"!" * 10_000)
    with pytest.raises(ManifestMismatch, match=r"'empty\.txt': stored more than the 0 bytes"):
        verified_files(store, UPLOAD_ID, MANIFEST, copies)
    assert not (copies / "1").exists()


def test_the_manifest_is_the_reference_not_the_disk(store: FileStore, copies: Path) -> None:
    wrong = {"files": [{**entry("a.bin", DATA), "sha256": "0" * 64}]}
    with pytest.raises(ManifestMismatch, match=r"manifest says .* sha256 0{64}$"):
        verified_files(store, UPLOAD_ID, wrong, copies)


def test_a_missing_file_is_a_mismatch_naming_the_file(store: FileStore, copies: Path) -> None:
    disk.file_path(store, UPLOAD_ID, 1).unlink()
    with pytest.raises(ManifestMismatch, match=r"'empty\.txt': stored file is missing"):
        verified_files(store, UPLOAD_ID, MANIFEST, copies)
