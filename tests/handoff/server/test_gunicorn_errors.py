"""gunicorn's own refusals, written as problem+json."""

import json
import socket

from gunicorn import util

from handoff.problems import MEDIA_TYPE, TYPE_BASE
from handoff.server import gunicorn_errors


def _written(status: int, reason: str, mesg: str) -> tuple[list[bytes], dict]:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        gunicorn_errors.write_problem(ours, status, reason, mesg)
        ours.close()
        raw = theirs.makefile("rb").read()
    head, _, body = raw.partition(b"\r\n\r\n")
    return head.split(b"\r\n"), json.loads(body)


def test_a_refusal_is_a_problem_with_gunicorns_status_and_message() -> None:
    lines, document = _written(431, "Request Header Fields Too Large", "Error parsing headers")
    assert lines[0] == b"HTTP/1.1 431 Request Header Fields Too Large"
    assert f"Content-Type: {MEDIA_TYPE}".encode() in lines
    assert b"Connection: close" in lines
    assert document == {"type": TYPE_BASE + "request-header-fields-too-large",
                        "title": "Request Header Fields Too Large", "status": 431,
                        "detail": "Error parsing headers"}


def test_the_content_length_matches_and_client_text_is_escaped() -> None:
    lines, document = _written(400, "Bad Request", "Invalid Request Line '\x00é<b>'")
    length = next(int(line.split(b":")[1]) for line in lines if line.startswith(b"Content-Length"))
    assert length == len(json.dumps(document).encode())
    assert document["detail"] == "Invalid Request Line '\x00é<b>'"


def test_an_empty_message_falls_back_to_the_reason() -> None:
    assert _written(500, "Internal Server Error", "")[1]["detail"] == "Internal Server Error"


def test_install_replaces_gunicorns_html_writer(monkeypatch) -> None:
    monkeypatch.setattr(util, "write_error", util.write_error)
    gunicorn_errors.install()
    assert util.write_error is gunicorn_errors.write_problem
