"""Two geo replicas on one SeaweedFS: each serves any upload, and one stopped fails no request.

The stack runs two named replicas (a geo service and a worker each) on one
``s3://`` store of the run's SeaweedFS, its locks and queue in the stack's
own valkey, and an API told both replicas and the store.
"""

import base64
import contextlib
import http.client
import json
from collections.abc import Callable

import pytest
import requests

from handoff.ids import new_upload_id
from handoff.tus import OFFSET_MEDIA_TYPE
from handoff.tus_request import UploadInfo
from tests.support import objectstores
from tests.support.polling import eventually
from tests.support.stacks import Stack

TUS = {"Tus-Resumable": "1.0.0"}
#: A tus creation's metadata: the purpose ``raw``.
RAW = {"Upload-Metadata": f"purpose {base64.b64encode(b'raw').decode()}"}
DATA = b"one small file\n" * 64


@pytest.fixture
def shared_stack(make_stack: Callable[..., Stack],
                 seaweedfs: objectstores.ObjectServer) -> Stack:
    store = seaweedfs.url("s3", objectstores.fresh_prefix())
    return make_stack({**seaweedfs.env, "HANDOFF_STORE_URL": store},
                      components=("redis", "geo", "worker", "api"), replicas=2)


def test_an_upload_made_through_one_replica_is_appended_and_read_through_the_other(
        shared_stack: Stack) -> None:
    upload_id = new_upload_id()
    first, other = shared_stack.url("geo-0"), shared_stack.url("geo-1")
    auth = shared_stack.geo_auth
    info = UploadInfo("raw", {}, "a.bin", "application/octet-stream", len(DATA))
    created = requests.put(f"{first}/uploads/{upload_id}", json=info.document(), timeout=30,
                           headers={**auth, "Handoff-Tenant": "anonymous"})
    assert created.status_code == 201, created.text

    appended = requests.patch(f"{other}/uploads/{upload_id}", data=DATA, timeout=30,
                              headers={**auth, "Content-Type": OFFSET_MEDIA_TYPE,
                                       "Upload-Offset": "0"})
    assert appended.status_code == 200, appended.text

    for url in (other, first):
        status = requests.get(f"{url}/uploads/{upload_id}", headers=auth, timeout=30)
        assert status.json()["state"] == "complete"
        assert status.json()["manifest"]["files"][0]["size"] == len(DATA)


def _tus(stack: Stack, method: str, url: str, headers: dict[str, str],
         data: bytes = b"") -> requests.Response:
    return requests.request(method, url if url.startswith("http") else stack.api_url + url,
                            data=data, timeout=30, headers={**TUS, **headers})


def _no_replica_unavailable(response: requests.Response) -> requests.Response:
    if response.headers.get("Content-Type", "").startswith("application/problem+json"):
        assert not response.json()["type"].endswith("/replica-unavailable"), response.text
    return response


def test_a_replica_stopped_by_pid_makes_no_request_answer_replica_unavailable(
        shared_stack: Stack) -> None:
    half = len(DATA) // 2
    before = _tus(shared_stack, "POST", "/v1/uploads", {**RAW, "Upload-Length": str(len(DATA))})
    assert before.status_code == 201, before.text

    shared_stack.kill("geo-0")

    created = _tus(shared_stack, "POST", "/v1/uploads", {**RAW, "Upload-Length": str(len(DATA))})
    assert _no_replica_unavailable(created).status_code == 201
    for url in (before.headers["Location"], created.headers["Location"]):
        for offset, part in ((0, DATA[:half]), (half, DATA[half:])):
            assert _no_replica_unavailable(_tus(shared_stack, "HEAD", url, {})
                                           ).headers["Upload-Offset"] == str(offset)
            sent = _tus(shared_stack, "PATCH", url, {
                "Upload-Offset": str(offset), "Content-Type": OFFSET_MEDIA_TYPE}, part)
            assert _no_replica_unavailable(sent).status_code == 204, sent.text
        upload_id = url.rsplit("/", 1)[-1]
        assert shared_stack.wait_for(upload_id)["status"] == "done"
    multipart = _no_replica_unavailable(shared_stack.upload([("a.txt", DATA)]))
    assert multipart.status_code == 202, multipart.text
    assert shared_stack.wait_for(multipart.json()["id"])["status"] == "done"


def _receiving(stack: Stack) -> list[str]:
    """The replicas with an upload arriving now, by their own ``/capacity``."""
    return [name for name in ("geo-0", "geo-1") if name in stack.procs and requests.get(
        f"{stack.url(name)}/capacity", headers=stack.geo_auth, timeout=30).json()["in_flight"]]


def test_a_patch_whose_replica_dies_mid_body_is_resumed_through_the_other(
        shared_stack: Stack) -> None:
    created = _tus(shared_stack, "POST", "/v1/uploads", {**RAW, "Upload-Length": str(len(DATA))})
    url = created.headers["Location"]
    half = len(DATA) // 2
    sending = http.client.HTTPConnection("127.0.0.1", shared_stack.ports["api"], timeout=60)
    sending.putrequest("PATCH", url)
    for name, value in {**TUS, "Upload-Offset": "0", "Content-Type": OFFSET_MEDIA_TYPE,
                        "Content-Length": str(len(DATA))}.items():
        sending.putheader(name, value)
    sending.endheaders(DATA[:half])
    assert eventually(lambda: _receiving(shared_stack))
    [dying] = _receiving(shared_stack)

    shared_stack.kill(dying)
    with contextlib.suppress(OSError):  # the API may answer before reading the rest
        sending.send(DATA[half:])
    answer = sending.getresponse()
    assert answer.status == 502
    assert json.loads(answer.read())["type"].endswith("/geo-unavailable")
    sending.close()

    offset = int(_no_replica_unavailable(_tus(shared_stack, "HEAD", url, {})
                                         ).headers["Upload-Offset"])
    rest = _tus(shared_stack, "PATCH", url, {"Upload-Offset": str(offset),
                                             "Content-Type": OFFSET_MEDIA_TYPE}, DATA[offset:])
    assert rest.status_code == 204, rest.text
    assert shared_stack.wait_for(url.rsplit("/", 1)[-1])["status"] == "done"
