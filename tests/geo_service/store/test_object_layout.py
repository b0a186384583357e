"""The object store's arithmetic, without a server: part sizes, segments, cuts and joins."""

import pytest

from geo_service.store.bucket import ObjectInfo
from geo_service.store.objects import (
    PartBuffer,
    Segment,
    chain,
    cut_plan,
    join_plan,
    part_size,
    ranges,
    segment_key,
    segments_of,
)

MIB = 1024 * 1024
ID = "0f8fad5b-d9cb-469f-a165-70867728950e"


def segments(*spans: tuple[int, int]) -> list[Segment]:
    return [Segment(segment_key(ID, start), start, size) for start, size in spans]


def test_parts_double_every_tenth_of_the_limit() -> None:
    sizes = [part_size(n, 8 * MIB, 10_000) for n in (1, 1000, 1001, 2000, 2001, 10_000)]
    assert sizes == [8 * MIB, 8 * MIB, 16 * MIB, 16 * MIB, 32 * MIB, 8 * MIB * 2**9]


def test_the_parts_allowed_hold_more_than_the_largest_upload() -> None:
    total = sum(part_size(n, 8 * MIB, 10_000) for n in range(1, 10_001))
    assert total > 5 * 1024**4  # S3's largest object


def test_segments_are_read_from_their_keys_in_offset_order() -> None:
    listed = [ObjectInfo(segment_key(ID, 10), 5, 0.0), ObjectInfo(segment_key(ID, 0), 10, 0.0),
              ObjectInfo(f"{ID}/append/notes.txt", 1, 0.0)]
    assert segments_of(listed) == segments((0, 10), (10, 5))
    assert segment_key(ID, 10) == f"{ID}/append/00000000000000000010"


def test_the_file_is_the_chain_from_zero_up_to_a_gap() -> None:
    assert chain(segments((0, 4), (4, 6), (12, 3))) == segments((0, 4), (4, 6))
    assert chain(segments((4, 6))) == []


def test_a_cut_deletes_what_starts_past_it_and_shortens_what_it_falls_in() -> None:
    found = segments((0, 4), (4, 6), (10, 5), (20, 1))
    assert cut_plan(found, 6) == ([segment_key(ID, 10), segment_key(ID, 20)],
                                  Segment(segment_key(ID, 4), 4, 6))
    assert cut_plan(found, 10) == ([segment_key(ID, 10), segment_key(ID, 20)], None)
    assert cut_plan(found, 0) == ([s.key for s in found], None)


def test_ranges_split_at_the_largest_piece() -> None:
    assert ranges(3, 10, 4) == [(3, 4), (7, 4), (11, 2)]
    assert ranges(0, 0, 4) == []


@pytest.mark.parametrize("sizes", [[], [1], [3, 3, 3], [12], [2, 9, 1, 7], [5, 5], [23, 1, 1]])
def test_a_join_takes_every_byte_in_order_in_parts_s3_accepts(sizes: list[int]) -> None:
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    found = segments(*zip(starts, sizes, strict=True))
    steps = join_plan(found, min_part=5, largest=10)
    taken = [(piece.key, piece.start, piece.size) for step in steps for piece in step.pieces]
    expected_bytes = [(s.key, i) for s in found for i in range(s.size)]
    assert [(key, start + i) for key, start, size in taken for i in range(size)] == expected_bytes
    part_sizes = [sum(piece.size for piece in step.pieces) for step in steps]
    assert all(size >= 5 for size in part_sizes[:-1])
    assert all(size <= 10 for size in part_sizes)
    assert all(len(step.pieces) == 1 for step in steps if step.copied)
    assert all(size <= 5 for step, size in zip(steps, part_sizes, strict=True) if not step.copied)


def test_a_join_copies_long_runs_and_gathers_short_ones() -> None:
    steps = join_plan(segments((0, 12), (12, 2), (14, 3)), min_part=5, largest=10)
    assert [(step.copied, [(p.start, p.size) for p in step.pieces]) for step in steps] == [
        (True, [(0, 10)]), (False, [(10, 2), (0, 2), (0, 1)]), (False, [(1, 2)])]


def test_a_part_keeps_the_chunks_it_is_given_and_joins_them_once() -> None:
    pending = PartBuffer()
    first, second = b"a" * 6, b"b" * 6

    assert pending.take(first, 10) == b""
    rest = pending.take(second, 10)

    assert (pending.size, bytes(rest)) == (10, b"bb")
    assert pending.chunks[0] is first  # kept as it came, not copied
    assert pending.joined() == b"a" * 6 + b"b" * 4
    assert (pending.size, pending.joined()) == (0, b"")


def test_a_part_copies_a_view_whose_buffer_its_owner_may_reuse() -> None:
    buffer, received = bytearray(b"xyz"), b"0123456789"
    pending = PartBuffer()
    pending.take(memoryview(buffer), 10)
    pending.take(memoryview(received)[2:5], 10)
    buffer[:] = b"___"

    assert isinstance(pending.chunks[1], memoryview)  # a view of bytes is not copied
    assert pending.joined() == b"xyz234"
