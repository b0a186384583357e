"""The whole path on real processes: client → API → geo store → Dramatiq → processor."""

import hashlib
import json
import os
import threading
import uuid
from pathlib import Path

import psutil
import pytest
import requests
from requests_toolbelt import MultipartEncoder

from geo_service.store import FileStore
from handoff.units import MiB
from tests.geo_service.store import disk
from tests.support.payloads import random_file
from tests.support.problems import assert_problem


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_one_file_is_stored_verified_and_processed(stack):
    data = os.urandom(3 * MiB + 17)
    response = stack.upload([("survey.bin", data)], metadata='{"project": "p1"}')
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "queued"
    assert body["files"] == [{"name": "survey.bin", "size": len(data), "sha256": _sha256(data)}]
    assert body["links"]["self"] == f"/v1/uploads/{body['id']}"

    status = stack.wait_for(body["id"])
    assert status["status"] == "done", status
    assert status["metadata"] == {"project": "p1"}
    assert status["result"]["files"][0]["sha256"] == _sha256(data)
    stored = disk.file_path(FileStore(stack.uploads), body["id"])
    assert stored.read_bytes() == data


def test_several_files_with_hostile_names_stay_inside_the_upload(stack):
    names = ["../../etc/passwd", "a/b.txt", "données été.zip"]
    contents = [os.urandom(100_000 + i) for i in range(len(names))]
    before = set(stack.root.rglob("*"))
    response = stack.upload(list(zip(names, contents, strict=True)))
    assert response.status_code == 202, response.text
    upload_id = response.json()["id"]
    assert [f["name"] for f in response.json()["files"]] == names

    status = stack.wait_for(upload_id)
    assert status["status"] == "done"
    assert [(f["name"], f["sha256"]) for f in status["files"]] == [
        (name, _sha256(content)) for name, content in zip(names, contents, strict=True)]
    folder = stack.uploads / upload_id
    created = set(stack.root.rglob("*")) - before
    outside = [p for p in created if folder not in p.parents and p != folder
               and disk.LOCKS not in p.parts and not p.name.endswith(".log")]
    assert outside == []
    assert sorted(p.name for p in (folder / disk.FILES).iterdir()) == ["0", "1", "2"]


def test_a_chunked_request_is_relayed_and_processed(stack):
    data = os.urandom(2 * MiB)
    boundary = "chunkedboundary42"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nraw\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"c.bin\"\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def chunks():
        yield head
        for start in range(0, len(data), 300_000):
            yield data[start:start + 300_000]
        yield tail

    response = requests.post(f"{stack.api_url}/v1/uploads", data=chunks(), timeout=60,
                             headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert response.status_code == 202, response.text
    assert response.json()["files"][0]["sha256"] == _sha256(data)
    assert stack.wait_for(response.json()["id"])["status"] == "done"


def test_status_of_an_unknown_upload_is_a_problem(stack):
    response = requests.get(f"{stack.api_url}/v1/uploads/{uuid.uuid4()}", timeout=10)
    assert assert_problem(response, 404, "not-found")["title"] == "Not Found"


def _api_processes(stack) -> list[psutil.Process]:
    master = psutil.Process(stack.procs["api"].pid)
    return [master, *master.children(recursive=True)]


def test_the_api_neither_spools_to_disk_nor_grows_with_file_size(stack, tmp_path: Path):
    source = random_file(tmp_path / "big.bin", 512)
    procs = _api_processes(stack)
    written_before = sum(p.io_counters().write_bytes for p in procs)
    peak = {"rss": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            peak["rss"] = max(peak["rss"], *(p.memory_info().rss for p in procs))

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with open(source, "rb") as handle:
            response = stack.upload([("big.bin", handle)])
    finally:
        done.set()
        sampler.join()
    assert response.status_code == 202, response.text
    written = sum(p.io_counters().write_bytes for p in procs) - written_before
    # Spooling would write the whole 512 MiB; log lines are a few pages at most.
    assert written < MiB, f"the API wrote {written} bytes to disk"
    assert peak["rss"] < 150 * MiB, f"an API process peaked at {peak['rss'] / MiB:.0f} MiB"
    assert stack.wait_for(response.json()["id"], timeout=120)["status"] == "done"
    source.unlink()


def _minor_faults(procs: list[psutil.Process]) -> int:
    """Pages the processes touched for the first time (minflt in /proc/<pid>/stat)."""
    total = 0
    for proc in procs:
        after_name = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1]
        total += int(after_name.split()[7])
    return total


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_the_services_reuse_their_buffers_from_chunk_to_chunk(stack, tmp_path: Path, chunked):
    """Fresh memory for every chunk costs a page fault per 4 KiB, a good part of the CPU.

    With glibc's default thresholds the API and the geo service faulted on
    many of the pages they relayed; with handoff.server.allocator they reuse a few.
    """
    source = random_file(tmp_path / "relayed.bin", 256)
    procs = [proc for name in ("api", "geo")
             for proc in psutil.Process(stack.procs[name].pid).children(recursive=True)]
    warm_up = _relay(stack, source, chunked)
    before = _minor_faults(procs)
    response = _relay(stack, source, chunked)
    faults = _minor_faults(procs) - before
    for answer in (warm_up, response):  # no job may outlive the test
        assert answer.status_code == 202, answer.text
        assert stack.wait_for(answer.json()["id"], timeout=120)["status"] == "done"
    pages = source.stat().st_size // 4096
    assert faults < pages // 16, f"{faults} page faults while relaying {pages} pages"
    source.unlink()


def _relay(stack, source: Path, chunked: bool) -> requests.Response:
    with open(source, "rb") as handle:
        if not chunked:
            return stack.upload([(source.name, handle)])
        encoder = MultipartEncoder([("purpose", "raw"), ("file", (source.name, handle))])
        body = iter(lambda: encoder.read(MiB), b"")
        return requests.post(f"{stack.api_url}/v1/uploads", data=body, timeout=120,
                             headers={"Content-Type": encoder.content_type})


def _events(stack, component: str, upload_id: str) -> list[str]:
    return [json.loads(line)["message"] for line in stack.log(component).splitlines()
            if line.startswith("{") and f'"upload_id": "{upload_id}"' in line]


def test_the_logs_tell_an_uploads_whole_story_by_its_id(stack):
    response = stack.upload([("story.bin", os.urandom(200_000))])
    upload_id = response.json()["id"]
    assert stack.wait_for(upload_id)["status"] == "done"

    assert _events(stack, "api", upload_id) == ["upload started", "upload accepted"]
    assert _events(stack, "geo", upload_id) == ["upload receiving", "upload complete"]
    assert _events(stack, "worker", upload_id) == ["job started", "job done"]
