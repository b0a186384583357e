"""Geo replicas and workers on one bucket: killing any one of them loses no upload.

With a shared store any replica serves any request of any upload, so a
tus client whose replica is SIGKILLed mid-PATCH resumes through another
(the API routes to a live one, and never answers ``replica-unavailable``),
and a job whose worker is SIGKILLed mid-job is delivered again to another
worker and completes.
"""

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
from tusclient.client import TusClient

from handoff.units import MiB
from tests.integration.objectstore.conftest import S3Stack
from tests.support import plugin_path
from tests.support.payloads import GeneratedPayload
from tests.support.polling import eventually

SIZE_MIB = 1024
CHUNK = 64 * MiB
REPLICAS = 3


Exchange = tuple[str, "requests.Response | requests.RequestException"]


@pytest.fixture
def exchanges(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Exchange]]:
    """Every request this test's process sends through requests (tuspy's included), by
    method, with its response or the error that took its place."""
    seen: list[Exchange] = []
    send = requests.Session.send

    def recording(self: requests.Session, request: Any, **options: Any) -> requests.Response:
        try:
            response = send(self, request, **options)
        except requests.RequestException as exc:
            seen.append((request.method, exc))
            raise
        seen.append((request.method, response))
        return response

    monkeypatch.setattr(requests.Session, "send", recording)
    yield seen


def problem_type(outcome: requests.Response | requests.RequestException) -> str:
    """The problem type of a problem+json answer; "" for anything else."""
    if not isinstance(outcome, requests.Response) or not outcome.content:
        return ""
    if not outcome.headers.get("Content-Type", "").startswith("application/problem+json"):
        return ""
    return str(outcome.json().get("type", ""))


def in_flight(s3: S3Stack, replica: str) -> float:
    """Uploads the replica is receiving now, from its /metrics."""
    text = requests.get(f"{s3.stack.url(replica)}/metrics", timeout=10).text
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith("handoff_geo_uploads_in_flight"))


def serving(s3: S3Stack, found: list[str]) -> bool:
    """Whether exactly one replica is receiving now; if so, it is appended to ``found``."""
    busy = [f"geo-{index}" for index in range(REPLICAS) if in_flight(s3, f"geo-{index}") > 0]
    found.extend(busy if len(busy) == 1 else [])
    return len(busy) == 1


def test_a_replica_killed_mid_patch_is_resumed_through_another(
        make_s3_stack, tmp_path: Path, exchanges: list[Exchange]) -> None:
    s3 = make_s3_stack(replicas=REPLICAS)
    payload = GeneratedPayload(SIZE_MIB * MiB)
    source = payload.write(tmp_path / "big.bin")
    uploader = TusClient(f"{s3.stack.api_url}/v1/uploads",
                         headers=s3.stack.client_headers).uploader(
        file_path=str(source), chunk_size=CHUNK, retries=5, retry_delay=1,
        metadata={"purpose": "raw", "filename": "big.bin"})
    uploader.upload(stop_at=3 * CHUNK)
    assert uploader.offset == 3 * CHUNK
    rest = threading.Thread(target=uploader.upload)
    rest.start()
    try:
        found: list[str] = []
        assert eventually(lambda: serving(s3, found), timeout=60)
        killed = found[0]
        s3.stack.kill(killed)
    finally:
        rest.join(600)
    assert not rest.is_alive()

    upload_id = uploader.url.rsplit("/", 1)[-1]
    status = s3.stack.wait_for(upload_id, timeout=600)
    assert status["status"] == "done", status
    assert status["files"] == [{"name": "big.bin", "size": SIZE_MIB * MiB,
                                "sha256": payload.sha256}]
    assert killed not in s3.stack.procs
    failed = [outcome for method, outcome in exchanges if method == "PATCH"
              and not (isinstance(outcome, requests.Response) and outcome.status_code == 204)]
    assert failed, "the killed replica's PATCH did not fail: the test missed its point"
    assert [kind for _, outcome in exchanges
            if (kind := problem_type(outcome)).endswith("/replica-unavailable")] == []


def worker_of(s3: S3Stack, pid: int) -> str:
    """The stack's worker component (``worker-<i>``) whose process tree has ``pid``."""
    for name, proc in s3.stack.procs.items():
        if name.startswith("worker-"):
            tree = psutil.Process(proc.pid)
            if pid in {tree.pid, *(child.pid for child in tree.children(recursive=True))}:
                return name
    raise AssertionError(f"no worker has pid {pid}")


def claimant(s3: S3Stack, upload_id: str) -> int | None:
    """The pid of the worker process whose claim the upload holds, once it has one."""
    claim = s3.bucket.get(f"{upload_id}/claim.json")
    return None if claim is None else int(json.loads(claim)["worker"].split(":")[1])


def test_a_worker_killed_mid_job_leaves_the_job_to_another(make_s3_stack) -> None:
    s3 = make_s3_stack({"PYTHONPATH": plugin_path.pythonpath(),
                        "HANDOFF_BROKER_HEARTBEAT_TIMEOUT": "2s",
                        "HANDOFF_BROKER_MAINTENANCE_CHANCE": "1000000"}, replicas=2)
    response = s3.stack.upload([("slow.txt", b"a job that takes its time\n")], purpose="slow")
    assert response.status_code == 202, response.text
    upload_id = response.json()["id"]
    assert eventually(lambda: s3.stack.status(upload_id)["status"] == "processing", timeout=60)
    first = claimant(s3, upload_id)
    assert first is not None
    killed = worker_of(s3, first)
    s3.stack.kill(killed)

    status = s3.stack.wait_for(upload_id, timeout=120)
    assert status["status"] == "done", status
    assert status["result"]["slept"] > 0
    second = claimant(s3, upload_id)
    assert second is not None and second != first
    assert worker_of(s3, second) != killed
