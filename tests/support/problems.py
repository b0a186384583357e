"""The one check of a problem+json answer from Flask's test client."""

from typing import Any

from werkzeug.test import TestResponse

from handoff.problems import MEDIA_TYPE, TYPE_BASE


def assert_problem(response: TestResponse, status: int, kind: str) -> dict[str, Any]:
    """The problem document of ``response``, checked against RFC 9457's members."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == MEDIA_TYPE
    body = response.get_json()
    assert body["type"] == TYPE_BASE + kind
    assert body["status"] == status
    assert body["title"] and body["detail"]
    return body
