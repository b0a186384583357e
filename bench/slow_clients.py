"""``python -m bench.slow_clients``: which gunicorn worker holds many slow clients best.

For each candidate server (gthread with the default 16 threads, gthread with
many threads, gevent) one stack is started, and:

1. the byte path alone: the median relay rate of ``HANDOFF_BENCH_SLOW_SIZE``
   (default 512 MiB) over ``HANDOFF_BENCH_REPEAT`` (5) uploads with curl, the
   three stacks running side by side and taking turns;
2. ``HANDOFF_BENCH_SLOW_CLIENTS`` (default 1000) clients that send a valid
   upload head and then one byte every 5 s, opened over a few seconds; while
   they trickle, ``/healthz`` is probed every 0.2 s on the service port
   (10 s timeout) and on the master's health port (1 s timeout, as a
   kubelet probes), and a
   64 MiB upload is sent with curl.

Ratios are against gthread with 16 threads measured in the same run. The
last line of stdout is the JSON summary; ``make bench`` runs this after the
main benchmark.
"""

import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.scenarios import say
from devstack import processes
from handoff.units import MiB

BOUNDARY = "bench-slow-boundary"
CANDIDATES: dict[str, dict[str, str]] = {
    "gthread-16": {"HANDOFF_WEB_WORKER_CLASS": "gthread", "HANDOFF_WEB_THREADS": "16"},
    "gthread-1024": {"HANDOFF_WEB_WORKER_CLASS": "gthread", "HANDOFF_WEB_THREADS": "1024"},
    "gevent": {"HANDOFF_WEB_WORKER_CLASS": "gevent"},
}
BASELINE = "gthread-16"
TRICKLE_SECONDS = 15.0


@dataclass
class Outcome:
    relay_mb_s: float
    healthz_p50_ms: float
    healthz_max_ms: float
    healthz_failures: int
    upload_status: str
    upload_seconds: float
    opened: int
    master_p50_ms: float = 0.0
    master_max_ms: float = 0.0
    master_failures: int = 0


@dataclass
class Probe:
    """``/healthz`` latencies in seconds, and failures (timeouts count as failures)."""

    url: str
    max_time: float = 10.0
    latencies: list[float] = field(default_factory=list)
    failures: int = 0

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(0.2):
            started = time.monotonic()
            done = subprocess.run(["curl", "-s", "-o", os.devnull, "-w", "%{http_code}",
                                   "--max-time", str(self.max_time), self.url],
                                  capture_output=True, text=True, check=False)
            self.latencies.append(time.monotonic() - started)
            self.failures += done.stdout.strip() != "200"


def _head(length: int) -> bytes:
    part = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nraw\r\n"
            f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; "
            "filename=\"slow.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n")
    return (f"POST /v1/uploads HTTP/1.1\r\nHost: bench\r\nContent-Length: {length}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n\r\n{part}").encode()


def _curl_upload(url: str, path: Path) -> tuple[str, float]:
    started = time.monotonic()
    done = subprocess.run(["curl", "-sS", "-o", os.devnull, "-w", "%{http_code}",
                           "--max-time", "120", "-F", "purpose=raw", "-F", f"file=@{path}",
                           url + "/v1/uploads"], capture_output=True, text=True, check=False)
    return done.stdout.strip() or "no answer", time.monotonic() - started


def _relay_rates(urls: dict[str, str], path: Path, rounds: int) -> dict[str, float]:
    """Median relay rate per candidate, the candidates taking turns within each round.

    Taking turns spreads the host's changing load over all candidates alike.
    """
    rates: dict[str, list[float]] = {name: [] for name in urls}
    for _ in range(rounds):
        for name, url in urls.items():
            status, seconds = _curl_upload(url, path)
            if status != "202":
                raise RuntimeError(f"{name}: a plain relay answered {status}")
            rates[name].append(path.stat().st_size / seconds / 1e6)
    return {name: statistics.median(values) for name, values in rates.items()}


def _open_tricklers(port: int, count: int) -> list[socket.socket]:
    """Slow clients arriving over a few seconds; those the server does not take are skipped."""
    socks = []
    for _ in range(count):
        with suppress(OSError):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(_head(10 * MiB))
            socks.append(sock)
        time.sleep(0.003)
    return socks


def _trickle(socks: list[socket.socket], stop: threading.Event) -> None:
    while not stop.wait(5.0):
        for sock in socks:
            with suppress(OSError):
                sock.send(b"x")


@contextmanager
def _stack(root: Path, overrides: dict[str, str]) -> Iterator[processes.LocalStack]:
    env, ports = processes.scratch_environment(root, "bench-secret-" + os.urandom(8).hex())
    env.update(overrides)
    stack = processes.LocalStack(root, env, ports)
    try:
        for name in ("redis", "geo", "worker"):
            stack.start(name)
        # The API's master answers probes on a port of its own (handoff/server/health.py).
        stack.ports["health"] = processes.free_port()
        stack.env = {**env, "HANDOFF_HEALTH_PORT": str(stack.ports["health"])}
        stack.start("api")
        yield stack
    finally:
        stack.stop_all()


def among_tricklers(stack: processes.LocalStack, upload: Path, clients: int) -> Outcome:
    """Health and a 64 MiB upload while ``clients`` tricklers hold connections."""
    api = stack.url("api")
    probe, stop = Probe(api + "/healthz"), threading.Event()
    # As a kubelet probes, with its default one-second timeout.
    master = Probe(stack.url("health") + "/healthz", max_time=1.0)
    probers = [threading.Thread(target=p.run, args=(stop,)) for p in (probe, master)]
    for prober in probers:
        prober.start()
    socks = _open_tricklers(stack.ports["api"], clients)
    trickler = threading.Thread(target=_trickle, args=(socks, stop))
    trickler.start()
    try:
        status, seconds = _curl_upload(api, upload)
        stop.wait(max(0.0, TRICKLE_SECONDS - seconds))
    finally:
        stop.set()
        for prober in probers:
            prober.join()
        trickler.join()
        for sock in socks:
            sock.close()
    latencies = sorted(probe.latencies) or [float("nan")]
    on_master = sorted(master.latencies) or [float("nan")]
    return Outcome(0.0, statistics.median(latencies) * 1e3, latencies[-1] * 1e3,
                   probe.failures, status, seconds, len(socks),
                   statistics.median(on_master) * 1e3, on_master[-1] * 1e3, master.failures)


def measure(base: Path, big: Path, clients: int, rounds: int) -> dict[str, Outcome]:
    """All candidates side by side: the byte path in turns, then each among tricklers."""
    with ExitStack() as running:
        stacks = {}
        for name, overrides in CANDIDATES.items():
            (base / name).mkdir()
            stacks[name] = running.enter_context(_stack(base / name, overrides))
        say(f"slow clients: relay of {big.stat().st_size // MiB} MiB, {rounds} rounds in turn")
        rates = _relay_rates({name: s.url("api") for name, s in stacks.items()}, big, rounds)
        outcomes = {}
        for name, stack in stacks.items():
            say(f"slow clients: {name} among {clients} tricklers")
            outcome = among_tricklers(stack, big.with_name("64m.bin"), clients)
            outcome.relay_mb_s = rates[name]
            outcomes[name] = outcome
    return outcomes


def render(outcomes: dict[str, Outcome], clients: int, size: int) -> str:
    lines = [f"Slow clients ({clients} tricklers at 1 byte / 5 s; relay of {size // MiB} MiB)",
             "", "healthz: a worker's own (10 s timeout); health port: the master's (1 s timeout)",
             "", "| server | relay MB/s | vs gthread-16 | healthz p50 / max ms | failures "
             "| health port p50 / max ms | failures | 64 MiB upload | opened |",
             "|---|---|---|---|---|---|---|---|---|"]
    base = outcomes[BASELINE].relay_mb_s
    for name, o in outcomes.items():
        lines.append(f"| {name} | {o.relay_mb_s:.0f} | {o.relay_mb_s / base:.2f} | "
                     f"{o.healthz_p50_ms:.0f} / {o.healthz_max_ms:.0f} | {o.healthz_failures} | "
                     f"{o.master_p50_ms:.0f} / {o.master_max_ms:.0f} | {o.master_failures} | "
                     f"{o.upload_status} in {o.upload_seconds:.1f} s | {o.opened} |")
    return "\n".join(lines)


def main() -> int:
    clients = int(os.environ.get("HANDOFF_BENCH_SLOW_CLIENTS", "1000"))
    size = int(float(os.environ.get("HANDOFF_BENCH_SLOW_SIZE", "512")) * MiB)
    base = Path(tempfile.mkdtemp(prefix="handoff-bench-slow-",
                                 dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    try:
        big = base / "big.bin"
        big.write_bytes(os.urandom(size))
        (base / "64m.bin").write_bytes(os.urandom(64 * MiB))
        outcomes = measure(base, big, clients, int(os.environ.get("HANDOFF_BENCH_REPEAT", "5")))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(render(outcomes, clients, size))
    summary = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "gevent_relay_vs_gthread": round(outcomes["gevent"].relay_mb_s
                                                / outcomes[BASELINE].relay_mb_s, 3),
               **{name: asdict(o) for name, o in outcomes.items()}}
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
