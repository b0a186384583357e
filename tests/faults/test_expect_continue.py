"""``Expect: 100-continue`` and ``Connection:`` as a careful client reads them.

A refusal the headers alone decide must come as the first answer, without a
``100 Continue`` inviting a body the server will not read, and say
``Connection: close``, which the server then does. A request the server
takes gets its ``100 Continue`` once the body is wanted, and then its 202.
"""

import base64
import os
import socket
import uuid

import pytest

from handoff.units import MiB
from tests.faults import private_stack, upload_folders
from tests.faults.raw_http import (
    Answer,
    Field,
    File,
    connect,
    form,
    head,
    multipart_type,
    read_answer,
)
from tests.support.problems import assert_problem
from tests.support.processes import Processes
from tests.support.stacks import Stack

TOKEN = "careful-token"
MAX_UPLOAD = 4 * MiB
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


@pytest.fixture(scope="module")
def careful(module_processes: Processes) -> Stack:
    overrides = {"HANDOFF_API_TOKENS": TOKEN, "HANDOFF_MAX_UPLOAD_SIZE": str(MAX_UPLOAD)}
    return private_stack(module_processes, overrides)


def _body() -> bytes:
    return form([Field("purpose", "raw"), File("file", "a.bin", os.urandom(64 * 1024))])


def _headers(body_length: int, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}", "Content-Type": multipart_type(),
            "Content-Length": str(body_length), "Expect": "100-continue", **extra}


def _refused_before_the_body(url: str, target: str, headers: dict[str, str]) -> Answer:
    """Send the head only, as a client waiting for 100 Continue; the answer, then the close."""
    with connect(url, timeout=10) as sock:
        sock.sendall(head("POST", url, target, headers, close=False))
        answer = read_answer(sock)
        assert sock.recv(1) == b"", "the connection stayed open after Connection: close"
    return answer


REFUSALS = [
    pytest.param({"Authorization": "Bearer wrong"}, 401, "bearer", id="bad-token"),
    pytest.param({"Content-Length": str(MAX_UPLOAD + 1)}, 413, "exceeds", id="too-large"),
    pytest.param({"Content-Type": "text/plain"}, 415, "multipart", id="not-multipart"),
    pytest.param({"Content-Type": "multipart/form-data"}, 400, "boundary", id="no-boundary"),
]


@pytest.mark.parametrize(("change", "status", "detail"), REFUSALS)
def test_a_refusal_the_headers_decide_comes_first_and_closes(careful: Stack, change, status,
                                                             detail):
    before = upload_folders(careful)

    answer = _refused_before_the_body(careful.api_url, "/v1/uploads",
                                      {**_headers(len(_body())), **change})

    assert_problem(answer, status, detail=detail)
    assert answer.headers["connection"] == "close"
    assert upload_folders(careful) == before


def test_a_tus_creation_too_large_for_the_server_comes_first(careful: Stack):
    headers = {"Authorization": f"Bearer {TOKEN}", "Tus-Resumable": "1.0.0",
               "Upload-Length": str(MAX_UPLOAD + 1), "Content-Length": "10",
               "Upload-Metadata": "purpose " + base64.b64encode(b"raw").decode(),
               "Content-Type": "application/offset+octet-stream", "Expect": "100-continue"}

    answer = _refused_before_the_body(careful.api_url, "/v1/uploads", headers)

    assert_problem(answer, 413, detail="exceeds")
    assert answer.headers["connection"] == "close"


def test_the_geo_service_refuses_a_missing_secret_first(careful: Stack):
    headers = {"Content-Type": multipart_type(), "Content-Length": str(len(_body())),
               "Expect": "100-continue"}

    answer = _refused_before_the_body(careful.geo_url, f"/uploads/{uuid.uuid4()}", headers)

    assert_problem(answer, 401, detail="bearer secret")
    assert answer.headers["connection"] == "close"


def test_an_upload_taken_is_invited_then_accepted(careful: Stack):
    body = _body()
    with connect(careful.api_url, timeout=30) as sock:
        sock.sendall(head("POST", careful.api_url, "/v1/uploads", _headers(len(body))))
        invited = _read_exactly(sock, len(CONTINUE))
        sock.sendall(body)
        answer = read_answer(sock)
    assert invited == CONTINUE
    assert answer.status == 202, answer.body
    assert answer.json()["id"] in upload_folders(careful)


def test_a_refusal_while_the_body_arrives_says_close(careful: Stack):
    """Past the limit on the way (no Content-Length to tell it before), the rest is unread."""
    body = form([Field("purpose", "raw"), File("file", "big.bin", os.urandom(2 * MAX_UPLOAD))])
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": multipart_type(),
               "Transfer-Encoding": "chunked", "Expect": "100-continue"}
    with connect(careful.api_url, timeout=30) as sock:
        sock.sendall(head("POST", careful.api_url, "/v1/uploads", headers, close=False))
        assert _read_exactly(sock, len(CONTINUE)) == CONTINUE
        try:
            for start in range(0, len(body), 256 * 1024):
                piece = body[start:start + 256 * 1024]
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server stopped reading: the answer is waiting
        answer = read_answer(sock)
    assert_problem(answer, 413, detail="exceeds")
    assert answer.headers["connection"] == "close"


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size and (chunk := sock.recv(size - len(data))):
        data += chunk
    return data
