"""Upload ids that are not canonical UUIDs never reach the disk.

The id in ``/uploads/<id>`` becomes a folder name in the upload store, so a
path-like id could read, write or delete outside it, and a second spelling
of a valid id (upper case) could give one upload two folders. Requests are
sent over a raw socket because HTTP clients would normalise the ``..``
segments away before they reach the server.
"""

import os
import uuid

import pytest

from tests.faults import private_stack, tree
from tests.faults.raw_http import Answer, Field, File, form, multipart_type, send
from tests.support.problems import assert_problem
from tests.support.processes import Processes
from tests.support.stacks import Stack

_VALID = str(uuid.uuid4())
HOSTILE = {
    "upper-case": _VALID.upper(),
    "encoded-climb": "..%2F..%2Fetc",
    "encoded-path": "..%2F..%2Fetc%2Fpasswd",
    "raw-path": "../../etc/passwd",
    "encoded-dot-dot": "%2E%2E",
    "nul-byte": f"{_VALID}%00",
    "very-long": (_VALID * 140)[:5000],
}
ANY_ANSWER = [pytest.param(value, id=name) for name, value in HOSTILE.items()]
CONTRACT = ANY_ANSWER


@pytest.fixture(scope="module")
def store_stack(module_processes: Processes) -> Stack:
    return private_stack(module_processes, {})


def _geo(stack: Stack, method: str, upload_id: str) -> Answer:
    """``method /uploads/<upload_id>`` with the valid secret; POST carries a real form."""
    headers = dict(stack.geo_auth)
    body = b""
    if method == "POST":
        body = form([Field("purpose", "raw"), File("file", "a.bin", os.urandom(4096))])
        headers.update({"Content-Type": multipart_type(), "Content-Length": str(len(body))})
    return send(stack.geo_url, method, f"/uploads/{upload_id}", headers, body)


def _api(stack: Stack, upload_id: str) -> Answer:
    return send(stack.api_url, "GET", f"/v1/uploads/{upload_id}", dict(stack.client_headers))


def _snapshot(stack: Stack) -> tuple[set[str], set[str]]:
    """Everything under the stack's root, and the names beside it (where ``../..`` leads)."""
    return tree(stack.root), set(os.listdir(stack.root.parent))


@pytest.mark.parametrize("upload_id", ANY_ANSWER)
def test_a_non_canonical_id_changes_nothing_on_disk(store_stack: Stack, upload_id: str):
    """Whatever the answer, no request with such an id creates or removes a path."""
    before = _snapshot(store_stack)

    answers = {method: _geo(store_stack, method, upload_id) for method in ("POST", "GET", "DELETE")}
    answers["API GET"] = _api(store_stack, upload_id)

    assert _snapshot(store_stack) == before
    statuses = {name: answer.status for name, answer in answers.items()}
    assert all(400 <= status < 500 for status in statuses.values()), statuses


@pytest.mark.parametrize("method", ["POST", "GET", "DELETE"])
@pytest.mark.parametrize("upload_id", CONTRACT)
def test_the_geo_endpoint_refuses_a_non_canonical_id(store_stack: Stack, upload_id: str,
                                                     method: str):
    """400 from the id check, or 404 when a slash keeps the path from matching the route."""
    answer = _geo(store_stack, method, upload_id)

    assert answer.status in (400, 404), answer
    expected = "canonical lowercase uuid" if answer.status == 400 else "not found"
    assert_problem(answer, answer.status, detail=expected)


@pytest.mark.parametrize("upload_id", CONTRACT)
def test_the_api_knows_no_upload_by_a_non_canonical_id(store_stack: Stack, upload_id: str):
    answer = _api(store_stack, upload_id)

    detail = assert_problem(answer, 404, detail="")["detail"].lower()
    assert "no upload with this id" in detail or "not found" in detail, detail
