"""What every :class:`~geo_service.store.bucket.Bucket` must do, whichever provider it adapts.

:class:`BucketContract` is run by each adapter's test module, which
subclasses it and provides the fixture ``bucket``: an empty bucket (a fresh
container or prefix). Nothing here looks behind the interface, and parts
but the last are ``min_part_size`` at least, so S3 and Azure run it alike.
A large object begun is required to be pending only once a part was sent
(Azure has nothing to list before).
"""

import threading
import time

import pytest

from geo_service.store.bucket import Bucket, Part

#: How far an object's times may stray from this machine's clock (the server keeps its own).
CLOCK_SLACK = 3600.0


def part_size(bucket: Bucket) -> int:
    return max(bucket.min_part_size, 1024)


def pattern(size: int, seed: int = 0) -> bytes:
    """``size`` bytes that differ at every offset a test might cut at."""
    block = bytes((seed + index * 7) % 251 for index in range(251))
    return (block * (size // len(block) + 1))[:size]


def read_all(bucket: Bucket, key: str, start: int = 0, size: int | None = None) -> bytes:
    return b"".join(bucket.read(key, start, size))


def keys(bucket: Bucket, prefix: str = "") -> list[str]:
    return [info.key for info in bucket.listing(prefix)]


def send_parts(bucket: Bucket, key: str, handle: str, data: bytes, size: int) -> list[Part]:
    """``data`` in parts of ``size``, sent from one thread each, completed out of order."""
    pieces = [data[start:start + size] for start in range(0, len(data), size)]
    parts: list[Part] = []
    lock = threading.Lock()

    def send(number: int, piece: bytes) -> None:
        part = bucket.put_part(key, handle, number, memoryview(piece))
        with lock:
            parts.append(part)

    threads = [threading.Thread(target=send, args=(number, piece))
               for number, piece in reversed(list(enumerate(pieces, 1)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(parts) == len(pieces)
    return sorted(parts, key=lambda part: part.number)


class BucketContract:
    """Subclass it and give a ``bucket`` fixture: an empty bucket."""

    # -- whole objects ----------------------------------------------------------

    def test_put_then_get_and_head(self, bucket: Bucket):
        bucket.put("a/tenant.json", b'{"tenant": "alice"}', {"written": "1234.5"})

        assert bucket.get("a/tenant.json") == b'{"tenant": "alice"}'
        info = bucket.head("a/tenant.json")
        assert info is not None
        assert (info.key, info.size, info.metadata) == ("a/tenant.json", 19, {"written": "1234.5"})
        assert abs(info.modified - time.time()) < CLOCK_SLACK

    def test_a_put_replaces_the_object_and_its_metadata(self, bucket: Bucket):
        bucket.put("k", b"old", {"written": "1"})
        bucket.put("k", b"newer")

        assert bucket.get("k") == b"newer"
        info = bucket.head("k")
        assert info is not None and (info.size, info.metadata) == (5, {})

    def test_what_is_missing_is_none_or_file_not_found(self, bucket: Bucket):
        assert bucket.get("nothing") is None
        assert bucket.head("nothing") is None
        with pytest.raises(FileNotFoundError):
            read_all(bucket, "nothing")
        with pytest.raises(FileNotFoundError):
            read_all(bucket, "nothing", 0, 0)

    def test_read_streams_any_range(self, bucket: Bucket):
        data = pattern(3000)
        bucket.put("f", data)

        assert read_all(bucket, "f") == data
        assert read_all(bucket, "f", 1000) == data[1000:]
        assert read_all(bucket, "f", 10, 100) == data[10:110]
        assert read_all(bucket, "f", 2999, 1) == data[2999:]
        assert read_all(bucket, "f", 5, 0) == b""
        assert read_all(bucket, "f", 3000) == b""

    def test_an_empty_object_reads_empty(self, bucket: Bucket):
        bucket.put("empty", b"")

        assert bucket.get("empty") == b""
        assert read_all(bucket, "empty") == b""
        info = bucket.head("empty")
        assert info is not None and info.size == 0

    def test_listing_is_in_key_order_under_the_prefix(self, bucket: Bucket):
        for key in ("b/2", "a/files/1", "a/tenant.json", "ab/x", "a/files/0"):
            bucket.put(key, key.encode())

        assert keys(bucket) == ["a/files/0", "a/files/1", "a/tenant.json", "ab/x", "b/2"]
        assert keys(bucket, "a/") == ["a/files/0", "a/files/1", "a/tenant.json"]
        assert keys(bucket, "a/files/") == ["a/files/0", "a/files/1"]
        assert keys(bucket, "c/") == []
        assert [info.size for info in bucket.listing("a/files/")] == [9, 9]

    def test_folders_are_the_distinct_next_segments(self, bucket: Bucket):
        for key in ("u1/tenant.json", "u1/files/0", "u2/tenant.json", "top.json",
                    "u1/append/00000000000000000000"):
            bucket.put(key, b"x")

        assert sorted(bucket.folders("")) == ["u1", "u2"]
        assert sorted(bucket.folders("u1/")) == ["append", "files"]
        assert list(bucket.folders("u2/")) == []

    def test_delete_removes_and_a_missing_key_is_no_error(self, bucket: Bucket):
        for key in ("x/1", "x/2", "x/3"):
            bucket.put(key, b"x")

        bucket.delete(["x/1", "x/3", "x/never"])
        bucket.delete(["x/1"])
        bucket.delete([])

        assert keys(bucket) == ["x/2"]

    def test_copy_duplicates_bytes_and_metadata(self, bucket: Bucket):
        data = pattern(5000, seed=3)
        bucket.put("src", data, {"written": "7"})

        bucket.copy("src", "dir/dst")

        assert bucket.get("dir/dst") == data
        info = bucket.head("dir/dst")
        assert info is not None and info.metadata == {"written": "7"}
        assert bucket.get("src") == data

    # -- large objects ----------------------------------------------------------

    def test_parts_sent_at_once_complete_into_one_object(self, bucket: Bucket):
        size = part_size(bucket)
        data = pattern(3 * size + 123, seed=1)
        handle = bucket.begin("u/files/0", {"written": "99"})

        parts = send_parts(bucket, "u/files/0", handle, data, size)
        assert bucket.head("u/files/0") is None
        assert bucket.get("u/files/0") is None
        assert keys(bucket) == []
        bucket.complete("u/files/0", handle, parts)

        assert read_all(bucket, "u/files/0") == data
        info = bucket.head("u/files/0")
        assert info is not None
        assert (info.size, info.metadata) == (len(data), {"written": "99"})
        assert [part.size for part in parts] == [size, size, size, 123]
        assert list(bucket.pending("")) == []

    def test_copy_part_takes_ranges_of_other_objects(self, bucket: Bucket):
        size = part_size(bucket)
        source = pattern(2 * size + 50, seed=5)
        bucket.put("src", source)
        tail = pattern(77, seed=9)

        handle = bucket.begin("joined")
        parts = [bucket.copy_part("joined", handle, 1, "src", size, size),
                 bucket.copy_part("joined", handle, 2, "src", 0, size),
                 bucket.put_part("joined", handle, 3, tail)]
        bucket.complete("joined", handle, parts)

        assert parts[0].size == size
        assert bucket.get("joined") == source[size:2 * size] + source[:size] + tail

    def test_an_object_can_be_rewritten_from_a_prefix_of_itself(self, bucket: Bucket):
        size = part_size(bucket)
        data = pattern(2 * size, seed=2)
        bucket.put("seg", data)

        handle = bucket.begin("seg")
        bucket.complete("seg", handle, [bucket.copy_part("seg", handle, 1, "seg", 0, size + 10)])

        assert bucket.get("seg") == data[:size + 10]

    def test_abort_leaves_nothing_and_nothing_pending(self, bucket: Bucket):
        handle = bucket.begin("u/files/1")
        bucket.put_part("u/files/1", handle, 1, pattern(part_size(bucket)))

        bucket.abort("u/files/1", handle)
        bucket.abort("u/files/1", handle)

        assert bucket.head("u/files/1") is None
        assert keys(bucket) == []
        assert list(bucket.pending("")) == []

    def test_abort_leaves_a_committed_object_of_the_same_key_as_it_was(self, bucket: Bucket):
        bucket.put("seg", b"committed", {"written": "3"})
        handle = bucket.begin("seg")
        bucket.put_part("seg", handle, 1, pattern(part_size(bucket)))

        bucket.abort("seg", handle)

        assert bucket.get("seg") == b"committed"
        info = bucket.head("seg")
        assert info is not None and info.metadata == {"written": "3"}
        assert list(bucket.pending("")) == []

    def test_abort_leaves_an_object_completed_from_parts_as_it_was(self, bucket: Bucket):
        size = part_size(bucket)
        data = pattern(size + 5, seed=4)
        first = bucket.begin("seg", {"written": "8"})
        bucket.complete("seg", first, send_parts(bucket, "seg", first, data, size))
        second = bucket.begin("seg")
        bucket.put_part("seg", second, 1, pattern(size, seed=6))

        bucket.abort("seg", second)

        assert bucket.get("seg") == data
        info = bucket.head("seg")
        assert info is not None and info.metadata == {"written": "8"}
        assert list(bucket.pending("")) == []

    def test_abort_of_a_completed_object_keeps_it(self, bucket: Bucket):
        data = pattern(part_size(bucket) + 1)
        handle = bucket.begin("done")
        bucket.complete("done", handle, send_parts(bucket, "done", handle, data,
                                                   part_size(bucket)))

        bucket.abort("done", handle)

        assert bucket.get("done") == data

    def test_pending_lists_only_the_unfinished_under_the_prefix(self, bucket: Bucket):
        before = time.time()
        size = part_size(bucket)
        unfinished = bucket.begin("u/files/0")
        bucket.put_part("u/files/0", unfinished, 1, pattern(size))
        elsewhere = bucket.begin("v/files/0")
        bucket.put_part("v/files/0", elsewhere, 1, pattern(size))
        finished = bucket.begin("u/files/1")
        bucket.complete("u/files/1", finished,
                        [bucket.put_part("u/files/1", finished, 1, pattern(size))])
        aborted = bucket.begin("u/files/2")
        bucket.put_part("u/files/2", aborted, 1, pattern(size))
        bucket.abort("u/files/2", aborted)

        pending = list(bucket.pending("u/"))

        assert [(write.key, write.handle) for write in pending] == [("u/files/0", unfinished)]
        assert abs(pending[0].started - before) < CLOCK_SLACK
        assert sorted(write.key for write in bucket.pending("")) == ["u/files/0", "v/files/0"]
        bucket.abort("u/files/0", unfinished)
        assert [write.key for write in bucket.pending("")] == ["v/files/0"]

    def test_a_writer_completes_with_its_own_parts_only(self, bucket: Bucket):
        """A stale writer sending parts of the same numbers changes nothing of another's."""
        size = part_size(bucket)
        stale = bucket.begin("f")
        fresh = bucket.begin("f")
        bucket.put_part("f", stale, 1, pattern(size, seed=1))
        mine = bucket.put_part("f", fresh, 1, pattern(size, seed=2))
        bucket.put_part("f", stale, 2, b"stale tail")

        bucket.complete("f", fresh, [mine])

        assert bucket.get("f") == pattern(size, seed=2)
