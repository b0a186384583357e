"""What only an object store does, on S3 (SeaweedFS) and Azure (Azurite): parts, segments, aborts.

Azure has no part upload until a first block is staged, so a test that
looks for a writer's pending upload waits for its first part to arrive.
"""

import os
import time

import pytest

from geo_service.store import ObjectStore, open_store_at
from geo_service.store.bucket import Bucket, Part
from geo_service.store.objects import PART_SIZE
from tests.geo_service.store.contract import INFO, PROGRESS, read
from tests.support.polling import eventually

pytestmark = pytest.mark.integration

ID = "0f8fad5b-d9cb-469f-a165-70867728950e"
OTHER = "1b4e28ba-2fa1-41d2-883f-0016d3cca427"
MIB = 1024 * 1024
BIG = os.urandom(20 * MIB)


@pytest.fixture
def store(object_store_url: str) -> ObjectStore:
    opened = open_store_at(object_store_url)
    assert isinstance(opened, ObjectStore)
    return opened


def record_calls(store: ObjectStore, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Each part upload begun and part sent through the store's bucket, as it happens."""
    bucket: Bucket = store.bucket
    calls: list[tuple[str, int]] = []
    begin, put_part = bucket.begin, bucket.put_part

    def begun(key: str, metadata: dict[str, str] | None = None) -> str:
        calls.append(("begin", 0))
        return begin(key, metadata)

    def sent(key: str, handle: str, number: int, data: bytes | memoryview) -> Part:
        calls.append(("part", number))
        return put_part(key, handle, number, data)

    monkeypatch.setattr(bucket, "begin", begun)
    monkeypatch.setattr(bucket, "put_part", sent)
    return calls


def test_a_large_file_goes_in_parts_and_appears_only_when_committed(
        store: ObjectStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.create(ID, "alice")
    calls = record_calls(store, monkeypatch)
    with store.lock(ID), store.open_writer(ID, 0) as writer:
        for start in range(0, len(BIG), MIB):
            writer.write(BIG[start:start + MIB])
        assert len(BIG) // PART_SIZE == 2
        assert calls[0] == ("begin", 0) and ("part", 3) not in calls  # the rest goes at commit
        assert not any("/files/" in info.key for info in store.bucket.listing(""))
        with pytest.raises(FileNotFoundError):
            read(store, ID)
        assert writer.commit() == len(BIG)
    assert sorted(calls) == [("begin", 0), ("part", 1), ("part", 2), ("part", 3)]
    assert read(store, ID) == BIG
    assert read(store, ID, 0, 9 * MIB, 10) == BIG[9 * MIB:9 * MIB + 10]
    assert list(store.bucket.pending("")) == []


def test_an_aborted_writer_leaves_no_part_upload(
        store: ObjectStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.create(ID, "alice")
    calls = record_calls(store, monkeypatch)
    with store.lock(ID), store.open_writer(ID, 0) as writer:
        writer.write(BIG)
        assert calls[0] == ("begin", 0)
    assert list(store.bucket.pending("")) == []
    with pytest.raises(FileNotFoundError):
        read(store, ID)


def test_sealing_joins_segments_large_and_small_into_one_file(store: ObjectStore) -> None:
    store.create_resumable(ID, "alice", INFO, PROGRESS)
    pieces = [BIG[:6 * MIB], BIG[6 * MIB:6 * MIB + 100], BIG[6 * MIB + 100:7 * MIB],
              BIG[7 * MIB:]]
    with store.lock(ID):
        with store.open_appender(ID, 0) as appender:
            for piece in pieces:
                appender.write(piece)
                appender.sync()
        assert sum(1 for info in store.bucket.listing(f"{ID}/append/")) == len(pieces)
        assert read(store, ID) == BIG
        store.seal(ID, {"files": [{"name": "f", "size": len(BIG)}]})
    assert [info.key for info in store.bucket.listing(f"{ID}/") if "/append/" in info.key] == []
    assert read(store, ID) == BIG and store.durable_size(ID) == len(BIG)


def test_a_cut_inside_a_large_segment_keeps_its_prefix(store: ObjectStore) -> None:
    store.create_resumable(ID, "alice", INFO, PROGRESS)
    with store.lock(ID):
        with store.open_appender(ID, 0) as appender:
            appender.write(BIG[:12 * MIB])
            appender.sync()
            appender.write(BIG[12 * MIB:])
        store.truncate(ID, 7 * MIB + 3)
        assert store.durable_size(ID) == 7 * MIB + 3
        assert read(store, ID) == BIG[:7 * MIB + 3]
        assert list(store.bucket.pending("")) == []


def test_abandoned_part_uploads_are_aborted_unless_their_writer_holds_the_lock(
        store: ObjectStore) -> None:
    store.create(ID, "alice")
    store.create(OTHER, "alice")
    abandoned = store.open_writer(ID, 0)
    abandoned.write(BIG)
    with store.lock(OTHER):
        alive = store.open_writer(OTHER, 0)
        alive.write(BIG)
        assert eventually(lambda: len(list(store.bucket.pending(""))) == 2)
        assert store.abort_abandoned(time.time() - 3600) == 0
        assert store.abort_abandoned(time.time() + 1) == 1
        assert [write.key for write in store.bucket.pending("")] == [f"{OTHER}/files/0"]
        alive.commit()
    assert read(store, OTHER) == BIG
    assert list(store.bucket.pending("")) == []
