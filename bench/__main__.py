"""``python -m bench`` (``make bench``): run every measurement once and print the report.

Settings, all optional:

- ``HANDOFF_BENCH_SIZE`` file size in GiB (default 2; ``0.25`` for a quick run)
- ``HANDOFF_BENCH_REPEAT`` runs per throughput measurement (default 7, minimum 3)
- ``HANDOFF_BENCH_SAMPLES`` pairs of 1 MiB uploads for the latency figures (default 20)
- ``HANDOFF_BENCH_CONCURRENCY`` simultaneous uploads (default 8)
- ``HANDOFF_BENCH_ONLY=replicas`` runs only the 1 vs 3 geo replica comparison,
  ``HANDOFF_BENCH_ONLY=s3`` only the S3 store's (relay vs boto3's ``upload_file``
  into an embedded SeaweedFS); the default runs everything, both included
- ``HANDOFF_BENCH_DIR`` where the run's temp folder goes (payloads, geo store, logs).
  Default: /dev/shm when it has room, so the byte path is measured rather
  than a shared disk's mood; set it to a disk folder to include the disk.

The services themselves read their usual ``HANDOFF_*`` and ``GUNICORN_CMD_ARGS``
variables, so tuning candidates can be tried without editing anything.
The last line of stdout is the JSON summary.
"""

import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from bench.client import (
    DIRECT,
    NAIVE,
    NGINX,
    RELAY,
    TUS,
    TUS_CHUNKED,
    TUS_NODE,
    Variant,
    settle,
    upload,
)
from bench.nginx import ensure_nginx
from bench.payload import Payloads
from bench.report import Results, json_line, render, replica_lines, replica_summary
from bench.s3 import S3Run, s3_comparison, s3_lines, s3_summary
from bench.scenarios import (
    ConcurrentRound,
    MemoryPoint,
    ReplicaRound,
    concurrent_round,
    latency_pairs,
    memory_point,
    replica_round,
    say,
    throughput_rounds,
)
from bench.services import Stack, replica_stack, running
from bench.tus_node import ensure_tus_node
from handoff.units import GiB, MiB

N = TypeVar("N", int, float)
SHM = Path("/dev/shm")
MIN_REPEAT = 3
MEMORY_POINTS = (("1g", GiB), ("4g", 4 * GiB))
#: The geo replica counts compared, each on a stack of its own.
REPLICA_COUNTS = (1, 3)
ONLY_REPLICAS = "replicas"
ONLY_S3 = "s3"


@dataclass(frozen=True)
class Config:
    size: int
    repeat: int
    samples: int
    concurrency: int
    parent: Path
    only: str = ""

    @classmethod
    def from_env(cls) -> "Config":
        """Read the ``HANDOFF_BENCH_*`` variables; a bad value stops the run, naming it."""
        size = int(_number("HANDOFF_BENCH_SIZE", "2", float) * GiB)
        repeat = _number("HANDOFF_BENCH_REPEAT", "7", int)
        if size < MiB or repeat < MIN_REPEAT:
            raise SystemExit("bench: HANDOFF_BENCH_SIZE must be >= 1 MiB and "
                             f"HANDOFF_BENCH_REPEAT >= {MIN_REPEAT}")
        concurrency = _number("HANDOFF_BENCH_CONCURRENCY", "8", int)
        only = os.environ.get("HANDOFF_BENCH_ONLY") or ""
        if only not in ("", ONLY_REPLICAS, ONLY_S3):
            raise SystemExit(f"bench: HANDOFF_BENCH_ONLY must be {ONLY_REPLICAS!r}, "
                             f"{ONLY_S3!r} or unset")
        return cls(size, repeat, _number("HANDOFF_BENCH_SAMPLES", "20", int), concurrency,
                   _parent(footprint(size, concurrency)), only)

    @property
    def part_size(self) -> int:
        return max(self.size // self.concurrency, MiB)


def _number(name: str, default: str, kind: Callable[[str], N]) -> N:
    raw = os.environ.get(name) or default
    try:
        value = kind(raw)
    except ValueError:
        raise SystemExit(f"bench: {name}={raw!r} is not a number") from None
    if value <= 0:
        raise SystemExit(f"bench: {name} must be more than zero")
    return value


def footprint(size: int, concurrency: int) -> int:
    """The most the work folder holds at once: the largest payload and its stored copies."""
    part = max(size // concurrency, MiB)
    return max(2 * max(size, MEMORY_POINTS[-1][1]), part * (concurrency + 1)) + MiB


def _parent(needed: int) -> Path:
    """Where the temp folder goes: the chosen folder, else tmpfs when it has room to spare."""
    chosen = os.environ.get("HANDOFF_BENCH_DIR")
    if chosen:
        return Path(chosen)
    needed += 2 * GiB
    if SHM.is_dir() and shutil.disk_usage(SHM).free > needed and _available_ram() > needed:
        return SHM
    return Path(tempfile.gettempdir())


def _available_ram() -> int:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def fs_type(path: Path) -> str:
    """The filesystem type of ``path`` from /proc/mounts (longest mount point above it)."""
    best, kind = "", "?"
    try:
        with open("/proc/mounts") as mounts:
            for line in mounts:
                point, fstype = line.split()[1:3]
                if str(path).startswith(point) and len(point) > len(best):
                    best, kind = point, fstype
    except OSError:
        pass
    return kind


def _filesystem(path: Path) -> str:
    return f"{path} ({fs_type(path)})"


def run_all(stack: Stack, payloads: Payloads, config: Config, notes: list[str]) -> Results:
    """Every measurement, in an order that keeps the big payloads on disk only while used."""
    variants = [DIRECT, RELAY, NAIVE] + ([NGINX] if stack.has("nginx") else [])
    variants += [TUS, TUS_CHUNKED] + ([TUS_NODE] if stack.has("tus_node") else [])
    small = payloads.get(MiB)
    if fs_type(config.parent) == "tmpfs":
        payloads.prefault(footprint(config.size, config.concurrency))
    _warm_up(stack, variants, small)
    memory = _memory_points(stack, payloads)
    say(f"throughput: {config.repeat} rounds of {', '.join(v.name for v in variants)}")
    throughput = throughput_rounds(stack, variants, payloads.get(config.size), config.repeat)
    payloads.drop(config.size)
    concurrent = _concurrency(stack, payloads, config)
    say(f"latency: {config.samples} pairs of 1 MiB uploads")
    latency = latency_pairs(stack, small, config.samples)
    return Results(config.size, config.repeat, _filesystem(config.parent), throughput, memory,
                   concurrent, latency, payloads.write_cpu_per_gib, notes)


def _memory_points(stack: Stack, payloads: Payloads) -> dict[str, MemoryPoint]:
    """The 1 GiB and 4 GiB relays, whatever the run's file size: does memory grow with it?"""
    memory = {}
    for label, size in MEMORY_POINTS:
        say(f"memory point {label}: relaying {size / GiB:g} GiB")
        memory[label] = memory_point(stack, payloads.get(size))
        payloads.drop(size)
    return memory


def _concurrency(stack: Stack, payloads: Payloads, config: Config) -> list[ConcurrentRound]:
    """Rounds of simultaneous uploads, direct and relayed, alternating."""
    say(f"concurrency: {config.concurrency} x {config.part_size / MiB:.0f} MiB")
    part = payloads.get(config.part_size)
    rounds = [concurrent_round(stack, variant, part, config.concurrency)
              for _ in range(config.repeat) for variant in (DIRECT, RELAY)]
    if config.part_size != MiB:
        payloads.drop(config.part_size)
    return rounds


def replica_comparison(root: Path, payloads: Payloads, config: Config) -> list[ReplicaRound]:
    """Concurrent relayed rounds against a 1-replica and a 3-replica stack, alternating.

    Both stacks run side by side for the whole comparison, and their
    order swaps every round, so both see the same minutes of a shared host.
    """
    say(f"geo replicas: {config.repeat} rounds of {config.concurrency} x "
        f"{config.part_size / MiB:.0f} MiB relayed, on {' and '.join(map(str, REPLICA_COUNTS))} "
        "replicas")
    part, small = payloads.get(config.part_size), payloads.get(MiB)
    if fs_type(config.parent) == "tmpfs":
        payloads.prefault(config.part_size * (config.concurrency + 1))
    with contextlib.ExitStack() as started:
        stacks = {count: started.enter_context(replica_stack(root / f"replicas-{count}", count))
                  for count in REPLICA_COUNTS}
        for stack in stacks.values():
            _warm_up(stack, [RELAY], small)
        rounds = []
        for round_no in range(config.repeat):
            for count in REPLICA_COUNTS[::-1] if round_no % 2 else REPLICA_COUNTS:
                found = replica_round(stacks[count], part, config.concurrency, count)
                say(f"round {round_no + 1}/{config.repeat} {count} replica(s) "
                    f"{found.uploads.aggregate_mbps:8.1f} MB/s, {found.cpu_seconds:.3f} CPU s, "
                    f"placed {found.placed}")
                rounds.append(found)
    return rounds


def _warm_up(stack: Stack, variants: list[Variant], small: Path) -> None:
    """One small upload per variant: connections, imports and caches are made before timing."""
    for variant in variants:
        upload(stack, variant, small)
        settle(stack)


def _load_note(before: tuple[float, float, float]) -> str:
    """The 1-minute load before and after: on a shared host, others' work shows up here."""
    after = os.getloadavg()
    return (f"load average (1 min) {before[0]:.2f} at the start, {after[0]:.2f} at the end "
            f"on {os.cpu_count()} CPUs")


def _everything(base: Path, config: Config, notes: list[str]) -> Results:
    """The main stack's measurements, then the replica comparison once that stack is stopped."""
    nginx = ensure_nginx()
    if nginx is None:
        notes.append("nginx could not be installed: the nginx anchor was skipped (null)")
    tus_node = ensure_tus_node()
    if tus_node is None:
        notes.append("@tus/server could not be installed: the tus-node anchor was skipped (null)")
    payloads = Payloads(base / "payload")
    with running(base / "stack", nginx, tus_node) as stack:
        results = run_all(stack, payloads, config, notes)
    results.replicas = replica_comparison(base, payloads, config)
    results.s3 = s3_comparison(base, payloads, config.size, config.repeat)
    return results


def _only(base: Path, config: Config) -> list[ReplicaRound] | list[S3Run]:
    """The one comparison ``HANDOFF_BENCH_ONLY`` names."""
    payloads = Payloads(base / "payload")
    if config.only == ONLY_S3:
        return s3_comparison(base, payloads, config.size, config.repeat)
    return replica_comparison(base, payloads, config)


def _print(found: Results | list[ReplicaRound] | list[S3Run], notes: list[str]) -> None:
    """The report, then the JSON line last (one comparison's figures alone for an "only" run)."""
    if isinstance(found, Results):
        print(render(found))
        print(json_line(found), flush=True)
        return
    s3 = [run for run in found if isinstance(run, S3Run)]
    rounds = [run for run in found if isinstance(run, ReplicaRound)]
    lines, data = (s3_lines(s3), s3_summary(s3)) if s3 else (replica_lines(rounds),
                                                            replica_summary(rounds))
    print("\n\n".join([lines, "\n".join(f"note: {note}" for note in notes)]))
    print(json.dumps(data), flush=True)


def main() -> int:
    """Run everything in a temp folder that is removed whatever happens; 0 on success."""
    config = Config.from_env()
    started = time.monotonic()
    notes: list[str] = []
    load_before = os.getloadavg()
    config.parent.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="handoff-bench-", dir=config.parent))
    say(f"working in {_filesystem(base)}; file size {config.size / GiB:g} GiB")
    try:
        found: Results | list[ReplicaRound] | list[S3Run] = (
            _only(base, config) if config.only else _everything(base, config, notes))
    except (RuntimeError, TimeoutError) as exc:
        say(f"failed: {exc}")
        return 1
    finally:
        shutil.rmtree(base, ignore_errors=True)
    notes.append(_load_note(load_before))
    say(f"finished in {time.monotonic() - started:.0f}s")
    _print(found, notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
