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


def _start_all(settings: Settings, env: dict[str, str]) -> list[subprocess.Popen]:
    children: list[subprocess.Popen] = []
    if not settings.redis_url:
        port = processes.free_port()
        workdir = settings.uploads_root.resolve().parent / "valkey"
        workdir.mkdir(parents=True, exist_ok=True)
        children.append(processes.start(processes.valkey_argv(port, workdir), env))
        processes.wait_port(port, children[-1])
        env["HANDOFF_REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
        print(f"handoff: started valkey-server on 127.0.0.1:{port}", flush=True)
    geo = processes.start(processes.geo_argv(settings.geo_port), env)
    children.append(geo)
    processes.wait_ready(f"http://127.0.0.1:{settings.geo_port}/healthz", geo)
    children.append(processes.start(processes.worker_argv(settings.queue), env))
    children.append(processes.start(processes.gc_argv(), env))
    api = processes.start(processes.api_argv(settings.api_port), env)
    children.append(api)
    processes.wait_ready(f"http://127.0.0.1:{settings.api_port}/readyz", api)
    return children


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
    children: list[subprocess.Popen] = []
    try:
        children = _start_all(settings, env)
        url = f"http://127.0.0.1:{settings.api_port}"
        print(f"handoff: ready on {url} (uploads in {Path(env['HANDOFF_UPLOADS_ROOT'])})\n"
              f"  curl -F purpose=raw -F file=@big.bin {url}/v1/uploads\n"
              f"  curl {url}/v1/uploads/<id>", flush=True)
        return _serve(children)
    except KeyboardInterrupt:
        return 0
    except (RuntimeError, TimeoutError) as exc:
        print(f"handoff: start-up failed: {exc}", file=sys.stderr)
        return 1
    finally:
        for child in reversed(children):
            processes.stop(child)
        print("handoff: stopped", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
