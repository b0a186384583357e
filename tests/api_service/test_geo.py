import json
import socket
import threading
import time

import pytest
from requests_toolbelt import StreamingIterator

from api_service.geo import GeoClient, GeoError, _ChunkReader
from handoff.config import Settings
from handoff.units import MiB


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


class _PausingGeo:
    """A loopback stand-in for the geo service that stops reading mid-body for a while.

    Its receive buffer is kept small, so the sender's socket is soon full and
    the pause is felt by the sender as a send that does not complete.
    """

    def __init__(self, pause: float) -> None:
        self.pause = pause
        self.received = 0
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        self._server.settimeout(30)
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._thread.join(30)
        self._server.close()

    def _serve(self) -> None:
        conn, _ = self._server.accept()
        with conn:
            conn.settimeout(30)
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            time.sleep(self.pause)
            self.received = len(body)
            while self.received < length and (piece := conn.recv(MiB)):
                self.received += len(piece)
            if self.received < length:
                return
            answer = json.dumps({"id": "x", "files": []}).encode()
            conn.sendall(b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                         % (len(answer), answer))


def test_a_geo_service_that_pauses_longer_than_the_connect_timeout_does_not_abort_the_upload():
    geo = _PausingGeo(pause=1.5)
    settings = Settings(geo_url=geo.url, geo_secret="s", geo_connect_timeout=0.5,
                        geo_read_timeout=20.0)
    chunks = [bytes([n]) * MiB for n in range(32)]
    try:
        manifest = GeoClient(settings).upload("x", "alice", "multipart/form-data; boundary=b",
                                              iter(chunks), 32 * MiB)
    finally:
        geo.close()
    assert manifest == {"id": "x", "files": []}
    assert geo.received == 32 * MiB


def test_a_geo_service_that_stops_reading_for_good_fails_after_the_read_timeout():
    geo = _PausingGeo(pause=3.0)
    settings = Settings(geo_url=geo.url, geo_secret="s", geo_connect_timeout=0.5,
                        geo_read_timeout=1.0)
    try:
        with pytest.raises(GeoError) as failed:
            GeoClient(settings).upload("x", "alice", "multipart/form-data; boundary=b",
                                       iter([b"\0" * MiB] * 32), 32 * MiB)
    finally:
        geo.close()
    assert failed.value.status == 502
    assert geo.received < 32 * MiB  # the API gave up while the geo service was paused
