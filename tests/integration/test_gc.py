"""The sweeper on a running stack, with TTLs of a second or less: one test per rule."""

import json
import os
import signal
import uuid
from pathlib import Path

import requests
from requests_toolbelt import MultipartEncoder

from geo_service.store import FileStore
from handoff.units import MiB
from tests.support.multipart_bodies import PausedUpload, paced_upload, post_upload
from tests.support.payloads import random_file
from tests.support.polling import eventually


def _deletions(stack) -> dict[str, str]:
    """upload id -> reason, from the sweeper's JSON log."""
    found = {}
    for line in stack.log("gc").splitlines():
        if line.startswith("{") and '"reason"' in line:
            record = json.loads(line)
            if record["message"].startswith("deleted upload"):
                found[record["upload_id"]] = record["reason"]
    return found


def _logged_reason(stack, upload_id: str, timeout: float = 20.0) -> str | None:
    """The reason the sweeper logged for deleting ``upload_id``, once the line is there.

    The sweeper logs a deletion after it: the folder can be gone a moment before the line.
    """
    eventually(lambda: upload_id in _deletions(stack), timeout=timeout)
    return _deletions(stack).get(upload_id)


def test_an_upload_pushed_without_a_job_is_deleted_after_the_orphan_ttl(make_stack):
    stack = make_stack({"HANDOFF_ORPHAN_TTL": "1s", "HANDOFF_GC_INTERVAL": "300ms"},
                       components=("redis", "geo", "gc"))
    upload_id = str(uuid.uuid4())
    encoder = MultipartEncoder([("purpose", "raw"), ("file", ("o.bin", os.urandom(MiB)))])
    response = requests.post(f"{stack.geo_url}/uploads/{upload_id}", data=encoder, timeout=30,
                             headers={**stack.geo_auth, "Content-Type": encoder.content_type})
    assert response.status_code == 201, response.text
    assert FileStore(stack.uploads).manifest(upload_id) is not None

    assert eventually(lambda: not (stack.uploads / upload_id).exists())
    assert _logged_reason(stack, upload_id) == "orphan"


def test_a_partial_whose_writer_died_is_deleted_after_the_partial_ttl(make_stack):
    stack = make_stack({"HANDOFF_PARTIAL_TTL": "1s", "HANDOFF_GC_INTERVAL": "300ms"},
                       components=("redis", "geo", "api", "gc"))
    upload = PausedUpload(f"{stack.api_url}/v1/uploads", 8, pause_at=4)
    assert eventually(lambda: any(p for p in stack.uploads.iterdir() if "-" in p.name))
    (partial,) = [p.name for p in stack.uploads.iterdir() if "-" in p.name]
    stack.kill("geo")
    assert upload.finish()["response"].status_code == 502
    assert FileStore(stack.uploads).manifest(partial) is None

    assert eventually(lambda: not (stack.uploads / partial).exists())
    assert _logged_reason(stack, partial) == "partial"


def test_an_upload_receiving_across_the_ttl_survives_and_completes(make_stack):
    stack = make_stack({"HANDOFF_PARTIAL_TTL": "1s", "HANDOFF_ORPHAN_TTL": "1s",
                        "HANDOFF_GC_INTERVAL": "200ms"})
    stack.start("gc")
    result: dict = {}
    # 12 pieces 0.25 s apart: the upload is still receiving 3 s after it
    # began, well past the 1 s partial TTL, while the sweeper runs 5 times a second.
    post_upload(f"{stack.api_url}/v1/uploads", paced_upload(12, 256 * 1024, gap=0.25), result)

    response = result["response"]
    assert response.status_code == 202, response.text
    status = stack.wait_for(response.json()["id"])
    assert status["status"] == "done"
    assert response.json()["id"] not in _deletions(stack)


def _sweeps(stack) -> int:
    """When the sweeper last finished a sweep: its heartbeat's mtime, which each sweep renews."""
    beat = Path(stack.env["HANDOFF_HEARTBEAT_DIR"]) / "handoff-gc.heartbeat"
    return beat.stat().st_mtime_ns if beat.exists() else 0


def test_processing_that_outlasts_the_ttls_is_kept_then_expires(make_stack, tmp_path):
    # Retention stays a few seconds, so the finished upload expires within
    # the test; the other TTLs are far shorter than the job, which is held
    # (its worker stopped) until the sweeper has swept twice past them.
    ttl = "200ms"
    stack = make_stack({"HANDOFF_ORPHAN_TTL": ttl, "HANDOFF_PARTIAL_TTL": ttl,
                        "HANDOFF_RETENTION": "3s", "HANDOFF_GC_INTERVAL": "100ms"})
    stack.start("gc")
    source = random_file(tmp_path / "big.bin", 1536)
    with open(source, "rb") as handle:
        response = stack.upload([("big.bin", handle)])
    source.unlink()
    assert response.status_code == 202, response.text
    upload_id = response.json()["id"]
    assert eventually(lambda: any(upload_id in line and '"job started"' in line
                                  for line in stack.log("worker").splitlines()), timeout=60)
    worker = stack.procs["worker"]
    os.killpg(worker.pid, signal.SIGSTOP)
    try:
        assert stack.status(upload_id)["status"] == "processing"
        for _ in range(2):
            before = _sweeps(stack)
            assert eventually(lambda b=before: _sweeps(stack) != b, timeout=30)
        assert FileStore(stack.uploads).manifest(upload_id) is not None
    finally:
        os.killpg(worker.pid, signal.SIGCONT)
    assert stack.wait_for(upload_id, timeout=120)["status"] == "done"

    assert _logged_reason(stack, upload_id, timeout=120) == "expired"
    done = [json.loads(line) for line in stack.log("worker").splitlines()
            if upload_id in line and '"job done"' in line]
    assert len(done) == 1
