"""tus through the real stack: tuspy, killed clients, killed API workers, a killed geo service.

Every upload ends ``done`` with the sha256 of the file as the client has
it, whatever broke on the way; a resume starts from the offset the geo
service reports, so nothing is sent twice beyond the chunk in flight.
"""

import base64
import hashlib
import json
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import psutil
import requests
from requests_toolbelt import StreamingIterator
from tusclient.client import TusClient

from geo_service.store import FileStore
from handoff.units import MiB
from tests.geo_service.store import disk
from tests.support.payloads import file_sha256, random_file
from tests.support.polling import eventually
from tests.support.problems import assert_problem
from tests.support.processes import Processes
from tests.support.stacks import Stack

ROOT = Path(__file__).resolve().parents[2]
CHUNK = 16 * MiB
BIG = 1024 * MiB
TUS = {"Tus-Resumable": "1.0.0"}
OFFSET_TYPE = {"Content-Type": "application/offset+octet-stream"}


def _received(stack: Stack) -> float:
    """The API's count of upload bytes read from clients, over all its workers."""
    text = requests.get(f"{stack.api_url}/metrics", timeout=10).text
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith("handoff_api_received_bytes_total"))


def _stored_url(storage: Path) -> str | None:
    """The upload URL tuspy stored (its tinydb file), once it is there."""
    try:
        entries = json.loads(storage.read_text())["_default"].values()
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return None
    return next((entry["url"] for entry in entries), None)


def _offset(stack: Stack, upload_id: str) -> int:
    return stack.status(upload_id).get("offset") or 0


def _create(stack: Stack, length: int, purpose: str = "raw") -> str:
    pairs = f"purpose {base64.b64encode(purpose.encode()).decode()},filename YS5iaW4="
    answer = requests.post(f"{stack.api_url}/v1/uploads", timeout=30, headers={
        **stack.client_headers, **TUS, "Upload-Length": str(length), "Upload-Metadata": pairs})
    assert answer.status_code == 201, answer.text
    return f"{stack.api_url}{answer.headers['Location']}"


def _patch(stack: Stack, url: str, offset: int, data: Any,
           headers: dict[str, str] | None = None) -> requests.Response:
    return requests.patch(url, data=data, timeout=120, headers={
        **stack.client_headers, **TUS, **OFFSET_TYPE, "Upload-Offset": str(offset),
        **(headers or {})})


def _head_offset(stack: Stack, url: str) -> int:
    answer = requests.head(url, timeout=30, headers={**stack.client_headers, **TUS})
    assert answer.status_code == 200, answer.status_code
    return int(answer.headers["Upload-Offset"])


def _finish(stack: Stack, url: str, path: Path) -> dict[str, Any]:
    """Resume as a client does: HEAD for the offset, then PATCH the rest; the final status."""
    offset = _head_offset(stack, url)
    with open(path, "rb") as handle:
        handle.seek(offset)
        answer = _patch(stack, url, offset, handle.read())
    assert answer.status_code == 204, answer.text
    return stack.wait_for(url.rsplit("/", 1)[-1], timeout=120)


class _StalledPatch:
    """A PATCH of the whole file that sends ``first`` bytes, then nothing until it is dropped."""

    def __init__(self, stack: Stack, url: str, path: Path, first: int) -> None:
        self.release = threading.Event()
        size = path.stat().st_size
        self._data = path.read_bytes()
        self._first = first
        body = StreamingIterator(size, self._chunks())
        self.answer: list[Any] = []
        self._thread = threading.Thread(
            target=lambda: self.answer.append(self._send(stack, url, body)), daemon=True)
        self._thread.start()

    def _chunks(self) -> Iterator[bytes]:
        for start in range(0, self._first, MiB):
            yield self._data[start:min(start + MiB, self._first)]
        self.release.wait(120)
        raise ConnectionAbortedError("the client drops the connection")

    @staticmethod
    def _send(stack: Stack, url: str, body: Any) -> Any:
        try:
            return _patch(stack, url, 0, body)
        except (requests.RequestException, ConnectionAbortedError) as exc:
            return exc

    def join(self) -> None:
        self.release.set()
        self._thread.join(120)
        assert not self._thread.is_alive()


def _stored_size(stack: Stack, upload_id: str) -> int:
    path = disk.file_path(FileStore(stack.uploads), upload_id)
    return path.stat().st_size if path.exists() else 0


def test_tuspy_resumes_a_killed_upload_from_the_servers_offset(stack: Stack, tmp_path: Path,
                                                               processes: Processes):
    path = random_file(tmp_path / "big.bin", BIG // MiB)
    storage = tmp_path / "urls.json"
    token = stack.client_headers.get("Authorization", "").removeprefix("Bearer ")
    before = _received(stack)
    sender = processes.popen([sys.executable, "-m", "tests.support.tus_sender",
                              f"{stack.api_url}/v1/uploads", str(path), str(storage),
                              str(CHUNK), token], cwd=ROOT)
    assert eventually(lambda: _stored_url(storage) is not None, timeout=60)
    url = _stored_url(storage)
    assert url is not None
    upload_id = url.rsplit("/", 1)[-1]
    assert eventually(lambda: _offset(stack, upload_id) >= 0.4 * BIG, timeout=300)
    sender.kill()
    sender.wait()

    uploader = TusClient(f"{stack.api_url}/v1/uploads", headers=stack.client_headers).uploader(
        file_path=str(path), chunk_size=CHUNK, url=url)
    assert 0.4 * BIG <= uploader.offset < BIG
    uploader.upload()

    status = stack.wait_for(upload_id, timeout=300)
    assert status["status"] == "done", status
    assert status["files"] == [{"name": "big.bin", "size": BIG, "sha256": file_sha256(path)}]
    assert _received(stack) - before <= BIG + CHUNK


def test_a_wrong_checksum_is_460_and_a_stale_offset_409(stack: Stack):
    url = _create(stack, length=8)
    wrong = "sha1 " + base64.b64encode(hashlib.sha1(b"else").digest()).decode()
    answer = _patch(stack, url, 0, b"0123", {"Upload-Checksum": wrong})
    assert_problem(answer, 460)
    assert _head_offset(stack, url) == 0

    assert _patch(stack, url, 0, b"0123").headers["Upload-Offset"] == "4"
    stale = _patch(stack, url, 0, b"0123")
    assert stale.status_code == 409
    assert stale.headers["Upload-Offset"] == "4" and stale.json()["offset"] == 4
    assert _patch(stack, url, 4, b"4567").status_code == 204
    assert stack.wait_for(url.rsplit("/", 1)[-1])["status"] == "done"


def test_a_resume_stops_a_patch_whose_client_went_silent(stack: Stack, tmp_path: Path):
    """The stalled PATCH still holds the upload; the HEAD makes it let go instead of waiting.

    Without the stop request the HEAD would find the upload held until the
    client timeout (minutes), and answer 423 after its own wait.
    """
    path = random_file(tmp_path / "file.bin", 32)
    url = _create(stack, length=32 * MiB)
    upload_id = url.rsplit("/", 1)[-1]
    stalled = _StalledPatch(stack, url, path, first=12 * MiB)
    try:
        assert eventually(lambda: _stored_size(stack, upload_id) == 12 * MiB, timeout=60)
        assert _head_offset(stack, url) == 12 * MiB
    finally:
        stalled.join()
    status = _finish(stack, url, path)
    assert status["status"] == "done"
    assert status["files"][0]["sha256"] == file_sha256(path)


def _api_worker_serving(stack: Stack) -> psutil.Process | None:
    """The API worker with a client connection open on the API's port (the stalled PATCH)."""
    port = stack.ports["api"]
    for worker in psutil.Process(stack.procs["api"].pid).children():
        if any(c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port
               for c in worker.net_connections(kind="tcp")):
            return worker
    return None


def _stalled_at(stack: Stack, tmp_path: Path, stored: int) -> tuple[Path, str, "_StalledPatch"]:
    """A 48 MiB tus upload whose PATCH stalls once ``stored`` bytes are on the geo side."""
    path = random_file(tmp_path / "file.bin", 48)
    url = _create(stack, length=48 * MiB)
    upload_id = url.rsplit("/", 1)[-1]
    stalled = _StalledPatch(stack, url, path, first=stored)
    assert eventually(lambda: _stored_size(stack, upload_id) == stored, timeout=60)
    return path, url, stalled


def test_an_api_worker_killed_mid_patch_leaves_a_resumable_upload(make_stack, tmp_path: Path):
    stack = make_stack()
    path, url, stalled = _stalled_at(stack, tmp_path, 20 * MiB)
    worker = _api_worker_serving(stack)
    assert worker is not None
    worker.kill()
    stalled.join()

    assert eventually(lambda: _head_offset(stack, url) == 20 * MiB, timeout=30)
    status = _finish(stack, url, path)
    assert status["status"] == "done"
    assert status["files"][0]["sha256"] == file_sha256(path)
    assert not worker.is_running()


def test_a_geo_service_killed_mid_patch_resumes_from_what_it_stored(make_stack, tmp_path: Path):
    stack = make_stack()
    path, url, stalled = _stalled_at(stack, tmp_path, 24 * MiB)
    stack.kill("geo")
    stalled.join()
    stack.start("geo")

    assert _head_offset(stack, url) == 24 * MiB
    status = _finish(stack, url, path)
    assert status["status"] == "done"
    assert status["files"][0]["sha256"] == file_sha256(path)


def _deleted_at(stack: Stack, upload_id: str) -> float | None:
    """When the sweeper logged deleting ``upload_id``, as a POSIX time."""
    for line in stack.log("gc").splitlines():
        if line.startswith("{") and upload_id in line and "deleted upload" in line:
            stamp = datetime.strptime(json.loads(line)["asctime"], "%Y-%m-%d %H:%M:%S,%f")
            return time.mktime(stamp.timetuple()) + stamp.microsecond / 1e6
    return None


def test_an_abandoned_upload_is_swept_when_its_upload_expires_says(make_stack):
    stack = make_stack({"HANDOFF_PARTIAL_TTL": "2s", "HANDOFF_GC_INTERVAL": "300ms"},
                       components=("redis", "geo", "api", "gc"))
    url = _create(stack, length=8)
    upload_id = url.rsplit("/", 1)[-1]
    sent_at = time.time()
    answer = _patch(stack, url, 0, b"0123")
    answered_at = time.time()
    expires = parsedate_to_datetime(answer.headers["Upload-Expires"]).timestamp()
    assert int(sent_at + 2) - 1 <= expires <= answered_at + 2

    assert eventually(lambda: _deleted_at(stack, upload_id) is not None)
    deleted_at = _deleted_at(stack, upload_id)
    assert deleted_at is not None and deleted_at >= expires
    assert not (stack.uploads / upload_id).exists()
    gone = requests.head(url, timeout=30, headers={**stack.client_headers, **TUS})
    assert gone.status_code == 404


def test_tuspy_finds_a_finished_multipart_upload_complete(stack: Stack, tmp_path: Path):
    """tuspy asks HEAD where to resume a URL it is given: nothing, the upload is whole."""
    answer = stack.upload([("whole.bin", b"0123456789")])
    assert answer.status_code == 202, answer.text
    url = f"{stack.api_url}/v1/uploads/{answer.json()['id']}"
    source = tmp_path / "whole.bin"
    source.write_bytes(b"0123456789")
    uploader = TusClient(f"{stack.api_url}/v1/uploads", headers=stack.client_headers).uploader(
        str(source), url=url, chunk_size=4)
    assert uploader.get_offset() == 10
    head = requests.head(url, headers={**stack.client_headers, **TUS}, timeout=10)
    assert (head.status_code, head.headers["Upload-Length"]) == (200, "10")


def test_a_creation_whose_first_bytes_overrun_leaves_nothing(stack: Stack):
    metadata = "purpose " + base64.b64encode(b"raw").decode()
    before = set(stack.uploads.iterdir())
    answer = requests.post(f"{stack.api_url}/v1/uploads", data=b"x" * 11, timeout=10,
                           headers={**stack.client_headers, **TUS, **OFFSET_TYPE,
                                    "Upload-Length": "10", "Upload-Metadata": metadata})
    assert answer.status_code == 413 and "Location" not in answer.headers
    assert set(stack.uploads.iterdir()) == before
