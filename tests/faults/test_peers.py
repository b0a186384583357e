"""A peer of the API fails: the geo service, the queue, the worker, the disk."""

import os
import socket
import subprocess
import sys
import time

import pytest

from geo_service.store import FileStore
from handoff.units import MiB
from tests.faults import queue_length, upload_folders
from tests.support.multipart_bodies import PausedUpload, content_type, paced_upload
from tests.support.payloads import random_file
from tests.support.polling import eventually
from tests.support.problems import assert_problem


def _sweep_once(stack) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "handoff_gc", "--once"], env=stack.env,
                          capture_output=True, text=True, timeout=60)


def test_geo_killed_mid_stream_gives_502_no_job_and_gc_clears_the_partial(make_stack):
    stack = make_stack({"HANDOFF_PARTIAL_TTL": "1s"}, components=("redis", "geo", "api"))
    upload = PausedUpload(f"{stack.api_url}/v1/uploads", 16, pause_at=6)
    assert eventually(lambda: upload_folders(stack) != [])
    stack.kill("geo")
    outcome = upload.finish()

    document = assert_problem(outcome["response"], 502, detail="geo service")
    assert document["upload_id"] in upload_folders(stack)
    assert queue_length(stack) == 0

    time.sleep(1.2)
    sweep = _sweep_once(stack)
    assert sweep.returncode == 0, sweep.stderr
    assert upload_folders(stack) == []


def test_client_disconnect_stops_the_relay_and_removes_the_partial(make_stack):
    stack = make_stack(components=("redis", "geo", "api"))
    sock = socket.create_connection(("127.0.0.1", stack.ports["api"]), timeout=10)
    body = paced_upload(8)
    sock.sendall((f"POST /v1/uploads HTTP/1.1\r\nHost: x\r\nContent-Length: {100 * MiB}\r\n"
                  f"Content-Type: {content_type()}\r\n\r\n").encode())
    for _ in range(4):
        sock.sendall(next(body))
    assert eventually(lambda: upload_folders(stack) != [])
    sock.close()

    assert eventually(lambda: upload_folders(stack) == []), upload_folders(stack)
    assert eventually(lambda: '"upload refused"' in stack.log("api"))
    assert '"status": 400' in stack.log("api")
    assert queue_length(stack) == 0


def test_queue_down_gives_503_discards_the_upload_and_recovers(make_stack):
    stack = make_stack(components=("redis", "geo", "api"))
    stack.stop("redis")
    response = stack.upload([("a.bin", os.urandom(MiB))])
    assert_problem(response, 503, detail="queue")
    assert eventually(lambda: upload_folders(stack) == [])

    stack.start("redis")
    response = stack.upload([("b.bin", os.urandom(MiB))])
    assert response.status_code == 202, response.text
    assert queue_length(stack) == 1


def test_worker_killed_mid_job_is_redelivered_and_done_once(make_stack, tmp_path):
    stack = make_stack({"HANDOFF_BROKER_HEARTBEAT_TIMEOUT": "2s",
                        "HANDOFF_BROKER_MAINTENANCE_CHANCE": "1000000"})
    source = random_file(tmp_path / "big.bin", 1024)
    with open(source, "rb") as handle:
        response = stack.upload([("big.bin", handle)])
    assert response.status_code == 202, response.text
    upload_id = response.json()["id"]
    folder = stack.uploads / upload_id
    assert eventually(lambda: (folder / "claim.json").exists(), timeout=30)
    assert not (folder / "result.json").exists(), "the job finished before the kill"
    stack.kill("worker")

    stack.start("worker")
    status = stack.wait_for(upload_id, timeout=90)
    assert status["status"] == "done", status
    assert status["result"]["files"][0]["sha256"] == response.json()["files"][0]["sha256"]
    log = stack.log("worker")
    assert log.count(f'"upload_id": "{upload_id}"') >= 2
    finished = [line for line in log.splitlines()
                if upload_id in line and '"message": "job done"' in line]
    assert len(finished) == 1, finished
    source.unlink()


@pytest.fixture
def small_disk(tmp_path):
    """A 24 MiB tmpfs to fill up (the tests run as root, as CI does)."""
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_storage_gives_507_removes_partials_and_keeps_serving(make_stack, small_disk):
    stack = make_stack({"HANDOFF_UPLOADS_ROOT": str(small_disk)})
    response = stack.upload([("huge.bin", os.urandom(40 * MiB))])
    assert_problem(response, 507, detail="full")
    assert eventually(lambda: upload_folders(stack) == [])
    assert FileStore(small_disk).unfinished_removals() == []

    response = stack.upload([("small.bin", os.urandom(MiB))])
    assert response.status_code == 202, response.text
    assert stack.wait_for(response.json()["id"])["status"] == "done"
