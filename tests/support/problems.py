"""The one check of a problem+json answer, whoever asked: Flask's test client, requests, a socket.

Every refusal of either service is RFC 9457 problem+json, so every test
checks it the same way, against the same members.
"""

import json
from typing import Any, Protocol

import requests
from werkzeug.test import TestResponse

from handoff.problems import MEDIA_TYPE, TYPE_BASE

ABOUT_BLANK = "about:blank"


class RawAnswer(Protocol):
    """An answer read off a socket by hand (``tests.faults.raw_http.Answer``)."""

    status: int
    body: bytes

    @property
    def content_type(self) -> str: ...


def assert_problem(response: TestResponse | requests.Response | RawAnswer, status: int,
                   kind: str | None = None, detail: str = "") -> dict[str, Any]:
    """The problem document of ``response``, checked against RFC 9457's members.

    ``kind`` is the last part of the problem's type where the test names one,
    or RFC 9457's ``about:blank`` (a status with nothing to add); ``detail``
    is what the detail must mention, in any case. An answer to HEAD has no
    body to check: only its status and media type.
    """
    code, content_type, body, method = _parts(response)
    assert code == status, f"expected {status}, got {code}: {body[:500]!r}"
    assert content_type == MEDIA_TYPE, content_type
    if method == "HEAD":
        assert not body, body[:500]
        return {}
    document = json.loads(body)
    assert document["status"] == status, document
    if kind is None:
        assert document["type"].startswith(TYPE_BASE), document
    else:
        assert document["type"] == (kind if kind == ABOUT_BLANK else TYPE_BASE + kind), document
    assert document["title"] and document["detail"], document
    assert detail.lower() in document["detail"].lower(), document
    return document


def _parts(response: TestResponse | requests.Response | RawAnswer
           ) -> tuple[int, str, bytes, str | None]:
    """Status, Content-Type, body and the request's method, whichever client got the answer."""
    if isinstance(response, TestResponse):
        return (response.status_code, response.headers.get("Content-Type", ""),
                response.get_data(), response.request.method)
    if isinstance(response, requests.Response):
        return (response.status_code, response.headers.get("Content-Type", ""),
                response.content, response.request.method)
    return response.status, response.content_type, response.body, None
