"""Slow clients: cut below the minimum rate, never holding the service hostage.

Tricklers send a valid head, then one byte every few seconds; idle clients
send a head and nothing more. Neither may keep a normal upload or a health
probe waiting, and a server that is full says so at once.
"""

import os
import select
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import requests

from devstack.processes import free_port
from handoff.units import MiB
from tests.support.multipart_bodies import BOUNDARY, content_type, upload_head
from tests.support.polling import eventually


def _open_upload(port: int) -> socket.socket:
    """A valid upload head announcing 10 MiB, of which nothing more will come quickly."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=120)
    sock.sendall((f"POST /v1/uploads HTTP/1.1\r\nHost: x\r\nContent-Length: {10 * MiB}\r\n"
                  f"Content-Type: {content_type()}\r\n\r\n").encode() + upload_head("slow.bin"))
    return sock


def _status_line(sock: socket.socket) -> str:
    """The first line of the answer, once the server gives one (or '' if it closes)."""
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n", 1)[0].decode("latin-1")


def _answer(sock: socket.socket) -> str:
    """Everything the server sends before it closes the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data.decode("latin-1")


class HealthProbe:
    """A probe every 0.2 s on a thread, as a Kubernetes probe would; its failures."""

    def __init__(self, url: str, path: str = "/healthz", timeout: float = 10) -> None:
        self._url = url + path
        self._timeout = timeout
        self._stop = threading.Event()
        self.failures: list[str] = []
        self.count = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            try:
                answer = requests.get(self._url, timeout=self._timeout)
                if answer.status_code != 200:
                    self.failures.append(f"status {answer.status_code}")
            except requests.RequestException as exc:
                self.failures.append(type(exc).__name__)
            self.count += 1

    @contextmanager
    def running(self) -> Iterator["HealthProbe"]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join()


def _trickle(socks: list[socket.socket], stop: threading.Event, every: float) -> None:
    while not stop.wait(every):
        for sock in socks:
            with suppress(OSError):
                sock.send(b"x")


def _curl_upload(url: str, path: str) -> tuple[str, float]:
    started = time.monotonic()
    done = subprocess.run(
        ["curl", "-sS", "-o", os.devnull, "-w", "%{http_code}", "--max-time", "120",
         "-F", "purpose=raw", "-F", f"file=@{path}", url + "/v1/uploads"],
        capture_output=True, text=True, check=False)
    return done.stdout.strip(), time.monotonic() - started


def _upload_folders(stack) -> list[str]:
    return [p.name for p in stack.uploads.iterdir() if not p.name.startswith(".")]


def _start_api_with_health_port(stack) -> str:
    """Start the API with its master answering probes on a port of its own; that port's URL."""
    health_port = free_port()
    stack.env = {**stack.env, "HANDOFF_HEALTH_PORT": str(health_port)}
    stack.start("api")
    probes = f"http://127.0.0.1:{health_port}"
    assert eventually(lambda: requests.get(probes + "/readyz", timeout=1).status_code == 200)
    return probes


def test_200_tricklers_are_cut_with_408_while_a_64_mib_upload_and_the_probes_go_through(
        make_stack, tmp_path):
    """Probes as a kubelet sends them (1 s timeout) to the master's health port never fail."""
    stack = make_stack(components=("redis", "geo", "worker"))
    probes = _start_api_with_health_port(stack)
    api = stack.url("api")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(64 * MiB))
    stop = threading.Event()
    socks: list[socket.socket] = []
    with (HealthProbe(probes, "/healthz", timeout=1).running() as alive,
          HealthProbe(api).running() as worker_health):
        for _ in range(200):  # slow clients arrive over a few seconds, not in one instant
            socks.append(_open_upload(stack.ports["api"]))
            time.sleep(0.01)
        trickler = threading.Thread(target=_trickle, args=(socks, stop, 5.0), daemon=True)
        trickler.start()
        try:
            status, _ = _curl_upload(api, str(big))
            answers = [_status_line(sock) for sock in socks]
        finally:
            stop.set()
            trickler.join()
            for sock in socks:
                sock.close()
    assert status == "202"
    assert answers == ["HTTP/1.1 408 REQUEST TIMEOUT"] * 200, set(answers)
    assert (alive.failures, worker_health.failures) == ([], [])
    assert alive.count > 50  # it probed all along: the tricklers live for 30 s
    # every trickler's partial is gone; only the real upload stays
    assert eventually(lambda: len(_upload_folders(stack)) == 1), _upload_folders(stack)


def test_a_trickler_gets_a_problem_naming_the_minimum_rate(make_stack):
    stack = make_stack({"HANDOFF_CLIENT_MIN_RATE": "100", "HANDOFF_CLIENT_RATE_WINDOW": "2s"},
                       components=("redis", "geo", "api"))
    sock = _open_upload(stack.ports["api"])
    try:
        # A byte every 0.5 s until the answer comes: the trickle, not a pause, must be what is cut.
        for _ in range(40):
            with suppress(OSError):
                sock.send(b"x")
            if select.select([sock], [], [], 0.5)[0]:
                break
        answer = _answer(sock)
    finally:
        sock.close()
    head, _, body = answer.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 408"), answer
    assert "connection: close" in head.lower()  # and it does: _answer read to the close
    assert "application/problem+json" in head
    assert "/problems/too-slow" in body
    assert "below the minimum of 100B/s" in body
    assert eventually(lambda: _upload_folders(stack) == [])


def test_a_fast_client_is_not_cut_by_a_short_window(make_stack):
    stack = make_stack({"HANDOFF_CLIENT_RATE_WINDOW": "1s"}, components=("redis", "geo", "api"))
    response = stack.upload([("a.bin", os.urandom(32 * MiB)), ("b.bin", os.urandom(MiB))])
    assert response.status_code == 202, response.text


def test_a_full_server_answers_503_with_retry_after_at_once(make_stack):
    """At once: the refusal comes while the refused upload's body has not been sent."""
    stack = make_stack({"HANDOFF_WEB_WORKERS": "1", "HANDOFF_MAX_ACTIVE_UPLOADS": "2"},
                       components=("redis", "geo", "api"))
    held = [_open_upload(stack.ports["api"]) for _ in range(2)]
    try:
        assert eventually(lambda: len(_upload_folders(stack)) == 2)
        refused = _open_upload(stack.ports["api"])
        answer = _answer(refused)
        health = requests.get(stack.url("api") + "/healthz", timeout=5)
    finally:
        for sock in [*held, refused]:
            sock.close()
    head, _, body = answer.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 503"), answer
    assert "connection: close" in head.lower()
    assert "content-type: application/problem+json" in head.lower()
    assert "/problems/busy" in body
    retry_after = [line.split(":", 1)[1] for line in head.split("\r\n")
                   if line.lower().startswith("retry-after:")]
    assert len(retry_after) == 1 and int(retry_after[0]) > 0
    assert health.status_code == 200
    # once the slots are free again, uploads go through
    assert eventually(lambda: stack.upload([("d.bin", b"d")]).status_code == 202)


def test_1000_idle_connections_leave_room_for_a_normal_upload_and_the_probes(make_stack):
    """The probes go to the master's health port, with the kubelet's default 1 s timeout.

    The workers' own ``/healthz`` misses that timeout while 1000 uploads start at once.
    """
    stack = make_stack(components=("redis", "geo"))
    probes = _start_api_with_health_port(stack)
    idle: list[socket.socket] = []
    with (HealthProbe(probes, "/healthz", timeout=1).running() as alive,
          HealthProbe(probes, "/readyz", timeout=1).running() as ready):
        try:
            for _ in range(1000):  # all at once, the hardest case for the workers
                idle.append(_open_upload(stack.ports["api"]))
            assert eventually(lambda: len(_upload_folders(stack)) == 1000, timeout=60)
            response = stack.upload([("normal.bin", os.urandom(8 * MiB))])
            health = requests.get(stack.url("api") + "/healthz", timeout=10)
        finally:
            for sock in idle:
                sock.close()
    assert response.status_code == 202, response.text
    assert health.status_code == 200
    assert (alive.failures, ready.failures) == ([], [])
    assert alive.count > 5 and ready.count > 5
    assert eventually(lambda: len(_upload_folders(stack)) == 1, timeout=60)


def _pause_then_finish(port: int, pause: float) -> str:
    """The 10 MiB upload of :func:`_open_upload`, its sender silent half-way for ``pause`` s."""
    tail = b"\r\n--" + BOUNDARY + b"--\r\n"
    data = b"x" * (10 * MiB - len(upload_head("slow.bin")) - len(tail))
    sock = _open_upload(port)
    try:
        sock.sendall(data[:len(data) // 2])
        time.sleep(pause)  # the silence under test, not a measurement
        with suppress(OSError):
            sock.sendall(data[len(data) // 2:] + tail)
        return _answer(sock)
    finally:
        sock.close()


def test_a_pause_longer_than_the_rate_window_but_shorter_than_the_timeout_is_not_cut(make_stack):
    stack = make_stack({"HANDOFF_CLIENT_TIMEOUT": "4s", "HANDOFF_CLIENT_RATE_WINDOW": "1s"},
                       components=("redis", "geo", "api"))
    answer = _pause_then_finish(stack.ports["api"], 2.0)
    assert answer.startswith("HTTP/1.1 202"), answer


def test_a_silence_past_the_timeout_is_cut_with_client_timeout(make_stack):
    stack = make_stack({"HANDOFF_CLIENT_TIMEOUT": "2s", "HANDOFF_CLIENT_RATE_WINDOW": "1s"},
                       components=("redis", "geo", "api"))
    sock = _open_upload(stack.ports["api"])
    try:
        answer = _answer(sock)
    finally:
        sock.close()
    head, _, body = answer.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 408"), answer
    assert "application/problem+json" in head
    assert "/problems/client-timeout" in body
