"""``handoff.client`` against a small real loopback HTTP server (tests/support/fake_api.py)."""

import itertools
import socket
import threading
import tracemalloc
from collections.abc import Iterator

import pytest
import requests

from handoff.client import (
    Client,
    ConnectionFailed,
    HandoffError,
    ProblemError,
    Timeouts,
    UnexpectedAnswer,
    Upload,
    UploadedFile,
    WaitTimeout,
)
from handoff.units import MiB
from tests.support.fake_api import (
    STATUS_PATH,
    UPLOAD_ID,
    Answer,
    FakeApi,
    accepted,
    as_json,
    form_parts,
    problem,
    status,
)
from tests.support.payloads import random_file

SHA = "ab" * 32


@pytest.fixture
def client(api: FakeApi) -> Iterator[Client]:
    with Client(api.url, "s3cret") as client:
        yield client


def test_upload_sends_fields_first_then_files_and_reads_the_answer(api, client, payload,
                                                                   tmp_path):
    second = tmp_path / "notes.txt"
    second.write_bytes(b"second file")
    api.answer("POST", "/v1/uploads", accepted([
        {"name": "survey.bin", "size": payload.stat().st_size, "sha256": SHA},
        {"name": "notes.txt", "size": 11, "sha256": SHA}]))

    upload = client.upload([payload, str(second)], "raw", {"project": "p1", "n": 1})

    [sent] = api.requests
    assert sent.headers["Authorization"] == "Bearer s3cret"
    assert int(sent.headers["Content-Length"]) == len(sent.body)
    assert form_parts(sent) == [
        ("purpose", None, b"raw"),
        ("metadata", None, b'{"project": "p1", "n": 1}'),
        ("file", "survey.bin", payload.read_bytes()),
        ("file", "notes.txt", b"second file"),
    ]
    assert (upload.id, upload.status, upload.purpose) == (UPLOAD_ID, "queued", "raw")
    assert upload.files == (UploadedFile("survey.bin", payload.stat().st_size, SHA),
                            UploadedFile("notes.txt", 11, SHA))
    assert not upload.finished
    assert upload.raw["links"] == {"self": STATUS_PATH}


def test_one_path_alone_is_one_file(api, client, payload):
    api.answer("POST", "/v1/uploads", accepted())
    client.upload(payload, "raw")
    assert [(name, filename) for name, filename, _ in form_parts(api.requests[0])] == [
        ("purpose", None), ("file", "survey.bin")]


def test_progress_grows_from_zero_to_the_whole_body(api, client, tmp_path):
    big = random_file(tmp_path / "big.bin", 4)
    api.answer("POST", "/v1/uploads", accepted())
    seen: list[tuple[int, int]] = []

    client.upload([big], "raw", progress=lambda sent, total: seen.append((sent, total)))

    body_length = int(api.requests[0].headers["Content-Length"])
    assert {total for _, total in seen} == {body_length}
    sent = [s for s, _ in seen]
    assert sent[0] == 0 and sent[-1] == body_length
    assert all(a < b for a, b in itertools.pairwise(sent))
    assert len(sent) > 3, "one report per block read, not one at the end"


def test_files_stream_from_disk_without_being_held_in_memory(api, tmp_path):
    big = random_file(tmp_path / "big.bin", 64)
    api.keep_bodies = False
    api.answer("POST", "/v1/uploads", accepted())
    with Client(api.url) as client:
        tracemalloc.start()
        try:
            client.upload([big], "raw")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert api.requests[0].received > 64 * MiB
    assert peak < 16 * MiB


def test_no_token_sends_no_authorization(api):
    api.answer("GET", STATUS_PATH, status("queued"))
    with Client(api.url + "/") as client:
        assert client.status(UPLOAD_ID).status == "queued"
    assert "Authorization" not in api.requests[0].headers


def test_a_session_of_the_callers_is_used_and_left_open(api):
    api.answer("GET", STATUS_PATH, status("queued"))
    session = requests.Session()
    session.headers["X-Trace"] = "t-1"
    with Client(api.url, "tok", session=session) as client:
        client.status(UPLOAD_ID)
    assert api.requests[0].headers["X-Trace"] == "t-1"
    assert api.requests[0].headers["Authorization"] == "Bearer tok"
    assert "Authorization" not in session.headers
    session.get(f"{api.url}{STATUS_PATH}", timeout=10)
    assert len(api.requests) == 2
    session.close()


def test_status_reads_every_member(api, client):
    document = {"id": UPLOAD_ID, "status": "done", "purpose": "raw", "metadata": {"a": 1},
                "files": [{"name": "x.bin", "size": 3, "sha256": SHA}],
                "result": {"files": 1}, "error": None, "created_at": 1.5}
    api.answer("GET", STATUS_PATH, as_json(200, document))
    upload = client.status(UPLOAD_ID)
    assert upload == Upload(UPLOAD_ID, "done", "raw", (UploadedFile("x.bin", 3, SHA),),
                            {"a": 1}, {"files": 1}, None)
    assert upload.finished
    assert upload.raw == document


def test_an_id_is_one_path_segment(api, client):
    with pytest.raises(ProblemError):
        client.status("a/../b?c")
    assert api.requests[0].path == "/v1/uploads/a%2F..%2Fb%3Fc"


def test_a_refusal_carries_its_problem(api, client, payload):
    api.answer("POST", "/v1/uploads", problem(
        413, "Upload too large", "the upload exceeds 1024 bytes", upload_id=UPLOAD_ID,
        limit="HANDOFF_MAX_UPLOAD_SIZE"))
    with pytest.raises(ProblemError) as caught:
        client.upload([payload], "raw")
    error = caught.value
    assert (error.status, error.type, error.title, error.detail) == (
        413, "https://handoff.dev/problems/x", "Upload too large",
        "the upload exceeds 1024 bytes")
    assert error.upload_id == UPLOAD_ID
    assert error.problem["limit"] == "HANDOFF_MAX_UPLOAD_SIZE"
    assert str(error) == (f"413 Upload too large: the upload exceeds 1024 bytes "
                          f"(upload {UPLOAD_ID})")


def test_an_answer_that_is_no_problem_still_becomes_one(api, client):
    api.answer("GET", STATUS_PATH, Answer(502, b"<html>\n  bad   gateway\n</html>", "text/html"))
    with pytest.raises(ProblemError) as caught:
        client.status(UPLOAD_ID)
    error = caught.value
    assert (error.status, error.type, error.title, error.detail) == (
        502, "about:blank", "Bad Gateway", "<html> bad gateway </html>")
    assert error.upload_id is None


def test_success_without_an_upload_document_is_unexpected(api, client):
    api.answer("GET", STATUS_PATH, Answer(200, b"<html>login</html>", "text/html"))
    with pytest.raises(UnexpectedAnswer, match="answered 200 without a JSON object"):
        client.status(UPLOAD_ID)
    api.answer("GET", STATUS_PATH, as_json(200, {"id": UPLOAD_ID, "status": "done",
                                                 "files": [{"name": "x"}]}))
    with pytest.raises(UnexpectedAnswer, match="files"):
        client.status(UPLOAD_ID)


def test_unreachable_api_is_a_connection_failure(payload):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with Client(f"http://127.0.0.1:{port}") as client, \
            pytest.raises(ConnectionFailed, match="Connection refused"):
        client.upload([payload], "raw")


def test_an_api_that_falls_silent_is_a_connection_failure(api):
    api.answer("GET", STATUS_PATH, Answer(200, b"{}", hold=threading.Event()))
    with Client(api.url, timeout=Timeouts(connect=5, answer=0.2)) as client, \
            pytest.raises(ConnectionFailed, match="timed out"):
        client.status(UPLOAD_ID)


def test_one_number_sets_every_timeout():
    assert Client("http://127.0.0.1:1", timeout=7).timeouts == Timeouts(7, 7, 7)


def test_nothing_is_sent_for_an_unusable_call(api, client, payload, tmp_path):
    with pytest.raises(FileNotFoundError):
        client.upload([payload, tmp_path / "missing.bin"], "raw")
    with pytest.raises(ValueError, match="at least one file"):
        client.upload([], "raw")
    with pytest.raises(TypeError, match="metadata must be a mapping"):
        client.upload([payload], "raw", metadata=[1, 2])  # type: ignore[arg-type]
    assert api.requests == []


def test_only_http_urls(api):
    with pytest.raises(ValueError, match="not an http"):
        Client("127.0.0.1:8000")


def test_wait_reports_each_change_and_returns_the_final_status(api, client):
    api.answer("GET", STATUS_PATH, status("queued"), status("queued"), status("processing"),
               status("done"))
    changes: list[str] = []
    final = client.wait(UPLOAD_ID, timeout=None, interval=0.01,
                        on_change=lambda upload: changes.append(upload.status))
    assert final.status == "done"
    assert final.result == {"ok": True}
    assert changes == ["queued", "processing", "done"]
    assert len(api.requests) == 4


def test_a_failed_job_is_returned_not_raised(api, client):
    api.answer("GET", STATUS_PATH, status("failed", "not a shapefile"))
    final = client.wait(UPLOAD_ID, timeout=5, interval=0.01)
    assert (final.status, final.error) == ("failed", "not a shapefile")


def test_wait_gives_up_with_the_last_status(api, client):
    api.answer("GET", STATUS_PATH, status("processing"))
    with pytest.raises(WaitTimeout) as caught:
        client.wait(UPLOAD_ID, timeout=0.1, interval=0.02)
    assert caught.value.upload.status == "processing"
    assert str(caught.value) == f"upload {UPLOAD_ID} still processing after 0.1 s"


def test_wait_never_sleeps_past_its_deadline(api, client):
    api.answer("GET", STATUS_PATH, status("queued"))
    with pytest.raises(WaitTimeout):
        client.wait(UPLOAD_ID, timeout=5, interval=3600)
    assert len(api.requests) == 1


def test_wait_needs_a_positive_interval(client):
    with pytest.raises(ValueError, match="interval"):
        client.wait(UPLOAD_ID, timeout=1, interval=0)


def test_cancel_deletes_with_the_token(api, client):
    api.answer("DELETE", STATUS_PATH, Answer(204, b""))
    assert client.cancel(UPLOAD_ID) is None
    [sent] = api.requests
    assert (sent.method, sent.path, sent.headers["Authorization"]) == (
        "DELETE", STATUS_PATH, "Bearer s3cret")


def test_cancel_refused_while_processing(api, client):
    api.answer("DELETE", STATUS_PATH, problem(409, "Upload is processing", "a worker has it"))
    with pytest.raises(ProblemError) as caught:
        client.cancel(UPLOAD_ID)
    assert caught.value.status == 409


def test_every_error_is_a_handoff_error():
    for kind in (ProblemError, ConnectionFailed, UnexpectedAnswer, WaitTimeout):
        assert issubclass(kind, HandoffError)
