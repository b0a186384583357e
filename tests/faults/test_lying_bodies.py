"""Bodies that lie about their length: fewer bytes than their Content-Length, then a close.

A complete multipart body one byte short of what it announced is not an
upload: the API must take the close for what it is (an incomplete body, not
a client gone silent until a read time-out), answer it and close, and the
geo service must never seal what it received.
"""

import os
import socket

import pytest
import requests

from geo_service.store import FileStore, State
from handoff.units import MiB
from tests.faults import private_stack, upload_folders
from tests.faults.raw_http import Answer, connect, head, read_answer
from tests.support.multipart_bodies import content_type, upload_body
from tests.support.polling import eventually
from tests.support.problems import assert_problem
from tests.support.processes import Processes
from tests.support.stacks import Stack

LIARS = 32


@pytest.fixture(scope="module")
def liar_stack(module_processes: Processes) -> Stack:
    return private_stack(module_processes, {})


def _lie(url: str, body: bytes) -> socket.socket:
    """Send ``body`` announced as one byte longer, then close the sending side."""
    sock = connect(url, timeout=10)
    headers = {"Content-Type": content_type(), "Content-Length": str(len(body) + 1)}
    sock.sendall(head("POST", url, "/v1/uploads", headers) + body)
    sock.shutdown(socket.SHUT_WR)
    return sock


def _sealed_without_job(stack: Stack) -> list[str]:
    store = FileStore(stack.uploads)
    return [name for name in upload_folders(stack)
            if store.state(name) is State.COMPLETE]


def _answer_then_close(sock: socket.socket) -> tuple[Answer, bytes]:
    """The liar's answer, and what follows it on the connection (b"" once it is closed)."""
    answer = read_answer(sock)
    return answer, sock.recv(1)


def test_short_bodies_closed_at_once_leave_the_api_serving_and_nothing_sealed(liar_stack):
    body = upload_body([("short.bin", os.urandom(64 * 1024))])
    liars = [_lie(liar_stack.api_url, body) for _ in range(LIARS)]
    try:
        health = requests.get(f"{liar_stack.api_url}/healthz", timeout=5)
        normal = liar_stack.upload([("normal.bin", os.urandom(MiB))])
        answers = [_answer_then_close(sock) for sock in liars]
    finally:
        for sock in liars:
            sock.close()
    assert health.status_code == 200
    assert normal.status_code == 202, normal.text
    for answer, after in answers:
        # the close, not a read time-out (408)
        assert_problem(answer, 400, detail="stopped sending")
        assert answer.headers["connection"] == "close"
        assert after == b""
    normal_id = normal.json()["id"]
    # A liar's partial may outlive its request for a moment (the sweeper is the
    # net for those); sealed, it would be taken for a complete upload.
    eventually(lambda: not _sealed_without_job(liar_stack), timeout=10)
    assert _sealed_without_job(liar_stack) == []
    assert normal_id in upload_folders(liar_stack)
