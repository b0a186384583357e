"""Authentication: without the right secret or token nothing is read, written or relayed.

The geo service's upload endpoint writes to disk and must never be open;
the public API, once tokens are configured, must refuse before it relays a
byte to the geo service or queues a job.
"""

import os
import uuid

import pytest
import requests

from geo_service.store import FileStore
from handoff.units import MiB
from tests.faults import folders_left, log_records, private_stack, queue_length
from tests.faults.raw_http import Field, File, form, multipart_type
from tests.geo_service.store import disk
from tests.support.problems import assert_problem
from tests.support.processes import Processes
from tests.support.stacks import Stack

TOKENS = ("t1", "t2")
# Near misses as well as plain wrong ones: a check that compared prefixes or
# ignored the scheme would let them through.
GEO_CREDENTIALS = [
    pytest.param(lambda secret: {}, id="missing"),
    pytest.param(lambda secret: {"Authorization": "Bearer wrong-secret"}, id="wrong"),
    pytest.param(lambda secret: {"Authorization": f"Bearer {secret[:-1]}"}, id="secret-prefix"),
    pytest.param(lambda secret: {"Authorization": f"Basic {secret}"}, id="other-scheme"),
]


def _small_form() -> bytes:
    return form([Field("purpose", "raw"), File("file", "a.bin", os.urandom(64 * 1024))])


def _geo_leftovers(stack: Stack, upload_id: str) -> list[str]:
    store = FileStore(stack.uploads)
    paths = [disk.folder(store, upload_id), disk.lock_path(store, upload_id)]
    return [str(path) for path in paths if path.exists()]


@pytest.mark.parametrize("credentials", GEO_CREDENTIALS)
def test_the_geo_upload_endpoint_refuses_without_the_secret(stack: Stack, credentials):
    """The endpoint writes whatever it is sent to disk, so it is never open to anyone else."""
    upload_id = str(uuid.uuid4())
    headers = {"Content-Type": multipart_type(),
               **credentials(stack.env["HANDOFF_GEO_SECRET"])}

    response = requests.post(f"{stack.geo_url}/uploads/{upload_id}", data=_small_form(),
                             headers=headers, timeout=30)

    assert_problem(response, 401, detail="bearer secret")
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert _geo_leftovers(stack, upload_id) == []


@pytest.mark.parametrize("credentials", GEO_CREDENTIALS)
def test_geo_status_and_delete_refuse_without_the_secret(stack: Stack, credentials):
    """An existing upload can be neither read nor removed without the secret."""
    upload_id = str(uuid.uuid4())
    url = f"{stack.geo_url}/uploads/{upload_id}"
    created = requests.post(url, data=_small_form(), timeout=30,
                            headers={"Content-Type": multipart_type(), **stack.geo_auth})
    assert created.status_code == 201, created.text
    headers = credentials(stack.env["HANDOFF_GEO_SECRET"])
    try:
        shown = requests.get(url, headers=headers, timeout=30)
        assert_problem(shown, 401, detail="bearer secret")
        assert b"sha256" not in shown.content

        assert_problem(requests.delete(url, headers=headers, timeout=30), 401,
                       detail="bearer secret")
        assert FileStore(stack.uploads).manifest(upload_id) is not None
    finally:
        removed = requests.delete(url, headers=stack.geo_auth, timeout=30)
    assert removed.status_code == 204
    assert not (stack.uploads / upload_id).exists()


@pytest.fixture(scope="module")
def guarded(module_processes: Processes) -> Stack:
    """A stack whose API accepts two tokens, without a worker to consume the queue."""
    return private_stack(module_processes, {"HANDOFF_API_TOKENS": ",".join(TOKENS)})


def _geo_uploads_since(stack: Stack, start: int) -> list[str]:
    return [r["request"] for r in log_records(stack, "geo", start)
            if str(r.get("request", "")).startswith("POST /uploads/")]


@pytest.mark.parametrize("headers", [
    pytest.param({}, id="missing"),
    pytest.param({"Authorization": "Bearer t3"}, id="wrong"),
    pytest.param({"Authorization": "Bearer t1,t2"}, id="the-whole-list"),
    pytest.param({"Authorization": "Basic t2"}, id="other-scheme"),
])
def test_the_api_refuses_an_upload_without_a_listed_token(guarded: Stack, headers):
    """Refused at the door: no byte reaches the geo service, no job is queued."""
    queued = queue_length(guarded)
    geo_log = len(guarded.log("geo"))

    response = guarded.upload([("a.bin", os.urandom(MiB))], headers=headers)

    assert_problem(response, 401, detail="bearer token")
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert queue_length(guarded) == queued
    assert folders_left(guarded) == []
    assert _geo_uploads_since(guarded, geo_log) == []


def test_every_listed_token_is_accepted(guarded: Stack):
    """The second token works as well as the first; status needs a token too.

    Bare tokens are each a tenant of their own, so the first does not see
    what the second sent.
    """
    queued = queue_length(guarded)
    geo_log = len(guarded.log("geo"))

    response = guarded.upload([("a.bin", os.urandom(MiB))],
                              headers={"Authorization": f"Bearer {TOKENS[1]}"})

    assert response.status_code == 202, response.text
    upload_id = response.json()["id"]
    assert queue_length(guarded) == queued + 1
    assert _geo_uploads_since(guarded, geo_log) == [f"POST /uploads/{upload_id} HTTP/1.1"]
    status_url = f"{guarded.api_url}/v1/uploads/{upload_id}"
    assert_problem(requests.get(status_url, timeout=30), 401, detail="bearer token")
    other = requests.get(status_url, timeout=30, headers={"Authorization": f"Bearer {TOKENS[0]}"})
    assert_problem(other, 404, detail="no upload")
    shown = requests.get(status_url, timeout=30, headers={"Authorization": f"Bearer {TOKENS[1]}"})
    assert shown.status_code == 200
    assert shown.json()["status"] == "queued"
