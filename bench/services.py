"""The processes under test, started the way ``make run`` and the tests start them.

One stack serves every variant: valkey, the geo service, a worker, the API,
the naive app and (when available) nginx and the Node tus server, all on
free loopback ports, all
stopped in a ``finally``. The geo replica comparison runs two smaller
stacks of its own (:func:`replica_stack`), one with one geo service and
one with three named replicas. The API logs into a named pipe rather than a file,
because the API's own disk writes are measured and a log file would add
pages of its own; the lines still reach the benchmark, for error messages.
"""

import contextlib
import json
import os
import secrets
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.nginx import nginx_argv
from bench.tus_node import tus_node_argv
from devstack import processes

QUEUE = "geoprocessing"
PIPE_JOIN_SECONDS = 5.0
NAIVE_APP = "bench.naive_app:create_app()"
REPO_ROOT = Path(__file__).resolve().parent.parent


class LogPipe:
    """A FIFO standing in for a service's log file; a thread keeps the last lines."""

    def __init__(self, path: Path, keep: int = 200) -> None:
        os.mkfifo(path)
        self.path = path
        self.lines: deque[str] = deque(maxlen=keep)
        self.accepted: list[dict[str, Any]] = []
        self._thread = threading.Thread(target=self._read, name=f"log-{path.name}", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        with open(self.path, "rb") as pipe:
            for raw in pipe:
                line = raw.decode("utf-8", "replace").rstrip()
                self.lines.append(line)
                if '"upload accepted"' in line:
                    with contextlib.suppress(ValueError):
                        self.accepted.append(json.loads(line))

    def close(self) -> None:
        """Wait for the writer's end of the pipe to close (the service has stopped)."""
        self._thread.join(PIPE_JOIN_SECONDS)

    def tail(self, count: int = 20) -> str:
        return "\n".join(list(self.lines)[-count:])


@dataclass
class Stack(processes.LocalStack):
    """The running services and how to reach them."""

    api_log: LogPipe | None = None
    #: The upload ids a bucket holds, for a stack that stores into one (None: folders).
    bucket_ids: Callable[[], set[str]] | None = None

    def pid(self, name: str) -> int:
        return self.procs[name].pid

    def has(self, name: str) -> bool:
        return name in self.procs

    def log_path(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"

    @property
    def tus_node_store(self) -> Path:
        """Where the Node tus server keeps its uploads (emptied after every run)."""
        return self.root / "tus-node"

    @property
    def stores(self) -> dict[str, Path]:
        """Each geo service's store: a named replica keeps its own folder under the root."""
        return {name: self.uploads / name if self.replicas else self.uploads
                for name in self.components(("geo",))}

    def stop_all(self) -> None:
        super().stop_all()
        if self.api_log is not None:
            self.api_log.close()


def _environment(root: Path, ports: dict[str, int]) -> dict[str, str]:
    """The variables the test stacks set (tests/support/stacks.py), on top of the caller's own.

    Tuning variables (``HANDOFF_RELAY_CHUNK_SIZE``, ``GUNICORN_CMD_ARGS``,
    ``HANDOFF_WEB_WORKERS``, ``HANDOFF_WEB_THREADS``) pass through unchanged.
    """
    return {
        **os.environ,
        "HANDOFF_UPLOADS_ROOT": str(root / "uploads"),
        "HANDOFF_GEO_SECRET": secrets.token_urlsafe(24),
        "HANDOFF_REDIS_URL": f"redis://127.0.0.1:{ports['redis']}/0",
        "HANDOFF_GEO_URL": f"http://127.0.0.1:{ports['geo']}",
        "HANDOFF_QUEUE": QUEUE,
        "HANDOFF_HEARTBEAT_DIR": str(root),
    }


@contextlib.contextmanager
def running(root: Path, nginx_binary: str | None,
            tus_node_modules: Path | None = None) -> Iterator[Stack]:
    """Start the whole stack under ``root``; everything is stopped when the block ends."""
    names = ("redis", "geo", "api", "naive", "nginx", "tus_node")
    ports = {name: processes.free_port() for name in names}
    (root / "uploads").mkdir(parents=True)
    (root / "logs").mkdir()
    stack = Stack(root, _environment(root, ports), ports)
    try:
        _start_backends(stack)
        _start_api(stack)
        _start(stack, "naive", _naive_argv(ports["naive"]))
        if nginx_binary is not None:
            _start_nginx(stack, nginx_binary)
        if tus_node_modules is not None:
            _start(stack, "tus_node", tus_node_argv(tus_node_modules, ports["tus_node"],
                                                    stack.tus_node_store))
        yield stack
    finally:
        stack.stop_all()


#: What each stack of the replica comparison runs, in start order (the API last).
REPLICA_STACK_PARTS = ("redis", "geo", "worker", "gc")


@contextlib.contextmanager
def replica_stack(root: Path, replicas: int) -> Iterator[Stack]:
    """Valkey, the API and, per geo replica, a geo service, worker and sweeper, as ``make run``.

    ``replicas`` 1 runs the one unnamed geo service; more run named
    replicas (``geo-<i>``), whose stores are folders of the uploads root.
    Metrics listen on loopback ports of their own, so two stacks can run
    side by side.
    """
    names = ("redis", "geo", "api", "worker_metrics", "gc_metrics")
    ports = dict(zip(names, processes.free_ports(len(names)), strict=True))
    (root / "uploads").mkdir(parents=True)
    (root / "logs").mkdir()
    env = {**_environment(root, ports), "HANDOFF_METRICS_HOST": "127.0.0.1",
           "HANDOFF_WORKER_METRICS_PORT": str(ports.pop("worker_metrics")),
           "HANDOFF_GC_METRICS_PORT": str(ports.pop("gc_metrics")),
           "dramatiq_prom_db": str(root / "worker-metrics")}
    stack = Stack(root, env, ports)
    if replicas > 1:
        del ports["geo"]
        own = processes.REPLICA_PORTS
        free = iter(processes.free_ports(len(own) * replicas))
        stack.add_replicas([{name: next(free) for name in own} for _ in range(replicas)])
    try:
        for name in stack.components(REPLICA_STACK_PARTS):
            _start(stack, name)
        _start_api(stack)
        yield stack
    finally:
        stack.stop_all()


#: What the object store comparison's stack runs, in start order (the API last).
OBJECT_STACK_PARTS = ("redis", "geo", "worker")


@contextlib.contextmanager
def object_stack(root: Path, store_env: dict[str, str],
                 parts: tuple[str, ...] = OBJECT_STACK_PARTS) -> Iterator[Stack]:
    """Valkey, one geo service and worker (and the sweeper, if in ``parts``) on a bucket; the API.

    ``store_env`` holds ``HANDOFF_STORE_URL`` and the S3 client's standard
    variables; the uploads root is left empty, the bucket holds the uploads.
    """
    names = ("redis", "geo", "api")
    ports = dict(zip(names, processes.free_ports(len(names)), strict=True))
    (root / "uploads").mkdir(parents=True)
    (root / "logs").mkdir()
    stack = Stack(root, {**_environment(root, ports), **store_env,
                         "HANDOFF_SCRATCH_DIR": str(root / "scratch")}, ports)
    try:
        for name in parts:
            _start(stack, name)
        _start_api(stack)
        yield stack
    finally:
        stack.stop_all()


def _naive_argv(port: int) -> list[str]:
    """gunicorn for the naive app; ``--chdir`` makes ``bench`` importable from anywhere."""
    argv = processes.gunicorn_argv(NAIVE_APP, port)
    argv[-1:-1] = ["--chdir", str(REPO_ROOT)]
    return argv


def _start_backends(stack: Stack) -> None:
    for name in ("redis", "geo", "worker"):
        _start(stack, name)


def _start_api(stack: Stack) -> None:
    stack.api_log = LogPipe(stack.root / "logs" / "api.pipe")
    try:
        api = stack.start("api", log_path=stack.api_log.path)
        processes.wait_ready(f"{stack.url('api')}/readyz", api)
    except (RuntimeError, TimeoutError) as exc:
        raise RuntimeError(f"the API did not start: {exc}\n{stack.api_log.tail()}") from None


def _start_nginx(stack: Stack, binary: str) -> None:
    argv = nginx_argv(binary, stack.root / "nginx", stack.ports["nginx"], stack.ports["geo"])
    _start(stack, "nginx", argv)


def _start(stack: Stack, name: str, argv: list[str] | None = None) -> None:
    try:
        stack.start(name, argv)
    except (RuntimeError, TimeoutError) as exc:
        path = stack.log_path(name)
        log = path.read_text(errors="replace")[-2000:] if path.exists() else ""
        raise RuntimeError(f"{name} did not start: {exc}\n{log}") from None
