"""Upload-Concat on the public API: partial uploads, then the final one made of them."""

import hashlib

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from handoff.tus import parse_upload_metadata
from tests.api_service.tus import ALICE, BOB, TUS, create, head, metadata, patch, problem
from tests.api_service.tus.conftest import Api

PARTS = [b"one part, ", b"and another"]


def _partial(client: FlaskClient, data: bytes, headers: dict[str, str] | None = None) -> str:
    answer = create(client, len(data), headers={"Upload-Concat": "partial", **(headers or {})},
                    purpose=None, filename=None)
    assert answer.status_code == 201, answer.get_data(as_text=True)
    url = answer.headers["Location"]
    if data:
        assert patch(client, url, 0, data, headers=headers).status_code == 204
    return url


def _final(client: FlaskClient, urls: list[str], headers: dict[str, str] | None = None,
           **pairs: str) -> TestResponse:
    return client.post("/v1/uploads", headers={
        **ALICE, **TUS, "Upload-Concat": "final;" + " ".join(urls),
        "Upload-Metadata": metadata(**pairs), **(headers or {})})


def test_the_final_upload_is_its_parts_in_order_and_is_queued(api: Api):
    urls = [_partial(api.client, data) for data in PARTS]
    answer = _final(api.client, [f"http://localhost{urls[0]}", urls[1]])
    assert answer.status_code == 201, answer.get_data(as_text=True)
    assert answer.headers["Upload-Offset"] == str(sum(map(len, PARTS)))
    upload_id = answer.headers["Location"].rsplit("/", 1)[-1]
    assert [job[:2] for job in api.queue.jobs] == [(upload_id, "raw")]
    manifest = api.store.manifest(upload_id)
    assert manifest is not None
    assert manifest["files"][0]["sha256"] == hashlib.sha256(b"".join(PARTS)).hexdigest()
    assert manifest["files"][0]["name"] == "plan.bin"


def test_a_complete_partial_upload_is_not_queued(api: Api):
    _partial(api.client, PARTS[0])
    assert api.queue.jobs == []


def test_head_says_which_kind_of_upload_it_is(api: Api):
    urls = [_partial(api.client, data) for data in PARTS]
    answer = head(api.client, urls[0])
    assert answer.headers["Upload-Concat"] == "partial"
    assert "purpose" not in parse_upload_metadata(answer.headers["Upload-Metadata"])
    final = _final(api.client, urls).headers["Location"]
    assert head(api.client, final).headers["Upload-Concat"] == "final;" + " ".join(urls)


def test_a_patch_to_the_final_upload_is_403(api: Api):
    final = _final(api.client, [_partial(api.client, data) for data in PARTS])
    problem(patch(api.client, final.headers["Location"], 21, b"x"), 403, "final-upload")


def test_a_part_still_receiving_is_400_and_the_parts_are_kept(api: Api):
    first = _partial(api.client, PARTS[0])
    answer = create(api.client, 10, headers={"Upload-Concat": "partial"})
    second = answer.headers["Location"]
    detail = problem(_final(api.client, [first, second]), 400, "bad-request")["detail"]
    assert "not complete" in detail
    assert head(api.client, first).status_code == 200 and api.queue.jobs == []


def test_another_tenants_part_cannot_be_joined(api: Api):
    mine = _partial(api.client, PARTS[0])
    theirs = _partial(api.client, PARTS[1], headers=BOB)
    problem(_final(api.client, [mine, theirs]), 400, "bad-request")
    assert head(api.client, theirs, headers=BOB).status_code == 200


@pytest.mark.parametrize("header", ["final;", "final", "partial ; x", "final;/v1/other/abc",
                                    "final;/v1/uploads/not-an-id",
                                    "final;/elsewhere/uploads/4a5b6c7d-1e2f-4a3b-8c9d-0e1f2a3b4c5d"])
def test_a_malformed_concat_is_400_before_anything_is_made(api: Api, header: str):
    answer = api.client.post("/v1/uploads", headers={**ALICE, **TUS, "Upload-Concat": header,
                                                     "Upload-Metadata": metadata()})
    assert "Upload-Concat" in problem(answer, 400, "bad-request")["detail"]
    assert [path for path in api.store.root.iterdir() if not path.name.startswith(".")] == []


@pytest.mark.parametrize("headers", [{"Upload-Length": "21"}, {"Upload-Defer-Length": "1"}])
def test_a_final_upload_has_no_length_of_its_own(api: Api, headers: dict[str, str]):
    urls = [_partial(api.client, data) for data in PARTS]
    problem(_final(api.client, urls, headers=headers), 400, "bad-request")


def test_the_final_upload_needs_a_purpose(api: Api):
    urls = [_partial(api.client, data) for data in PARTS]
    problem(_final(api.client, urls, purpose="no-such-purpose"), 400, "bad-request")
    assert head(api.client, urls[0]).status_code == 200
