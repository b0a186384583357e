from requests_toolbelt import StreamingIterator

from api_service.geo import _ChunkReader


def _read_all(reader, size: int) -> list[bytes]:
    pieces = []
    while piece := reader.read(size):
        pieces.append(piece)
    return pieces


def test_chunks_that_fit_are_handed_over_as_they_are():
    chunks = [b"a" * 10, b"b" * 7, b"c"]
    pieces = _read_all(_ChunkReader(chunks), 10)
    assert pieces == chunks
    assert all(piece is chunk for piece, chunk in zip(pieces, chunks, strict=True))


def test_a_chunk_larger_than_the_read_is_split_without_losing_bytes():
    pieces = _read_all(_ChunkReader([b"0123456789", b"ab"]), 4)
    assert pieces == [b"0123", b"4567", b"89", b"ab"]


def test_empty_chunks_do_not_end_the_body_early():
    assert b"".join(_read_all(_ChunkReader([b"", b"head", b"", b"", b"tail"]), 100)) == b"headtail"


def test_the_end_stays_the_end():
    reader = _ChunkReader([b"x"])
    assert reader.read(10) == b"x"
    assert reader.read(10) == b""
    assert reader.read(10) == b""


def test_streaming_iterator_sends_exactly_the_relayed_bytes():
    chunks = [bytes([n]) * (1000 + n) for n in range(20)]
    body = StreamingIterator(sum(map(len, chunks)), _ChunkReader(iter(chunks)))
    assert b"".join(_read_all(body, 1024)) == b"".join(chunks)
