"""The broker loses an accepted upload's message: the sweeper enqueues it again."""

import hashlib
import os
import signal

from tests.support.payloads import random_file

WITH_SWEEPER = ("redis", "geo", "worker", "api", "gc")


def test_an_upload_survives_redis_restarting_empty_while_the_worker_is_paused(
        make_stack, tmp_path):
    stack = make_stack({"HANDOFF_GC_INTERVAL": "1s", "HANDOFF_REQUEUE_AFTER": "5s"},
                       components=WITH_SWEEPER)
    source = random_file(tmp_path / "kept.bin", 8)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    worker = stack.procs["worker"].pid

    os.killpg(worker, signal.SIGSTOP)
    try:
        with open(source, "rb") as handle:
            response = stack.upload([("kept.bin", handle)])
        assert response.status_code == 202, response.text
        upload_id = response.json()["id"]
        stack.kill("redis")  # no persistence: the new server starts empty
        stack.start("redis")
    finally:
        os.killpg(worker, signal.SIGCONT)

    status = stack.wait_for(upload_id, timeout=60)
    assert status["status"] == "done", status
    assert [f["sha256"] for f in status["result"]["files"]] == [digest]
    assert f"requeued {upload_id}" in stack.log("gc")
