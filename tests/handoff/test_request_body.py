"""body_reader under a real gunicorn: the same bytes as gunicorn's own reader, and
gunicorn's bookkeeping left right for the next request on the connection."""

import hashlib
import json
import os
import socket
import time

import pytest
import requests

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


def _request(path: str, body: bytes, length: int | None = None) -> bytes:
    head = (f"POST {path} HTTP/1.1\r\nHost: test\r\n"
            f"Content-Length: {len(body) if length is None else length}\r\n"
            "Content-Type: application/octet-stream\r\n\r\n")
    return head.encode() + body


def _answers(sock: socket.socket, count: int) -> list[dict]:
    """Read ``count`` HTTP responses off a raw connection; their JSON bodies."""
    data, answers = b"", []
    sock.settimeout(30)
    while len(answers) < count:
        while b"\r\n\r\n" not in data:
            data += _recv(sock)
        head, _, data = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        while len(data) < length:
            data += _recv(sock)
        answers.append(json.loads(data[:length]))
        data = data[length:]
    return answers


def _recv(sock: socket.socket) -> bytes:
    piece = sock.recv(65536)
    assert piece, "the server closed the connection"
    return piece


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=30)


def _expected(body: bytes) -> dict:
    return {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}


def test_a_body_with_a_length_is_read_from_the_socket_whole(body_echo):
    body = os.urandom(5 * MiB + 17)
    answer = requests.post(f"{body_echo}/echo", data=body, timeout=30).json()
    assert answer["direct"] is True
    assert {k: answer[k] for k in ("size", "sha256")} == _expected(body)


def test_bytes_sent_in_odd_pieces_and_small_reads_come_out_in_order(body_echo):
    body = os.urandom(300_001)
    with _connect(body_echo) as sock:
        message = _request("/echo?read=1000", body)
        for start in range(0, len(message), 77_777):
            sock.sendall(message[start:start + 77_777])
            time.sleep(0.01)
        (answer,) = _answers(sock, 1)
    assert answer["direct"] is True
    assert answer["reads"] >= len(body) // 1000
    assert {k: answer[k] for k in ("size", "sha256")} == _expected(body)


def test_pipelined_requests_each_get_their_own_body(body_echo):
    """gunicorn reads past the headers: those bytes are this body and the next requests."""
    bodies = [os.urandom(n) for n in (10_000, 1, 250_000)]
    with _connect(body_echo) as sock:
        sock.sendall(b"".join(_request("/echo?read=4096", body) for body in bodies))
        answers = _answers(sock, len(bodies))
    assert [{k: a[k] for k in ("size", "sha256")} for a in answers] == [
        _expected(body) for body in bodies]


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


def test_a_body_cut_short_ends_the_reads_instead_of_hanging(body_echo):
    body = os.urandom(100_000)
    with _connect(body_echo) as sock:
        sock.sendall(_request("/echo", body, length=len(body) + 50_000))
        sock.shutdown(socket.SHUT_WR)
        (answer,) = _answers(sock, 1)
    assert {k: answer[k] for k in ("size", "sha256")} == _expected(body)
