"""The appender on a temp store: the digest carried between bodies, checkpoints, roll-backs."""

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from geo_service.intake import append as appender_module
from geo_service.intake.append import Appender, ChecksumMismatch, OffsetMismatch, Progress
from geo_service.store import FileStore, UploadStore
from handoff.tus import Checksum
from tests.geo_service.store import disk

UPLOAD_ID = "7c6d5e4f-3a2b-4c1d-9e0f-a1b2c3d4e5f6"


@pytest.fixture
def store(tmp_path: Path) -> UploadStore:
    store = FileStore(tmp_path)
    info = {"purpose": "raw", "metadata": {}, "filename": "f", "content_type": "", "length": None}
    store.create_resumable(UPLOAD_ID, "alice", info, Progress.empty().record())
    return store


def _appender(store: UploadStore) -> Appender:
    return Appender(store, UPLOAD_ID, max_length=1024**3)


def _nothing() -> None:
    pass


def _append(store: UploadStore, data: bytes, checksum: Checksum | None = None) -> Progress:
    appender = _appender(store)
    progress = appender.settle()
    return appender.append(progress, progress.offset, [data], checksum, _nothing)


def test_the_digest_is_carried_from_body_to_body_without_reading_the_file(
        store: UploadStore, monkeypatch: pytest.MonkeyPatch):
    def no_reading(*args: object) -> Progress:
        raise AssertionError("the file was read again")

    monkeypatch.setattr(Appender, "_hash_tail", no_reading)
    for part in (b"one ", b"two ", b"three"):
        progress = _append(store, part)
    assert progress.sha256() == hashlib.sha256(b"one two three").hexdigest()


def test_a_long_body_is_recorded_at_every_checkpoint(store: UploadStore,
                                                     monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(appender_module, "CHECKPOINT", 4)
    recorded: list[int] = []

    def chunks() -> Iterator[bytes]:
        for _ in range(5):
            yield b"ab"
            recorded.append(store.status(UPLOAD_ID)["offset"])

    appender = _appender(store)
    appender.append(appender.settle(), 0, chunks(), None, _nothing)
    assert recorded == [0, 4, 4, 8, 8]
    assert store.status(UPLOAD_ID)["offset"] == 10


def test_a_body_that_breaks_off_keeps_what_it_wrote(store: UploadStore):
    def chunks() -> Iterator[bytes]:
        yield b"kept"
        raise ConnectionError("client gone")

    appender = _appender(store)
    with pytest.raises(ConnectionError):
        appender.append(appender.settle(), 0, chunks(), None, _nothing)
    assert store.status(UPLOAD_ID)["offset"] == 4
    assert _append(store, b"!").sha256() == hashlib.sha256(b"kept!").hexdigest()


def test_a_checksummed_body_that_breaks_off_keeps_nothing(store: UploadStore):
    _append(store, b"base")

    def chunks() -> Iterator[bytes]:
        yield b"half"
        raise ConnectionError("client gone")

    appender = _appender(store)
    checksum = Checksum("sha1", hashlib.sha1(b"half and more").digest())
    with pytest.raises(ConnectionError):
        appender.append(appender.settle(), 4, chunks(), checksum, _nothing)
    assert disk.file_path(store, UPLOAD_ID, 0).read_bytes() == b"base"
    assert store.status(UPLOAD_ID)["offset"] == 4


def test_a_checksum_mismatch_restores_the_state_before_the_body(store: UploadStore):
    _append(store, b"base")
    with pytest.raises(ChecksumMismatch):
        _append(store, b"body", Checksum("md5", hashlib.md5(b"other").digest()))
    assert _appender(store).settle().offset == 4
    assert _append(store, b"body").sha256() == hashlib.sha256(b"basebody").hexdigest()


def test_a_body_for_another_offset_is_refused_before_a_byte(store: UploadStore):
    appender = _appender(store)
    with pytest.raises(OffsetMismatch) as raised:
        appender.append(appender.settle(), 3, [b"x"], None, _nothing)
    assert raised.value.offset == 0
    assert disk.file_path(store, UPLOAD_ID, 0).read_bytes() == b""
