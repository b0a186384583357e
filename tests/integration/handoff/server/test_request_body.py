"""body_reader under a real gunicorn: the same bytes as gunicorn's own reader, and
gunicorn's bookkeeping left right for the next request on the connection."""

import hashlib
import io
import os
import time

import pytest
import requests

from handoff.server.request_body import IncompleteBody, body_reader
from handoff.units import MiB
from tests.faults.raw_http import Answer, connect, head, read_answers, send


def _request(url: str, path: str, body: bytes) -> bytes:
    """One POST that leaves the connection open, as exact bytes."""
    headers = {"Content-Length": str(len(body)), "Content-Type": "application/octet-stream"}
    return head("POST", url, path, headers, close=False) + body


def _got(answer: Answer) -> dict:
    assert answer.status == 200, answer.body
    return {k: answer.json()[k] for k in ("size", "sha256")}


def _expected(body: bytes) -> dict:
    return {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}


def test_a_body_with_a_length_is_read_from_the_socket_whole(body_echo):
    body = os.urandom(5 * MiB + 17)
    answer = requests.post(f"{body_echo}/echo", data=body, timeout=30).json()
    assert answer["direct"] is True
    assert {k: answer[k] for k in ("size", "sha256")} == _expected(body)


def test_bytes_sent_in_odd_pieces_and_small_reads_come_out_in_order(body_echo):
    body = os.urandom(300_001)
    with connect(body_echo, timeout=30) as sock:
        message = _request(body_echo, "/echo?read=1000", body)
        for start in range(0, len(message), 77_777):
            sock.sendall(message[start:start + 77_777])
            time.sleep(0.01)
        (answer,) = read_answers(sock, 1)
    assert answer.json()["direct"] is True
    assert answer.json()["reads"] >= len(body) // 1000
    assert _got(answer) == _expected(body)


def test_pipelined_requests_each_get_their_own_body(body_echo):
    """gunicorn reads past the headers: those bytes are this body and the next requests."""
    bodies = [os.urandom(n) for n in (10_000, 1, 250_000)]
    with connect(body_echo, timeout=30) as sock:
        sock.sendall(b"".join(_request(body_echo, "/echo?read=4096", body) for body in bodies))
        answers = read_answers(sock, len(bodies))
    assert [_got(answer) for answer in answers] == [_expected(body) for body in bodies]


def test_a_keep_alive_connection_serves_the_next_request_after_a_large_body(body_echo):
    with requests.Session() as session:
        for size in (3 * MiB, 0, MiB + 1):
            body = os.urandom(size)
            answer = session.post(f"{body_echo}/echo", data=body, timeout=30).json()
            assert {k: answer[k] for k in ("size", "sha256")} == _expected(body)


def test_a_chunked_body_is_read_by_gunicorn_itself(body_echo):
    pieces = [os.urandom(n) for n in (1000, 300_000, 5)]
    answer = requests.post(f"{body_echo}/echo", data=iter(pieces), timeout=30).json()
    assert answer["direct"] is False
    assert {k: answer[k] for k in ("size", "sha256")} == _expected(b"".join(pieces))


@pytest.mark.parametrize("missing", [1, 50_000])
def test_a_body_cut_short_is_incomplete_at_once_not_ended(body_echo, missing):
    """EOF before the Content-Length is reached raises; it is not the end of the body."""
    body = os.urandom(100_000)
    answer = send(body_echo, "POST", "/echo", {"Content-Length": str(len(body) + missing)},
                  body, shut_write=True, timeout=30)
    assert answer.json()["incomplete"] is True
    assert answer.json()["direct"] is True
    assert _got(answer) == _expected(body)


def test_the_servers_own_reader_is_held_to_the_content_length():
    """Off the direct path (here: no gunicorn socket), an early end is still incomplete."""
    short = {"wsgi.input": io.BytesIO(b"x" * 10), "CONTENT_LENGTH": "11"}
    reader = body_reader(short)
    assert reader.read(8) == b"x" * 8
    assert reader.read(8) == b"xx"
    with pytest.raises(IncompleteBody):
        reader.read(8)
    whole = body_reader({"wsgi.input": io.BytesIO(b"y" * 11), "CONTENT_LENGTH": "11"})
    assert reader_bytes(whole) == b"y" * 11


def reader_bytes(reader) -> bytes:
    return b"".join(iter(lambda: reader.read(4), b""))
