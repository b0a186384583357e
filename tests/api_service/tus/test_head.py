"""HEAD /v1/uploads/<id> with Tus-Resumable: where to resume, asked of the geo service."""

import json

from handoff.tus import parse_upload_metadata
from tests.api_service.tus import ALICE, BOB, TUS, head, location, patch, problem
from tests.api_service.tus.conftest import Api
from tests.geo_service.store import disk
from tests.support.multipart_bodies import content_type, upload_body


def test_head_gives_offset_length_metadata_and_expiry(api: Api):
    url = location(api.client, length=10, metadata='{"project": "p"}')
    patch(api.client, url, 0, b"0123")
    answer = head(api.client, url)
    assert answer.status_code == 200
    assert answer.headers["Upload-Offset"] == "4"
    assert answer.headers["Upload-Length"] == "10"
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.headers["Upload-Expires"].endswith(" GMT")
    assert answer.headers["Tus-Resumable"] == "1.0.0"
    pairs = parse_upload_metadata(answer.headers["Upload-Metadata"])
    assert pairs["filename"] == "plan.bin" and pairs["purpose"] == "raw"
    assert json.loads(pairs["metadata"]) == {"project": "p"}
    assert answer.get_data() == b""


def test_a_deferred_length_says_so(api: Api):
    answer = head(api.client, location(api.client, length=None))
    assert answer.headers["Upload-Defer-Length"] == "1"
    assert "Upload-Length" not in answer.headers


def test_head_always_asks_the_geo_service(api: Api):
    url = location(api.client, length=10)
    assert head(api.client, url).headers["Upload-Offset"] == "0"
    with open(disk.file_path(api.store, url.rsplit("/", 1)[-1], 0), "ab") as handle:
        handle.write(b"01")  # a writer died after writing, before recording
    assert head(api.client, url).headers["Upload-Offset"] == "2"


def test_a_complete_upload_is_at_its_length(api: Api):
    url = location(api.client, length=2)
    patch(api.client, url, 0, b"01")
    answer = head(api.client, url)
    assert answer.headers["Upload-Offset"] == "2" and "Upload-Expires" not in answer.headers


def test_another_tenants_upload_is_404(api: Api):
    problem(head(api.client, location(api.client), headers=BOB), 404, "not-found")


def test_head_without_tus_resumable_is_the_status_documents(api: Api):
    url = location(api.client)
    answer = api.client.head(url, headers={"Authorization": "Bearer alice-token"})
    assert answer.status_code == 200 and answer.mimetype == "application/json"
    assert "Upload-Offset" not in answer.headers


def test_another_version_is_412(api: Api):
    answer = head(api.client, location(api.client), headers={**TUS, "Tus-Resumable": "2.0.0"})
    assert answer.status_code == 412 and answer.headers["Tus-Version"] == "1.0.0"


def _multipart(api: Api, files: list[tuple[str, bytes]]) -> str:
    answer = api.client.post("/v1/uploads", data=upload_body(files, purpose="raw",
                                                             metadata='{"p": 1}'),
                             content_type=content_type(), headers=ALICE)
    assert answer.status_code == 202, answer.get_data(as_text=True)
    return f"/v1/uploads/{answer.get_json()['id']}"


def test_a_finished_multipart_upload_is_a_complete_one(api: Api):
    """The same kind of upload either way: HEAD agrees with GET that it exists, whole."""
    url = _multipart(api, [("m.txt", b"multi")])
    assert api.client.get(url, headers=ALICE).status_code == 200
    answer = head(api.client, url)
    assert answer.status_code == 200
    assert (answer.headers["Upload-Offset"], answer.headers["Upload-Length"]) == ("5", "5")
    assert "Upload-Expires" not in answer.headers
    pairs = parse_upload_metadata(answer.headers["Upload-Metadata"])
    assert pairs == {"filename": "m.txt", "purpose": "raw", "metadata": '{"p": 1}'}


def test_a_multi_file_upload_is_complete_at_its_total_without_a_file_name(api: Api):
    url = _multipart(api, [("a.txt", b"abc"), ("b.txt", b"de")])
    answer = head(api.client, url)
    assert answer.status_code == 200
    assert (answer.headers["Upload-Offset"], answer.headers["Upload-Length"]) == ("5", "5")
    assert "filename" not in parse_upload_metadata(answer.headers["Upload-Metadata"])


def test_a_finished_multipart_upload_is_still_404_for_another_tenant(api: Api):
    problem(head(api.client, _multipart(api, [("m.txt", b"m")]), headers=BOB), 404, "not-found")


def test_a_finished_multipart_upload_takes_no_patch(api: Api):
    url = _multipart(api, [("m.txt", b"m")])
    problem(patch(api.client, url, 1, b"x"), 404, "not-found")
