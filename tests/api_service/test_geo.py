import json
import socket
import threading
import time
from typing import Any

import pytest
import requests
from requests_toolbelt import StreamingIterator

from api_service.geo import (
    AnyReplica,
    GeoClient,
    GeoError,
    GeoNotReached,
    GeoUnreachable,
    _ChunkReader,
)
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


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_refused_connection_is_not_reached_and_no_body_byte_is_read():
    read = []

    def body():
        read.append(True)
        yield b"x" * 10

    client = GeoClient(Settings(geo_secret="s"), f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(GeoNotReached):
        client.append("x", body(), 10, {"Upload-Offset": "0"})
    assert read == []


def test_a_replica_that_takes_the_request_and_never_answers_was_reached():
    with socket.create_server(("127.0.0.1", 0)) as silent:
        settings = Settings(geo_secret="s", geo_url=f"http://127.0.0.1:{silent.getsockname()[1]}")
        with pytest.raises(GeoUnreachable) as failed:
            GeoClient(settings).capacity(timeout=(1.0, 0.2))
    assert not isinstance(failed.value, GeoNotReached)


NOT_REACHED = GeoNotReached(502, "geo service unreachable or broke off: refused")
BROKE_OFF = GeoUnreachable(502, "geo service unreachable or broke off: reset")


class _Wire(GeoClient):
    """A replica answering here: 200 with an offset document, or ``failure`` while it is set."""

    def __init__(self, name: str, failure: GeoError | None = None) -> None:
        super().__init__(Settings(geo_secret="s"), "http://unused", name)
        self.failure = failure
        self.calls: list[tuple[str, str, object]] = []

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        self.calls.append((method, path, kwargs.get("data")))
        if self.failure is not None:
            raise self.failure
        answer = requests.Response()
        answer.status_code = 200
        answer._content = json.dumps({"id": "x", "offset": 5}).encode()
        return answer


def _any(*wires: _Wire) -> AnyReplica:
    return AnyReplica(Settings(geo_secret="s"), wires)


def test_a_replica_never_reached_is_skipped_even_for_a_body_and_gets_no_more_calls():
    dead, alive = _Wire("geo-0", NOT_REACHED), _Wire("geo-1")
    client = _any(dead, alive)
    body = iter([b"01234"])
    assert client.append("x", body, 5, {"Upload-Offset": "0"})["offset"] == 5
    assert client.status("x") == {"id": "x", "offset": 5}
    assert len(dead.calls) == 1
    [(method, _, sent)] = alive.calls[:1]
    assert method == "patch" and sent is dead.calls[0][2]


def test_a_body_the_replica_broke_off_is_not_sent_again():
    broken, alive = _Wire("geo-0", BROKE_OFF), _Wire("geo-1")
    with pytest.raises(GeoUnreachable):
        _any(broken, alive).append("x", iter([b"01234"]), 5, {"Upload-Offset": "0"})
    assert alive.calls == []


@pytest.mark.parametrize("call", ["cancel", "delete"])
def test_a_call_that_changes_something_is_not_repeated_once_it_reached_a_replica(call: str):
    broken, alive = _Wire("geo-0", BROKE_OFF), _Wire("geo-1")
    client = _any(broken, alive)
    if call == "cancel":
        with pytest.raises(GeoUnreachable):
            client.cancel("x")
    else:
        assert client.delete("x") is False
    assert alive.calls == []


def test_a_get_is_asked_of_the_next_replica_whatever_the_failure():
    broken, alive = _Wire("geo-0", BROKE_OFF), _Wire("geo-1")
    assert _any(broken, alive).resume_offset("x") == {"id": "x", "offset": 5}
    assert [method for method, _, _ in alive.calls] == ["get"]


def test_when_every_replica_fails_the_last_failure_is_the_answer():
    client = _any(_Wire("geo-0", NOT_REACHED), _Wire("geo-1", BROKE_OFF))
    with pytest.raises(GeoUnreachable) as failed:
        client.status("x")
    assert failed.value is BROKE_OFF


def test_purposes_come_from_the_replicas_own_clients():
    dead, alive = _Wire("geo-0", NOT_REACHED), _Wire("geo-1")
    alive._purposes = (time.monotonic(), {"raw"})
    assert _any(dead, alive).purposes() == {"raw"}
    assert alive.calls == []
