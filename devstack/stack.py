"""``make run``: the whole stack in the foreground, on this machine.

Starts a Redis-protocol server (unless ``HANDOFF_REDIS_URL`` names one), the
geo service, a worker, the sweeper and the API. A part that dies is started
again after :data:`RESTART_DELAY`, as Kubernetes restarts a container; only
the embedded valkey's end stops the stack, since every part needs it.
Ctrl-C or SIGTERM stops every child, the API first: uploads in flight get
``HANDOFF_GRACEFUL_TIMEOUT`` (:data:`LOCAL_GRACE` unless set) to finish.

``HANDOFF_GEO_REPLICAS=3`` runs three geo replicas (``geo-0`` to ``geo-2``),
each a geo service, a worker and a sweeper of its own, with its store in
``HANDOFF_UPLOADS_ROOT/geo-<i>``, on ``HANDOFF_GEO_PORT`` and the ports
after it; the API places uploads on them. The default, one, runs the
single unnamed geo service.

With ``HANDOFF_STORE_URL=s3://bucket/prefix`` and no S3 endpoint or
credentials of its own in the environment, ``make run`` starts an embedded
SeaweedFS (:mod:`devstack.seaweedfs`) on loopback, keeping its data in
``var/seaweedfs/<API port>``, and creates the bucket. Likewise
``az://container/prefix`` with neither ``AZURE_STORAGE_CONNECTION_STRING``
nor ``AZURE_STORAGE_ACCOUNT`` starts Azurite (:mod:`devstack.azurite`),
its blobs in ``var/azurite/<API port>``, and creates the container.

Several stacks may run side by side on one machine with different
``HANDOFF_API_PORT``/``HANDOFF_GEO_PORT``: the metrics ports are picked free
unless set, and what belongs to one stack (the embedded valkey's files,
the worker's metrics folder, the heartbeat files) lives in ``var/``, in a
folder named after its API port.
"""

import os
import secrets
import shutil
import signal
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path

from devstack import azurite, processes, seaweedfs
from geo_service.store import Busy, held
from handoff.config import ConfigError, Settings, count, load_settings, variable

#: Where ``make run`` binds the worker's and the sweeper's metrics unless told:
#: this machine only, unlike a pod, whose port is its own.
LOCAL_METRICS_HOST = "127.0.0.1"
#: How many geo replicas ``make run`` starts; a launcher setting, no service reads it.
REPLICAS_VARIABLE = "HANDOFF_GEO_REPLICAS"
#: Seconds a dead part stays down before it is started again.
RESTART_DELAY = 2.0
#: ``make run``'s grace for uploads in flight when it stops, unless ``HANDOFF_GRACEFUL_TIMEOUT``
#: says otherwise: someone pressing Ctrl-C waits, a pod's hour would be too long.
LOCAL_GRACE = "10s"
#: Seconds a stopping web service gets beyond its grace before it is killed.
STOP_MARGIN = 5.0
#: Where the stack keeps its own files, relative to the folder ``make run`` starts in.
STATE_DIR = Path("var")
#: Any of these set means the S3 store is the user's own: no embedded SeaweedFS is started.
OWN_S3 = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_PROFILE")
#: Either set means the Azure store is the user's own: no embedded Azurite is started.
OWN_AZURE = ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT")
#: The parts whose end stops the stack: every other part needs them.
ESSENTIAL = ("redis", "seaweedfs", "azurite")


def replica_count(environ: Mapping[str, str]) -> int:
    """How many geo replicas to run: ``HANDOFF_GEO_REPLICAS``, 1 when unset."""
    raw = environ.get(REPLICAS_VARIABLE) or "1"
    try:
        return count(raw)
    except ValueError as exc:
        raise ConfigError(f"{REPLICAS_VARIABLE}={raw!r} is invalid: {exc}") from None


def local_defaults(environ: Mapping[str, str]) -> dict[str, str]:
    """Values ``make run`` chooses for unset metrics settings.

    The production defaults (9191, 9192 on every interface) suit a pod with
    a network of its own; on a shared machine a second stack would find
    them taken. The grace for uploads in flight is :data:`LOCAL_GRACE`.
    Unset or empty counts as unset, as in the loader.
    """
    chosen: dict[str, str] = {}
    if not environ.get(variable("graceful_timeout")):
        chosen[variable("graceful_timeout")] = LOCAL_GRACE
    if not environ.get(variable("metrics_host")):
        chosen[variable("metrics_host")] = LOCAL_METRICS_HOST
    unset = [name for name in (variable("worker_metrics_port"), variable("gc_metrics_port"))
             if not environ.get(name)]
    chosen.update(zip(unset, map(str, processes.free_ports(len(unset))), strict=True))
    return chosen


def health_ports(settings: Settings, spares: Mapping[str, int]) -> dict[str, int]:
    """The port each web service's gunicorn master answers probes on, if asked for.

    Off unless ``HANDOFF_HEALTH_PORT`` is set, as in production. One setting
    cannot serve several services on one machine: the API keeps it, and each
    geo service gets its entry of ``spares`` (geo service -> a free port).
    """
    if not settings.health_port:
        return {}
    return {"api": settings.health_port, **spares}


def geo_ports(settings: Settings, replicas: int) -> list[int]:
    """Each geo replica's port: ``HANDOFF_GEO_PORT`` and the ones after it.

    The same settings give the same ports at every start, so a replica's
    URL can be kept; the API's ports must lie outside them.
    """
    ports = list(range(settings.geo_port, settings.geo_port + replicas))
    if ports[-1] > 65535:
        raise ConfigError(f"{variable('geo_port')}={settings.geo_port} leaves no room for "
                          f"{replicas} geo replicas")
    taken = {settings.api_port: "api_port", settings.health_port: "health_port"}
    for port in ports:
        if port in taken:
            raise ConfigError(f"geo replica port {port} ({variable('geo_port')}+"
                              f"{port - settings.geo_port}) is {variable(taken[port])}'s; "
                              "choose ports further apart")
    return ports


def spare_ports(settings: Settings, count: int, reserved: Sequence[int] = ()) -> list[int]:
    """``count`` free ports for the launcher's own choices, picked together.

    A free port is only free for now: ports picked one by one could come
    back twice, or as a port nothing binds yet: the API's health port, or
    one in ``reserved`` (the geo replicas').
    """
    kept = {settings.health_port, *reserved}
    return [port for port in processes.free_ports(count + len(kept))
            if port not in kept][:count]


def state_root() -> Path:
    """``var/`` in the folder ``make run`` started in, wherever the uploads root points.

    What the README promises; an uploads root elsewhere (another disk) does
    not scatter the stack's own files next to it.
    """
    return STATE_DIR.resolve()


def stack_folder(settings: Settings, kind: str) -> Path:
    """This stack's own folder of ``kind`` (``var/<kind>/<API port>``).

    Named after the API port: no two running stacks share it, and the same
    settings find the same folder again after a restart.
    """
    return state_root() / kind / str(settings.api_port)


def _environment(environ: Mapping[str, str], settings: Settings) -> dict[str, str]:
    env = dict(environ)
    if not settings.geo_secret:
        env["HANDOFF_GEO_SECRET"] = secrets.token_urlsafe(32)
    env.setdefault("HANDOFF_GEO_URL", settings.geo_url)
    env["HANDOFF_UPLOADS_ROOT"] = str(settings.uploads_root.resolve())
    # Dramatiq's metrics folder: fresh per run, so counters start at zero.
    worker_metrics = stack_folder(settings, "worker-metrics")
    shutil.rmtree(worker_metrics, ignore_errors=True)
    env.setdefault("dramatiq_prom_db", str(worker_metrics))
    if not env.get("HANDOFF_HEARTBEAT_DIR"):  # not the system temp dir another stack uses
        heartbeats = stack_folder(settings, "heartbeats")
        heartbeats.mkdir(parents=True, exist_ok=True)
        env["HANDOFF_HEARTBEAT_DIR"] = str(heartbeats)
    return env


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _metrics_url(settings: Settings, port: int) -> str:
    return f"http://{_address(settings.metrics_host, port)}/metrics" if port else "off"


def ready_line(settings: Settings, health: dict[str, int],
               replicas: Sequence[tuple[str, str, dict[str, int]]] = ()) -> str:
    """The line that says the stack is up, with every address it listens on.

    ``replicas`` holds each named geo replica's name, url and ports.
    """
    store = settings.store_url if settings.shared_store else settings.uploads_root.resolve()
    probes = ", ".join(f"{name} http://{_address(settings.metrics_host, port)}/healthz"
                       for name, port in health.items()) or "off"
    if replicas:
        geo = "geo replicas " + ", ".join(f"{name} {url}" for name, url, _ in replicas)
        metrics = ", ".join(f"{name} worker {_metrics_url(settings, ports['worker_metrics'])} "
                            f"sweeper {_metrics_url(settings, ports['gc_metrics'])}"
                            for name, _, ports in replicas)
    else:
        geo = f"geo http://127.0.0.1:{settings.geo_port}"
        metrics = (f"worker {_metrics_url(settings, settings.worker_metrics_port)}, sweeper "
                   f"{_metrics_url(settings, settings.gc_metrics_port)}")
    return (f"handoff: ready on http://127.0.0.1:{settings.api_port} "
            f"({geo}; metrics: {metrics}; probes: {probes}; "
            f"uploads in {store})")


def embedded_bucket(settings: Settings, environ: Mapping[str, str]) -> str | None:
    """The bucket an embedded SeaweedFS should serve, or None when the S3 store is the user's."""
    url = settings.store_url
    if url is None or url.scheme != "s3" or any(environ.get(name) for name in OWN_S3):
        return None
    return url.location


def _start_seaweedfs(stack: processes.LocalStack, folder: Path, port: int, bucket: str) -> None:
    """SeaweedFS on loopback with ``bucket``; its endpoint and keys go into every part's env."""
    folder.mkdir(parents=True, exist_ok=True)
    stack.env.update(seaweedfs.environment(port))
    proc = stack.start("seaweedfs", seaweedfs.argv(folder, port))
    seaweedfs.wait_ready(stack.env, proc)
    seaweedfs.ensure_bucket(stack.env, bucket)
    print(f"handoff: started SeaweedFS, S3 on 127.0.0.1:{port} (data kept in {folder})",
          flush=True)


def embedded_container(settings: Settings, environ: Mapping[str, str]) -> str | None:
    """The container an embedded Azurite should serve; None when the Azure store is the user's."""
    url = settings.store_url
    if url is None or url.scheme != "az" or any(environ.get(name) for name in OWN_AZURE):
        return None
    return url.location


def _start_azurite(stack: processes.LocalStack, folder: Path, port: int, container: str) -> None:
    """Azurite on loopback with ``container``; its connection string goes into every part's env."""
    folder.mkdir(parents=True, exist_ok=True)
    stack.env.update(azurite.environment(port))
    proc = stack.start("azurite", azurite.argv(folder, port, folder / "azurite.log"))
    azurite.wait(port, proc)
    azurite.ensure_container(stack.env, container)
    print(f"handoff: started Azurite on 127.0.0.1:{port} (blobs kept in {folder})", flush=True)


def _start_all(stack: processes.LocalStack, valkey_dir: Path | None, redis_port: int) -> None:
    """Start every part, the API last; return once the API is ready.

    With ``valkey_dir``, an embedded valkey keeps its append-only file there.
    """
    if valkey_dir is not None:
        valkey_dir.mkdir(parents=True, exist_ok=True)
        port = stack.ports["redis"] = redis_port
        stack.env["HANDOFF_REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
        stack.start("redis", processes.valkey_argv(port, valkey_dir, durable=True))
        print(f"handoff: started valkey-server on 127.0.0.1:{port} (queue kept in {valkey_dir})",
              flush=True)
    for name in stack.components(("geo", "worker", "gc", "api")):
        stack.start(name)
    processes.wait_ready(stack.url("api") + "/readyz", stack.procs["api"])


def _serve(stack: processes.LocalStack) -> int:
    """Wait until a signal arrives (KeyboardInterrupt) or the embedded valkey dies.

    Any other part that dies (a crash, a kill) is started again after
    :data:`RESTART_DELAY`, as Kubernetes restarts a container: the other
    parts go on meanwhile, and requests that need the dead one answer 503
    (or find the API's port closed, while the API itself restarts).
    """
    while True:
        for name, child in list(stack.procs.items()):
            if child.poll() is None:
                continue
            if name in ESSENTIAL:
                print(f"handoff: {processes.program(child)} ({name}) exited with "
                      f"{child.returncode}; stopping (its files are kept for the next start)",
                      file=sys.stderr, flush=True)
                return 1
            print(f"handoff: {name} exited with {child.returncode}; starting it again in "
                  f"{RESTART_DELAY:g} s", file=sys.stderr, flush=True)
            time.sleep(RESTART_DELAY)
            stack.start(name)
            print(f"handoff: {name} started again", flush=True)
        time.sleep(0.2)


def _interrupt(signum: int, frame: object) -> None:
    """Start stopping, once: further signals must not cut the clean-up short.

    A second Ctrl-C, or make relaying SIGTERM to its group, would otherwise
    raise inside ``stop_all`` and leave children running with their ports bound.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def main() -> int:
    environ = {**os.environ, **local_defaults(os.environ)}
    try:
        settings = load_settings(environ)
        replicas = replica_count(environ)
        ports = geo_ports(settings, replicas)
    except ConfigError as exc:
        print(f"handoff: configuration error: {exc}", file=sys.stderr)
        return 2
    settings.uploads_root.mkdir(parents=True, exist_ok=True)
    state_root().mkdir(parents=True, exist_ok=True)
    # A second stack with the same API port in the same folder would share its
    # folders: two valkey-servers appending to one file. Refuse it before it starts.
    lock = state_root() / f"stack-{settings.api_port}.lock"
    with ExitStack() as claimed:
        try:
            claimed.enter_context(held(lock))
        except Busy:
            print(f"handoff: another stack runs with {variable('api_port')}="
                  f"{settings.api_port} here ({lock}); stop it or choose other ports",
                  file=sys.stderr)
            return 1
        return _run(settings, _environment(environ, settings), ports)


def _add_replicas(stack: processes.LocalStack, geo: Sequence[int],
                  spare: Iterator[int]) -> list[tuple[str, str, dict[str, int]]]:
    """Make ``stack`` run a named geo replica on each port of ``geo``, metrics from ``spare``."""
    chosen = [{kind: port if kind == "geo" else next(spare) for kind in processes.REPLICA_PORTS}
              for port in geo]
    return [(name, url, ports) for (name, url), ports
            in zip(stack.add_replicas(chosen), chosen, strict=True)]


def _run(settings: Settings, env: dict[str, str], geo: Sequence[int]) -> int:
    """Start, serve and stop the stack on the geo ports ``geo``; the caller holds its lock."""
    # Set both explicitly: a shell starting us in the background ignores SIGINT.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    replicas = len(geo)
    several = replicas > 1
    geos = [f"geo-{index}" for index in range(replicas)] if several else ["geo"]
    own_ports = replicas * (len(processes.REPLICA_PORTS) - 1) if several else 0
    spare = iter(spare_ports(settings, len(geos) + 2 + own_ports,
                             reserved=[settings.api_port, *geo]))
    health = health_ports(settings, {name: next(spare) for name in geos})
    redis_port, store_port = next(spare), next(spare)  # the embedded S3 or Azure, if any
    ports = {"api": settings.api_port} if several else {"geo": settings.geo_port,
                                                         "api": settings.api_port}
    stack = processes.LocalStack(state_root(), env, ports, logs_to_files=False,
                                 component_env={name: {variable("health_port"): str(port)}
                                                for name, port in health.items()},
                                 stop_timeout=settings.graceful_timeout + STOP_MARGIN)
    named = _add_replicas(stack, geo, spare) if several else []
    try:
        bucket, container = embedded_bucket(settings, env), embedded_container(settings, env)
        if bucket is not None:
            _start_seaweedfs(stack, stack_folder(settings, "seaweedfs"), store_port, bucket)
        if container is not None:
            _start_azurite(stack, stack_folder(settings, "azurite"), store_port, container)
        _start_all(stack, None if settings.redis_url else stack_folder(settings, "valkey"),
                   redis_port)
        url = stack.url("api")
        print(f"{ready_line(settings, health, named)}\n"
              f"  curl -F purpose=raw -F file=@big.bin {url}/v1/uploads\n"
              f"  curl {url}/v1/uploads/<id>", flush=True)
        return _serve(stack)
    except KeyboardInterrupt:
        return 0
    except (RuntimeError, TimeoutError) as exc:
        print(f"handoff: could not start: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop_all()
        print("handoff: stopped", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
