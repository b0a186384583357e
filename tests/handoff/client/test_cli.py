"""The ``handoff`` command against a small loopback HTTP server (tests/support/fake_api.py)."""

import json
import re
import socket

import pytest

import handoff_gc.__main__ as gc_cli
from handoff.client import cli
from tests.support.fake_api import (
    STATUS_PATH,
    UPLOAD_ID,
    Answer,
    FakeApi,
    accepted,
    form_parts,
    problem,
    status,
)


def run(api: FakeApi, *argv: str) -> int:
    return cli.main([*argv, "--url", api.url])


def test_upload_streams_fields_before_files_with_bytes_intact(api, payload, tmp_path, capsys):
    second = tmp_path / "notes.txt"
    second.write_bytes(b"second file")
    api.answer("POST", "/v1/uploads", accepted())

    code = run(api, "upload", str(payload), str(second), "--purpose", "raw",
               "--metadata", '{"project": "p1"}')

    assert code == cli.EXIT_OK
    [sent] = api.requests
    assert sent.path == "/v1/uploads"
    assert sent.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert int(sent.headers["Content-Length"]) == len(sent.body)
    assert form_parts(sent) == [
        ("purpose", None, b"raw"),
        ("metadata", None, b'{"project": "p1"}'),
        ("file", "survey.bin", payload.read_bytes()),
        ("file", "notes.txt", b"second file"),
    ]
    assert json.loads(capsys.readouterr().out)["id"] == UPLOAD_ID


def test_upload_without_metadata_sends_only_purpose_then_file(api, payload):
    api.answer("POST", "/v1/uploads", accepted())
    assert run(api, "upload", str(payload), "--purpose", "raw") == cli.EXIT_OK
    assert [(name, filename) for name, filename, _ in form_parts(api.requests[0])] == [
        ("purpose", None), ("file", "survey.bin")]


def test_token_flag_is_sent_as_bearer(api, payload):
    api.answer("POST", "/v1/uploads", accepted())
    assert run(api, "upload", str(payload), "--purpose", "raw", "--token", "s3cret") == 0
    assert api.requests[0].headers["Authorization"] == "Bearer s3cret"


def test_token_and_url_come_from_the_environment(api, payload, monkeypatch):
    monkeypatch.setenv("HANDOFF_TOKEN", "from-env")
    monkeypatch.setenv("HANDOFF_URL", api.url + "/")
    api.answer("POST", "/v1/uploads", accepted())
    assert cli.main(["upload", str(payload), "--purpose", "raw"]) == cli.EXIT_OK
    assert api.requests[0].headers["Authorization"] == "Bearer from-env"


def test_no_token_sends_no_authorization(api, payload):
    api.answer("POST", "/v1/uploads", accepted())
    assert run(api, "upload", str(payload), "--purpose", "raw") == cli.EXIT_OK
    assert "Authorization" not in api.requests[0].headers


def test_global_options_work_before_the_command(api, capsys):
    api.answer("GET", STATUS_PATH, status("queued"))
    assert cli.main(["--url", api.url, "--token", "t", "status", UPLOAD_ID]) == cli.EXIT_OK
    assert api.requests[0].headers["Authorization"] == "Bearer t"
    assert json.loads(capsys.readouterr().out)["status"] == "queued"


def test_client_error_prints_problem_title_and_detail(api, payload, capsys):
    api.answer("POST", "/v1/uploads", problem(
        413, "Upload too large", "the upload exceeds 1024 bytes", upload_id=UPLOAD_ID))
    assert run(api, "upload", str(payload), "--purpose", "raw") == cli.EXIT_CLIENT_ERROR
    out, err = capsys.readouterr()
    assert out == ""
    assert "error 413 Upload too large: the upload exceeds 1024 bytes" in err
    assert UPLOAD_ID in err


def test_server_error_exits_4_with_problem_text(api, payload, capsys):
    api.answer("POST", "/v1/uploads",
               problem(503, "Queue unavailable", "the job queue is unavailable"))
    assert run(api, "upload", str(payload), "--purpose", "raw") == cli.EXIT_SERVER_ERROR
    assert "error 503 Queue unavailable: the job queue is unavailable" in capsys.readouterr().err


def test_server_error_without_problem_body_still_explains(api, payload, capsys):
    api.answer("POST", "/v1/uploads", Answer(500, b"<html>\n  oops\n</html>", "text/html"))
    assert run(api, "upload", str(payload), "--purpose", "raw") == cli.EXIT_SERVER_ERROR
    assert "error 500 Internal Server Error: <html> oops </html>" in capsys.readouterr().err


def test_unreachable_server_exits_4(payload, capsys):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = cli.main(["upload", str(payload), "--purpose", "raw",
                     "--url", f"http://127.0.0.1:{port}"])
    assert code == cli.EXIT_SERVER_ERROR
    assert "Connection refused" in capsys.readouterr().err


@pytest.mark.parametrize("metadata", ["[1, 2]", "not json", '"text"', "{broken"])
def test_bad_metadata_is_a_usage_error_before_any_request(api, payload, capsys, metadata):
    code = run(api, "upload", str(payload), "--purpose", "raw", "--metadata", metadata)
    assert code == cli.EXIT_USAGE
    assert "metadata" in capsys.readouterr().err
    assert api.requests == []


def test_missing_file_is_a_usage_error(api, tmp_path, capsys):
    code = run(api, "upload", str(tmp_path / "nope.bin"), "--purpose", "raw")
    assert code == cli.EXIT_USAGE
    assert "not a readable file" in capsys.readouterr().err
    assert api.requests == []


def test_bad_url_is_a_usage_error(payload, capsys):
    code = cli.main(["upload", str(payload), "--purpose", "raw", "--url", "localhost:8000"])
    assert code == cli.EXIT_USAGE
    assert "not an http:// or https:// URL" in capsys.readouterr().err


def test_wait_polls_until_done_and_prints_the_final_status(api, payload, capsys):
    api.answer("POST", "/v1/uploads", accepted())
    api.answer("GET", STATUS_PATH, status("queued"), status("processing"), status("done"))

    code = run(api, "upload", str(payload), "--purpose", "raw", "--token", "t",
               "--wait", "--interval", "0.01")

    assert code == cli.EXIT_OK
    gets = api.sent("GET")
    assert len(gets) == 3
    assert all(r.headers["Authorization"] == "Bearer t" for r in gets)
    out, err = capsys.readouterr()
    assert json.loads(out)["status"] == "done"
    assert f"upload {UPLOAD_ID}: processing" in err


def test_wait_on_a_failed_job_exits_5_with_its_error(api, payload, capsys):
    api.answer("POST", "/v1/uploads", accepted())
    api.answer("GET", STATUS_PATH, status("processing"),
               status("failed", "not a shapefile: missing .shp"))
    code = run(api, "upload", str(payload), "--purpose", "raw", "--wait", "--interval", "0.01")
    assert code == cli.EXIT_JOB_FAILED
    out, err = capsys.readouterr()
    assert json.loads(out)["status"] == "failed"
    assert f"upload {UPLOAD_ID} failed: not a shapefile: missing .shp" in err


def test_wait_gives_up_after_timeout(api, payload, capsys):
    api.answer("POST", "/v1/uploads", accepted())
    api.answer("GET", STATUS_PATH, status("processing"))
    code = run(api, "upload", str(payload), "--purpose", "raw", "--wait",
               "--interval", "0.02", "--timeout", "0.1")
    assert code == cli.EXIT_TIMEOUT
    out, err = capsys.readouterr()
    assert json.loads(out)["status"] == "processing"
    assert "still processing" in err


def test_status_prints_json_even_for_a_failed_job(api, capsys):
    api.answer("GET", STATUS_PATH, status("failed", "boom"))
    assert run(api, "status", UPLOAD_ID) == cli.EXIT_OK
    assert json.loads(capsys.readouterr().out)["error"] == "boom"


def test_status_watch_follows_to_done(api, capsys):
    api.answer("GET", STATUS_PATH, status("receiving"), status("queued"), status("done"))
    assert run(api, "status", UPLOAD_ID, "--watch", "--interval", "0.01") == cli.EXIT_OK
    assert len(api.requests) == 3
    assert json.loads(capsys.readouterr().out)["status"] == "done"


def test_status_watch_on_failure_exits_5(api, capsys):
    api.answer("GET", STATUS_PATH, status("failed", "boom"))
    assert run(api, "status", UPLOAD_ID, "--watch") == cli.EXIT_JOB_FAILED
    assert "failed: boom" in capsys.readouterr().err


def test_status_of_unknown_id_exits_3(api, capsys):
    assert run(api, "status", "nope") == cli.EXIT_CLIENT_ERROR
    assert "error 404" in capsys.readouterr().err


def test_cancel_deletes_the_upload_with_the_token_and_prints_json(api, capsys):
    api.answer("DELETE", STATUS_PATH, Answer(204, b""))
    assert run(api, "cancel", UPLOAD_ID, "--token", "alice-token") == cli.EXIT_OK
    [sent] = api.requests
    assert (sent.method, sent.path) == ("DELETE", STATUS_PATH)
    assert sent.headers["Authorization"] == "Bearer alice-token"
    assert json.loads(capsys.readouterr().out) == {"id": UPLOAD_ID, "status": "cancelled"}


def test_cancel_of_a_processing_upload_exits_3_with_the_problem(api, capsys):
    api.answer("DELETE", STATUS_PATH, problem(409, "Upload is processing", "a worker has it"))
    assert run(api, "cancel", UPLOAD_ID) == cli.EXIT_CLIENT_ERROR
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "error 409 Upload is processing: a worker has it" in captured.err


def test_progress_flag_draws_a_byte_bar_on_stderr(api, payload, capsys):
    api.answer("POST", "/v1/uploads", accepted())
    assert run(api, "upload", str(payload), "--purpose", "raw", "--progress") == cli.EXIT_OK
    err = capsys.readouterr().err
    assert "100%" in err
    assert "1.00M/1.00M" in err


def test_no_bar_when_stderr_is_not_a_terminal(api, payload, capsys):
    api.answer("POST", "/v1/uploads", accepted())
    assert run(api, "upload", str(payload), "--purpose", "raw") == cli.EXIT_OK
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(("argv", "expected"), [
    (["gc", "--once"], ["--once"]),
    (["gc", "--once", "--dry-run"], ["--once", "--dry-run"]),
])
def test_gc_delegates_to_the_sweeper(monkeypatch, argv, expected):
    calls: list[list[str]] = []
    monkeypatch.setattr(gc_cli, "main", lambda args: calls.append(args) or 1)
    assert cli.main(argv) == 1
    assert calls == [expected]


def test_gc_needs_once(capsys):
    assert cli.main(["gc"]) == cli.EXIT_USAGE
    assert "--once" in capsys.readouterr().err


def test_help_documents_the_exit_codes(capsys):
    assert cli.main(["--help"]) == cli.EXIT_OK
    out = capsys.readouterr().out
    for code in ("0", "2", "3", "4", "5"):
        assert re.search(rf"^  {code}\s", out, re.MULTILINE)
