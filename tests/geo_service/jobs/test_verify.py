"""Stored bytes against their manifest, read back from disk."""

import hashlib
from pathlib import Path
from typing import Any

import pytest

from geo_service.jobs import verify
from geo_service.jobs.verify import ManifestMismatch, file_digest, verify_manifest
from handoff.units import CHUNK_SIZE

DATA = bytes(range(256)) * 50


def entry(index: int, name: str, data: bytes) -> dict[str, Any]:
    return {"path": f"files/{index}", "name": name, "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest()}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "0").write_bytes(DATA)
    (tmp_path / "files" / "1").write_bytes(b"")
    return tmp_path


MANIFEST = {"files": [entry(0, "a.bin", DATA), entry(1, "empty.txt", b"")]}


@pytest.mark.parametrize("chunk", [1, 100, 256, CHUNK_SIZE])
def test_file_digest_in_any_chunk_size(
    folder: Path, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(verify, "CHUNK_SIZE", chunk)
    assert file_digest(folder / "files" / "0") == (len(DATA), hashlib.sha256(DATA).hexdigest())


def test_file_digest_of_an_empty_file(folder: Path) -> None:
    assert file_digest(folder / "files" / "1") == (0, hashlib.sha256(b"").hexdigest())


def test_matching_files_pass(folder: Path) -> None:
    verify_manifest(folder, MANIFEST)


def test_a_manifest_without_files_passes(folder: Path) -> None:
    verify_manifest(folder, {"files": []})


def test_a_changed_byte_is_a_mismatch_naming_the_file(folder: Path) -> None:
    tampered = bytearray(DATA)
    tampered[1234] ^= 0x01
    (folder / "files" / "0").write_bytes(bytes(tampered))
    with pytest.raises(ManifestMismatch) as caught:
        verify_manifest(folder, MANIFEST)
    message = str(caught.value)
    assert message.startswith("'a.bin': ")
    assert f"stored {len(DATA)} bytes sha256 {hashlib.sha256(tampered).hexdigest()}" in message
    assert f"manifest says {len(DATA)} bytes" in message


def test_a_changed_size_is_a_mismatch(folder: Path) -> None:
    (folder / "files" / "1").write_bytes(b"!")
    with pytest.raises(ManifestMismatch, match=r"'empty\.txt': stored 1 bytes"):
        verify_manifest(folder, MANIFEST)


def test_the_manifest_is_the_reference_not_the_disk(folder: Path) -> None:
    wrong = {"files": [{**entry(0, "a.bin", DATA), "sha256": "0" * 64}]}
    with pytest.raises(ManifestMismatch, match=r"manifest says .* sha256 0{64}$"):
        verify_manifest(folder, wrong)


def test_a_missing_file_is_a_mismatch_naming_the_file(folder: Path) -> None:
    (folder / "files" / "1").unlink()
    with pytest.raises(ManifestMismatch, match=r"'empty\.txt'"):
        verify_manifest(folder, MANIFEST)
