"""Many clients at once, and slow ones: all accepted uploads finish, nothing leaks."""

import hashlib
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psutil

from geo_service.store import FileStore
from handoff.units import MiB
from tests.support.multipart_bodies import content_type, upload_head


def _open_slow_upload(port: int, length: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall((f"POST /v1/uploads HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n"
                  f"Content-Type: {content_type()}\r\n\r\n").encode()
                 + upload_head("slow.bin"))
    return sock


def _read_answer(sock: socket.socket) -> str:
    """Read one HTTP answer with a Content-Length body."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(65536)
    return (head + b"\r\n\r\n" + body).decode("latin-1")


def _rss_peak_sampler(pids: list[int], stop: threading.Event, peak: dict) -> None:
    procs = [psutil.Process(pid) for pid in pids]
    while not stop.wait(0.1):
        peak["rss"] = max(peak["rss"], *(p.memory_info().rss for p in procs))


def test_32_concurrent_uploads_all_finish_with_bounded_memory(make_stack, tmp_path):
    stack = make_stack({"HANDOFF_WEB_THREADS": "16"})
    sizes = [(i % 8 + 1) * 14 * MiB + i for i in range(32)]  # mixed, about 2 GiB in all
    block = os.urandom(8 * MiB)
    paths = []
    for index, size in enumerate(sizes):
        path = tmp_path / f"f{index}.bin"
        path.write_bytes((block * (size // len(block) + 1))[:size - 8] + index.to_bytes(8, "big"))
        paths.append(path)
    master = psutil.Process(stack.procs["api"].pid)
    pids = [master.pid, *(c.pid for c in master.children(recursive=True))]
    idle = max(psutil.Process(pid).memory_info().rss for pid in pids)
    stop, peak = threading.Event(), {"rss": 0}
    sampler = threading.Thread(target=_rss_peak_sampler, args=(pids, stop, peak))
    sampler.start()

    def send(path):
        with open(path, "rb") as handle:
            return stack.upload([(path.name, handle)])

    try:
        with ThreadPoolExecutor(32) as pool:
            responses = list(pool.map(send, paths))
    finally:
        stop.set()
        sampler.join()

    assert [r.status_code for r in responses] == [202] * 32, [r.text for r in responses
                                                              if r.status_code != 202]
    for path, response in zip(paths, responses, strict=True):
        status = stack.wait_for(response.json()["id"], timeout=180)
        assert status["status"] == "done", status
        assert status["files"][0]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    folders = [p for p in stack.uploads.iterdir() if not p.name.startswith(".")]
    assert len(folders) == 32
    assert FileStore(stack.uploads).unfinished_removals() == []
    # Each of a process's 16 threads holds a few copies of one 1 MiB relay
    # chunk (socket buffers, parser, request body), and the allocator keeps
    # some freed blocks: about 8 MiB per upload in flight was measured. A
    # process that buffered its files would hold about 1 GiB here.
    growth = peak["rss"] - idle
    assert growth < 16 * 12 * MiB, f"an API process grew by {growth / MiB:.0f} MiB"


def test_trickling_clients_do_not_block_other_uploads(stack):
    slow = [_open_slow_upload(stack.ports["api"], 10 * MiB) for _ in range(4)]
    try:
        for _ in range(3):
            for sock in slow:
                sock.sendall(b"x" * 16)
            time.sleep(0.3)
        response = stack.upload([("quick.bin", os.urandom(MiB))])
        assert response.status_code == 202, response.text
        assert stack.wait_for(response.json()["id"])["status"] == "done"
    finally:
        for sock in slow:
            sock.close()


def test_a_silent_client_is_cut_off_after_the_client_timeout(make_stack):
    stack = make_stack({"HANDOFF_CLIENT_TIMEOUT": "1s"}, components=("redis", "geo", "api"))
    sock = _open_slow_upload(stack.ports["api"], 10 * MiB)
    try:
        sock.sendall(os.urandom(MiB))
        sock.settimeout(20)
        answer = _read_answer(sock)
    finally:
        sock.close()
    assert answer.startswith("HTTP/1.1 408"), answer
    assert "application/problem+json" in answer
    assert "/problems/client-timeout" in answer
    assert "stopped sending" in answer
    deadline = time.monotonic() + 10
    while (folders := [p for p in stack.uploads.iterdir() if not p.name.startswith(".")]) \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    assert folders == []
