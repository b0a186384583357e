"""Health answers from the gunicorn master, which no client can keep busy.

A worker process that is starting a burst of uploads answers its own
``/healthz`` late: with a thousand slow clients arriving at once, seconds
late, and a Kubernetes probe with a one-second timeout then fails although
nothing is wrong. The master serves no requests, so a thread there answers
at once. What it answers is still about the workers:

- alive: the master has workers, and each beat (gunicorn's own heartbeat)
  within the worker timeout, past which gunicorn restarts it anyway;
- ready: besides, a worker found the service's dependencies reachable a
  moment ago. Each worker checks them in the background
  (:class:`ReadinessReporter`) and leaves its verdict in a file the master
  reads; a verdict older than :data:`REPORT_MAX_AGE` counts as none.

``HANDOFF_HEALTH_PORT`` turns the listener on; the services' own
``/healthz`` and ``/readyz`` keep answering on the service port.
"""

import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

#: Seconds between a worker's checks of its dependencies.
REPORT_INTERVAL = 2.0
#: Seconds after which a worker's verdict no longer counts.
REPORT_MAX_AGE = 15.0

Ready = Callable[[], dict[str, str]]


class Worker(Protocol):
    """What the master knows of one worker (gunicorn's ``Worker``): not whether it booted.

    That is known only in the worker's own process; its first verdict says so.
    """

    pid: int


def liveness(heartbeat_ages: Iterable[float], timeout: float) -> dict[str, str]:
    """Failures that make the service not alive; empty means alive."""
    ages = list(heartbeat_ages)
    if not ages:
        return {"workers": "no worker process is running"}
    late = [age for age in ages if age > timeout]
    if late:
        return {"workers": f"{len(late)} of {len(ages)} worker processes sent no heartbeat "
                           f"for over {timeout:.0f}s"}
    return {}


def readiness(reports: Iterable[dict[str, Any] | None], now: float,
              max_age: float = REPORT_MAX_AGE) -> dict[str, str]:
    """Failures that make the service not ready, from the workers' verdicts.

    Ready while a worker found everything reachable within ``max_age``: a
    dependency is shared by all workers, and one slow check (a geo service
    busy with a burst of uploads) must not take the service out of rotation.
    Otherwise the freshest verdict's failures say why.
    """
    known = [r for r in reports if r is not None]
    if any(r.get("last_ok") is not None and now - r["last_ok"] <= max_age for r in known):
        return {}
    fresh = [r for r in known if now - r.get("time", 0.0) <= max_age]
    if not fresh:
        return {"workers": "no worker process has checked the dependencies lately"}
    return dict(max(fresh, key=lambda report: report["time"]).get("failures", {}))


def report_path(folder: Path, pid: int) -> Path:
    return folder / f"ready-{pid}.json"


def read_report(folder: Path, pid: int) -> dict[str, Any] | None:
    try:
        return json.loads(report_path(folder, pid).read_text())
    except (OSError, ValueError):
        return None


class ReadinessReporter:
    """Runs in a worker: checks ``ready`` every :data:`REPORT_INTERVAL` and writes the verdict."""

    def __init__(self, folder: Path, ready: Ready, clock: Callable[[], float] = time.time) -> None:
        self._path = report_path(folder, os.getpid())
        self._ready = ready
        self._clock = clock
        self._last_ok: float | None = None

    def report(self) -> None:
        """One check, written atomically: the master never reads half a verdict."""
        try:
            failures = self._ready()
        except Exception as exc:  # a check that breaks is a failure, not a dead reporter
            failures = {"check": f"{type(exc).__name__}: {exc}"}
        now = self._clock()
        if not failures:
            self._last_ok = now
        text = json.dumps({"time": now, "failures": failures, "last_ok": self._last_ok})
        partial = self._path.with_suffix(".partial")
        partial.write_text(text)
        partial.replace(self._path)

    def start(self) -> None:
        threading.Thread(target=self._loop, name="readiness", daemon=True).start()

    def _loop(self) -> None:
        """For the worker's whole life: the thread is a daemon and ends with it."""
        while True:
            self.report()
            time.sleep(REPORT_INTERVAL)


class HealthServer:
    """The master's listener: ``/healthz`` and ``/readyz`` from what it knows of its workers."""

    def __init__(self, host: str, port: int, workers: Callable[[], list[Worker]],
                 heartbeat_age: Callable[[Worker], float], timeout: float, folder: Path) -> None:
        self._workers = workers
        self._heartbeat_age = heartbeat_age
        self._timeout = timeout
        self._folder = folder
        self._server = ThreadingHTTPServer((host, port), _handler(self))
        self._server.daemon_threads = True

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> None:
        threading.Thread(target=self._server.serve_forever, name="health", daemon=True).start()

    def close(self) -> None:
        """Stop serving and free the port; called in the master and in each new worker."""
        self._server.socket.close()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, method: str, path: str) -> tuple[int, dict[str, Any]]:
        if path not in ("/healthz", "/readyz"):
            return _problem(404, "Not Found", "this port answers /healthz and /readyz only")
        if method not in ("GET", "HEAD"):
            return _problem(405, "Method Not Allowed", f"{path} answers GET only")
        workers = self._workers()
        failures = liveness((self._heartbeat_age(w) for w in workers), self._timeout)
        if path == "/healthz":
            return (503, _unavailable(failures)) if failures else (200, {"status": "ok"})
        failures = failures or readiness(
            (read_report(self._folder, w.pid) for w in workers), time.time())
        return (503, _unavailable(failures)) if failures else (200, {"status": "ready"})


def _unavailable(failures: dict[str, str]) -> dict[str, Any]:
    return {"status": "unavailable", "failures": failures}


def _problem(status: int, title: str, detail: str) -> tuple[int, dict[str, Any]]:
    return status, {"type": "about:blank", "title": title, "status": status, "detail": detail}


def _handler(health: HealthServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            status, body = health.answer(self.command, self.path.split("?", 1)[0])
            data = json.dumps(body).encode()
            self.send_response(status)
            kind = "application/problem+json" if "title" in body else "application/json"
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

        def log_message(self, format: str, *args: Any) -> None:
            """Probes come every few seconds; an access line each would drown the log."""

    return Handler
