"""Stopping the API with uploads in flight: they finish within the grace, or get a problem."""

import signal
import socket
import threading
from contextlib import suppress

from handoff.units import MiB
from tests.support.multipart_bodies import BOUNDARY, content_type, upload_head

TAIL = b"\r\n--" + BOUNDARY + b"--\r\n"
SIZE = 10 * MiB


def _open(port: int) -> tuple[socket.socket, bytes]:
    """A raw upload of ``SIZE`` bytes whose head is sent; the file bytes still to send."""
    head = upload_head("s.bin")
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    sock.sendall((f"POST /v1/uploads HTTP/1.1\r\nHost: x\r\nContent-Length: {SIZE}\r\n"
                  f"Content-Type: {content_type()}\r\n\r\n").encode() + head)
    return sock, b"x" * (SIZE - len(head) - len(TAIL))


def _answer(sock: socket.socket) -> str:
    data = b""
    with suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    return data.decode("latin-1")


def _trickle(sock: socket.socket, data: bytes, stop: threading.Event) -> None:
    """64 KiB every 0.1 s, well above the minimum rate, until the server stops reading."""
    for start in range(0, len(data), 64 * 1024):
        if stop.wait(0.1):
            return
        try:
            sock.sendall(data[start:start + 64 * 1024])
        except OSError:
            return


def test_an_upload_still_arriving_at_the_end_of_the_grace_gets_503_shutting_down(make_stack):
    stack = make_stack({"HANDOFF_GRACEFUL_TIMEOUT": "4s"}, components=("redis", "geo", "api"))
    sock, data = _open(stack.ports["api"])
    stop = threading.Event()
    sender = threading.Thread(target=_trickle, args=(sock, data, stop))
    sender.start()
    try:
        stack.procs["api"].send_signal(signal.SIGTERM)
        answer = _answer(sock)
    finally:
        stop.set()
        sender.join()
        sock.close()
    head, _, body = answer.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 503"), answer
    assert "Retry-After: 5" in head
    assert "Connection: close" in head
    assert "application/problem+json" in head
    assert "/problems/shutting-down" in body
    assert stack.procs["api"].wait(30) == 0
    assert [path for path in stack.uploads.iterdir() if not path.name.startswith(".")] == []


def test_an_upload_that_ends_within_the_grace_is_accepted(make_stack):
    stack = make_stack({"HANDOFF_GRACEFUL_TIMEOUT": "30s"}, components=("redis", "geo", "api"))
    sock, data = _open(stack.ports["api"])
    try:
        sock.sendall(data[:MiB])
        stack.procs["api"].send_signal(signal.SIGTERM)
        sock.sendall(data[MiB:] + TAIL)
        answer = _answer(sock)
    finally:
        sock.close()
    assert answer.startswith("HTTP/1.1 202"), answer
