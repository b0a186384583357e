"""ConnectionBody on requests gunicorn's own parser reads from a socket pair."""

import socket
from collections.abc import Iterator

import pytest
from gunicorn.config import Config
from gunicorn.http.parser import RequestParser

from handoff.server.request_body import CONTINUE, ConnectionBody, defer_continue


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    server, client = socket.socketpair()
    server.settimeout(5)
    client.settimeout(5)
    with server, client:
        yield server, client


def _request(server: socket.socket, client: socket.socket, *headers: str):
    client.sendall(("POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
                    + "".join(f"{line}\r\n" for line in headers) + "\r\n").encode())
    req = next(RequestParser(Config(), server, ("127.0.0.1", 1)))
    defer_continue(req)
    return req


def _sent(client: socket.socket) -> bytes:
    client.setblocking(False)
    try:
        return client.recv(100)
    except BlockingIOError:
        return b""
    finally:
        client.setblocking(True)


def test_100_continue_waits_for_the_first_read(pair):
    server, client = pair
    req = _request(server, client, "Expect: 100-continue")
    assert isinstance(req.body, ConnectionBody)
    assert not req._expected_100_continue  # gunicorn will not send it itself
    assert _sent(client) == b""
    assert req.should_close()  # answered now, the connection closes

    client.sendall(b"abc")
    assert req.body.read(3) == b"abc"
    assert _sent(client) == CONTINUE
    assert not req.should_close()


def test_a_body_never_read_without_expect_keeps_the_connection(pair):
    req = _request(*pair)
    assert not req.should_close()
    assert _sent(pair[1]) == b""


def test_a_failed_body_closes_the_connection(pair):
    req = _request(*pair)
    req.body.failed = True
    assert req.should_close()


def test_a_client_asking_to_close_still_closes_after_the_invitation(pair):
    server, client = pair
    req = _request(server, client, "Expect: 100-continue", "Connection: close")
    client.sendall(b"abc")
    req.body.read(3)
    assert req.should_close()
