"""Several geo replicas behind one API: placement, a replica dying and coming back, lost records.

Each stack runs three named replicas (``geo-<i>``: a geo service, a worker
and a sweeper each, with a store folder of their own) and an API told all
three, on a real valkey.
"""

import base64
import io
import json
import threading
import time
from collections import Counter
from typing import Any

import psutil
import redis
import requests
from tusclient import client

from tests.support.polling import eventually
from tests.support.stacks import Stack

DATA = b"one small file\n" * 64


def _uploaded(stack: Stack, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        response = stack.upload([("a.txt", DATA)])
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    return ids


def _all_done(stack: Stack, ids: list[str]) -> bool:
    return all(stack.wait_for(upload_id, timeout=60)["status"] == "done" for upload_id in ids)


def test_sixty_uploads_spread_over_three_replicas_and_all_get_done(
        replicated_stack: Stack) -> None:
    ids = _uploaded(replicated_stack, 60)

    where = Counter(replicated_stack.replica_of(upload_id) for upload_id in ids)
    assert set(where) == {"geo-0", "geo-1", "geo-2"}
    assert min(where.values()) >= 10, where
    assert _all_done(replicated_stack, ids)


def test_every_upload_is_found_with_the_replica_records_gone(replicated_stack: Stack) -> None:
    ids = _uploaded(replicated_stack, 6)
    client = redis.Redis(port=replicated_stack.ports["redis"])
    records = list(client.scan_iter("handoff:replica:*"))
    assert {f"handoff:replica:{upload_id}".encode() for upload_id in ids} <= set(records)

    client.delete(*records)

    for upload_id in ids:
        assert replicated_stack.status(upload_id)["id"] == upload_id
    assert client.get(f"handoff:replica:{ids[0]}") == replicated_stack.replica_of(ids[0]).encode()


class Uploader(threading.Thread):
    """Uploads one file after another until stopped; each outcome with its time."""

    def __init__(self, stack: Stack) -> None:
        super().__init__(daemon=True)
        self.stack = stack
        self.outcomes: list[tuple[float, int, str | None]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                response = self.stack.upload([("a.txt", DATA)])
                answer: Any = response.json() if response.status_code == 202 else {}
                self.outcomes.append((time.monotonic(), response.status_code, answer.get("id")))
            except requests.RequestException:
                self.outcomes.append((time.monotonic(), 0, None))

    def after(self, moment: float) -> list[tuple[float, int, str | None]]:
        return [outcome for outcome in self.outcomes if outcome[0] > moment]


def _worker_pids(stack: Stack, name: str) -> set[int]:
    master = psutil.Process(stack.procs[name].pid)
    return {master.pid, *(child.pid for child in master.children(recursive=True))}


def _claimed_by(stack: Stack, replica: str, upload_id: str) -> int:
    claim = json.loads((stack.uploads / replica / upload_id / "claim.json").read_text())
    return int(claim["worker"].split(":")[1])


def test_a_dead_replica_is_skipped_its_uploads_wait_for_it_and_no_other_takes_them(
        make_stack: Any) -> None:
    stack: Stack = make_stack(replicas=3)
    stack.stop("worker-1")  # its jobs stay in its queue while the replica is away
    waiting = [upload_id for upload_id in _uploaded(stack, 9)
               if stack.replica_of(upload_id) == "geo-1"]
    assert waiting

    uploader = Uploader(stack)
    uploader.start()
    assert eventually(lambda: len(uploader.outcomes) >= 5)
    stack.kill("geo-1")
    killed_at = time.monotonic()
    settled = killed_at + 5.0
    assert eventually(lambda: len(uploader.after(settled)) >= 20, timeout=60)
    uploader.stopped.set()
    uploader.join(timeout=60)

    later = uploader.after(settled)
    assert [status for _, status, _ in later if status != 202] == []
    placed = Counter(stack.replica_of(upload_id) for _, _, upload_id in later)
    assert set(placed) == {"geo-0", "geo-2"}
    for upload_id in waiting:
        response = requests.get(f"{stack.api_url}/v1/uploads/{upload_id}", timeout=30)
        assert response.status_code == 503, response.text
        assert response.json()["type"].endswith("/replica-unavailable")
        assert int(response.headers["Retry-After"]) > 0

    stack.start("geo-1")
    stack.start("worker-1")

    assert _all_done(stack, waiting)
    assert _all_done(stack, [upload_id for _, _, upload_id in later if upload_id])
    pids = _worker_pids(stack, "worker-1")
    assert {_claimed_by(stack, "geo-1", upload_id) for upload_id in waiting} <= pids


def test_tus_uploads_are_placed_and_every_patch_reaches_their_replica(
        replicated_stack: Stack) -> None:
    where = []
    for index in range(6):
        uploader = client.TusClient(f"{replicated_stack.api_url}/v1/uploads").uploader(
            file_stream=io.BytesIO(DATA * 4), chunk_size=len(DATA),
            metadata={"purpose": "raw", "filename": f"t{index}.bin"})
        uploader.upload()
        upload_id = uploader.url.rsplit("/", 1)[-1]
        assert replicated_stack.wait_for(upload_id)["status"] == "done"
        where.append(replicated_stack.replica_of(upload_id))
    # Done means every PATCH reached the replica the creation chose.
    assert set(where) <= {"geo-0", "geo-1", "geo-2"}
    assert len(set(where)) > 1


def _tus(stack: Stack, method: str, url: str, headers: dict[str, str],
         data: bytes = b"") -> requests.Response:
    return requests.request(method, url if url.startswith("http") else stack.api_url + url,
                            data=data, timeout=30, headers={"Tus-Resumable": "1.0.0", **headers})


def test_a_final_upload_joins_its_parts_on_the_replica_that_holds_them(
        replicated_stack: Stack) -> None:
    parts = [b"one part, ", b"and another, ", b"and a third"]
    urls = []
    for data in parts:
        created = _tus(replicated_stack, "POST", "/v1/uploads",
                       {"Upload-Concat": "partial", "Upload-Length": str(len(data))})
        assert created.status_code == 201, created.text
        urls.append(created.headers["Location"])
        sent = _tus(replicated_stack, "PATCH", urls[-1],
                    {"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}, data)
        assert sent.status_code == 204, sent.text
    holders = {replicated_stack.replica_of(url.rsplit("/", 1)[-1]) for url in urls}
    assert len(holders) == 1 and None not in holders
    purpose = base64.b64encode(b"raw").decode()
    final = _tus(replicated_stack, "POST", "/v1/uploads", {
        "Upload-Concat": "final;" + " ".join(urls), "Upload-Metadata": f"purpose {purpose}"})
    assert final.status_code == 201, final.text

    upload_id = final.headers["Location"].rsplit("/", 1)[-1]
    assert replicated_stack.wait_for(upload_id)["status"] == "done"
    assert {replicated_stack.replica_of(upload_id)} == holders
