"""Tenants and cancels on the real stack: each upload is its tenant's alone.

The stack runs without a worker, so the queue's length shows exactly what
was enqueued and an upload stays ``queued`` until a test acts on it.
"""

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from geo_service.store import FileStore
from handoff.units import MiB
from tests.faults import log_records, private_stack, queue_length
from tests.geo_service.store import disk
from tests.support.multipart_bodies import content_type, paced_upload
from tests.support.polling import eventually
from tests.support.problems import assert_problem
from tests.support.processes import Processes
from tests.support.stacks import Stack

ALICE = {"Authorization": "Bearer alice-token"}
BOB = {"Authorization": "Bearer bob-token"}
TOKENS = "alice:alice-token,bob:bob-token"


@pytest.fixture(scope="module")
def tenants(module_processes: Processes) -> Stack:
    return private_stack(module_processes, {"HANDOFF_API_TOKENS": TOKENS})


def _url(stack: Stack, upload_id: str) -> str:
    return f"{stack.api_url}/v1/uploads/{upload_id}"


def _upload(stack: Stack, headers: dict[str, str]) -> str:
    response = stack.upload([("a.bin", os.urandom(MiB))], headers=headers)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def _left_on_disk(stack: Stack, upload_id: str) -> list[str]:
    """The upload's folder, or its remains in the trash (its empty lock file is the sweeper's)."""
    trash = disk.removals_dir(FileStore(stack.uploads))
    remains = [stack.uploads / upload_id, *trash.glob(f"{upload_id}.*")]
    return [str(path) for path in remains if path.exists()]


def test_another_tenant_sees_nothing_and_the_owner_cancels(tenants: Stack):
    upload_id = _upload(tenants, ALICE)
    folder = tenants.uploads / upload_id
    assert json.loads((folder / disk.MANIFEST).read_text())["tenant"] == "alice"
    unknown = assert_problem(requests.get(_url(tenants, "0" * 8 + upload_id[8:]), headers=BOB,
                                          timeout=30), 404, detail="no upload")

    hidden = assert_problem(requests.get(_url(tenants, upload_id), headers=BOB, timeout=30),
                            404, detail="no upload")
    assert {**hidden, "upload_id": None} == {**unknown, "upload_id": None}
    assert_problem(requests.delete(_url(tenants, upload_id), headers=BOB, timeout=30), 404,
                   detail="no upload")
    assert (folder / disk.MANIFEST).is_file()

    shown = requests.get(_url(tenants, upload_id), headers=ALICE, timeout=30)
    assert shown.status_code == 200, shown.text
    assert shown.json()["status"] == "queued"

    cancelled = requests.delete(_url(tenants, upload_id), headers=ALICE, timeout=30)
    assert cancelled.status_code == 204, cancelled.text
    assert_problem(requests.get(_url(tenants, upload_id), headers=ALICE, timeout=30), 404,
                   detail="no upload")
    assert _left_on_disk(tenants, upload_id) == []


def test_logs_name_the_tenant_and_never_a_token(tenants: Stack):
    upload_id = _upload(tenants, BOB)
    accepted = [r for r in log_records(tenants, "api")
                if r.get("message") == "upload accepted" and r.get("upload_id") == upload_id]
    assert [r.get("tenant") for r in accepted] == ["bob"]
    for name in ("api", "geo"):
        assert "alice-token" not in tenants.log(name)
        assert "bob-token" not in tenants.log(name)


def test_a_cancel_while_a_1_gib_upload_streams_stops_it(tenants: Stack):
    """The relay stops, nothing of the upload stays on disk, and no job is queued."""
    queued = queue_length(tenants)
    before = set(os.listdir(tenants.uploads))
    outcome: dict[str, Any] = {}
    sent = threading.Event()
    pieces: list[int] = []
    body = _counting(paced_upload(1024, MiB, gap=0.02), sent, at=32, pieces=pieces)
    client = threading.Thread(target=_post, args=(tenants, body, outcome))
    client.start()
    try:
        assert sent.wait(60), "the upload did not get going"
        upload_id = _new_upload(tenants, before)
        assert eventually(lambda: _stored(tenants, upload_id) >= 8 * MiB, 30)

        deadline = time.monotonic() + 5.0
        cancelled = requests.delete(_url(tenants, upload_id), headers=ALICE, timeout=30)
        assert cancelled.status_code == 204, cancelled.text
        assert eventually(lambda: _left_on_disk(tenants, upload_id) == [],
                          max(0.0, deadline - time.monotonic())), \
            _left_on_disk(tenants, upload_id)
    finally:
        client.join(120)
    assert not client.is_alive()
    assert _stopped_early(outcome), outcome
    assert len(pieces) < 1024, "the client was made to send the whole upload"
    assert_problem(requests.get(_url(tenants, upload_id), headers=ALICE, timeout=30), 404,
                   detail="no upload")
    assert queue_length(tenants) == queued
    assert not [r for r in log_records(tenants, "api")
                if r.get("message") == "upload accepted" and r.get("upload_id") == upload_id]


def test_a_processing_upload_is_not_cancelled(tenants: Stack,
                                              hold_lock: Callable[..., Any]):
    """409 while a worker holds it; once that worker is gone the upload can go."""
    upload_id = _upload(tenants, ALICE)
    holder = hold_lock(FileStore(tenants.uploads), upload_id, claim=True)

    refused = requests.delete(_url(tenants, upload_id), headers=ALICE, timeout=30)
    assert_problem(refused, 409, detail="processing")
    shown = requests.get(_url(tenants, upload_id), headers=ALICE, timeout=30)
    assert shown.json()["status"] == "processing"

    holder.kill()
    holder.wait(10)
    cancelled = requests.delete(_url(tenants, upload_id), headers=ALICE, timeout=30)
    assert cancelled.status_code == 204, cancelled.text
    assert _left_on_disk(tenants, upload_id) == []


def test_the_job_of_a_cancelled_upload_is_skipped(make_stack: Callable[..., Stack]):
    stack = make_stack({"HANDOFF_API_TOKENS": TOKENS}, ("redis", "geo", "api"))
    upload_id = _upload(stack, ALICE)
    cancelled = requests.delete(_url(stack, upload_id), headers=ALICE, timeout=30)
    assert cancelled.status_code == 204, cancelled.text

    stack.start("worker")
    assert eventually(lambda: _worker_said(stack, upload_id,
                                           "job for an upload that no longer exists"), 60)
    assert not _worker_said(stack, upload_id, "job started")
    assert _left_on_disk(stack, upload_id) == []


def _counting(chunks: Iterator[bytes], sent: threading.Event, at: int,
              pieces: list[int]) -> Iterator[bytes]:
    """``chunks``, noting each one taken in ``pieces``; ``sent`` is set at piece ``at``."""
    for index, chunk in enumerate(chunks):
        pieces.append(index)
        if index == at:
            sent.set()
        yield chunk


def _post(stack: Stack, body: Iterator[bytes], outcome: dict[str, Any]) -> None:
    headers = {"Content-Type": content_type(), **ALICE}
    try:
        outcome["response"] = requests.post(f"{stack.api_url}/v1/uploads", data=body,
                                            headers=headers, timeout=60)
    except requests.RequestException as exc:
        outcome["error"] = exc


def _stopped_early(outcome: dict[str, Any]) -> bool:
    """The client was told its upload was cancelled, or the connection closed under it."""
    response = outcome.get("response")
    if response is None:
        return "error" in outcome
    return assert_problem(response, 409, detail="cancelled")["type"].endswith("/cancelled")


def _new_upload(stack: Stack, before: set[str]) -> str:
    found: list[str] = []

    def appeared() -> bool:
        found[:] = sorted(set(os.listdir(stack.uploads)) - before)
        return len(found) == 1

    assert eventually(appeared, 30), found
    return found[0]


def _stored(stack: Stack, upload_id: str) -> int:
    return FileStore(stack.uploads).size(upload_id)


def _worker_said(stack: Stack, upload_id: str, message: str) -> bool:
    return any(r.get("message") == message and r.get("upload_id") == upload_id
               for r in log_records(stack, "worker"))
