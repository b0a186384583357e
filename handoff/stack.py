"""``make run``: the whole stack in the foreground, on this machine.

Starts a Redis-protocol server (unless ``HANDOFF_REDIS_URL`` names one), the
geo service, a worker, the sweeper and the API. Ctrl-C or SIGTERM stops
every child; if any child dies, the rest are stopped too.
"""

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from handoff import processes
from handoff.config import ConfigError, Settings, load_settings


def _environment(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    if not settings.geo_secret:
        env["HANDOFF_GEO_SECRET"] = secrets.token_urlsafe(32)
    env.setdefault("HANDOFF_GEO_URL", settings.geo_url)
    env["HANDOFF_UPLOADS_ROOT"] = str(settings.uploads_root.resolve())
    # Dramatiq's metrics folder: fresh per run, so counters start at zero.
    worker_metrics = settings.uploads_root.resolve().parent / "worker-metrics"
    shutil.rmtree(worker_metrics, ignore_errors=True)
    env.setdefault("dramatiq_prom_db", str(worker_metrics))
    return env


def _start_all(stack: processes.LocalStack, with_redis: bool) -> None:
    """Start every part, the API last; return once the API is ready."""
    if with_redis:
        stack.ports["redis"] = processes.free_port()
        stack.env["HANDOFF_REDIS_URL"] = f"redis://127.0.0.1:{stack.ports['redis']}/0"
        stack.start("redis")
        print(f"handoff: started valkey-server on 127.0.0.1:{stack.ports['redis']}", flush=True)
    for name in ("geo", "worker", "gc", "api"):
        stack.start(name)
    processes.wait_ready(stack.url("api") + "/readyz", stack.procs["api"])


def _serve(children: list[subprocess.Popen]) -> int:
    """Wait until a signal arrives (KeyboardInterrupt) or a child dies."""
    while True:
        for child in children:
            if child.poll() is not None:
                name = processes.program(child)
                print(f"handoff: {name} exited with {child.returncode}; stopping",
                      file=sys.stderr, flush=True)
                return 1
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
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"handoff: configuration error: {exc}", file=sys.stderr)
        return 2
    settings.uploads_root.mkdir(parents=True, exist_ok=True)
    env = _environment(settings)
    # Set both explicitly: a shell starting us in the background ignores SIGINT.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    ports = {"geo": settings.geo_port, "api": settings.api_port}
    stack = processes.LocalStack(settings.uploads_root.resolve().parent, env, ports,
                                 logs_to_files=False)
    try:
        _start_all(stack, with_redis=not settings.redis_url)
        url = stack.url("api")
        print(f"handoff: ready on {url} (uploads in {Path(env['HANDOFF_UPLOADS_ROOT'])})\n"
              f"  curl -F purpose=raw -F file=@big.bin {url}/v1/uploads\n"
              f"  curl {url}/v1/uploads/<id>", flush=True)
        return _serve(list(stack.procs.values()))
    except KeyboardInterrupt:
        return 0
    except (RuntimeError, TimeoutError) as exc:
        print(f"handoff: start-up failed: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop_all()
        print("handoff: stopped", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
