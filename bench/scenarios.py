"""The measurements, each a small function over a running stack.

Every run is followed by :func:`bench.client.settle`, so one run never
overlaps another's disk or CPU work. Throughput rounds interleave the
variants and rotate their order, so a slow minute on a shared host hurts
all of them alike instead of one.
"""

import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests

from bench.client import (
    DIRECT,
    RELAY,
    BenchError,
    Transfer,
    Variant,
    finish_upload,
    settle,
    start_upload,
    upload,
    upload_ids,
)
from bench.probes import CpuTime, DiskWrites, PeakRss, max_rss, workers
from bench.services import Stack
from handoff.units import GiB, MiB

STATUS_POLL_SECONDS = 0.01
DONE_TIMEOUT = 60.0


def say(message: str) -> None:
    """Progress goes to stderr, so stdout holds only the report."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Run:
    """One timed upload, with what the services spent on it."""

    transfer: Transfer
    front_write_bytes: int
    writes_exact: bool
    cpu_seconds: dict[str, float]
    host_idle_share: float


@dataclass
class Throughput:
    """All runs of one variant."""

    runs: list[Run] = field(default_factory=list)

    @property
    def transfers(self) -> list[Transfer]:
        return [run.transfer for run in self.runs]

    @property
    def median_mbps(self) -> float:
        return statistics.median(t.mbps for t in self.transfers)

    @property
    def best_mbps(self) -> float:
        return max(t.mbps for t in self.transfers)

    @property
    def front_write_bytes(self) -> int:
        return sum(run.front_write_bytes for run in self.runs)

    @property
    def writes_exact(self) -> bool:
        return all(run.writes_exact for run in self.runs)

    @property
    def median_idle_share(self) -> float:
        return statistics.median(run.host_idle_share for run in self.runs)

    def cpu_per_gib(self, service: str) -> float | None:
        """Median CPU seconds per GiB that ``service`` spent, or None if not watched."""
        values = [run.cpu_seconds[service] / (run.transfer.size / GiB) for run in self.runs
                  if service in run.cpu_seconds]
        return statistics.median(values) if values else None


def throughput_rounds(stack: Stack, variants: Sequence[Variant], path: Path,
                      repeat: int) -> dict[str, Throughput]:
    """``repeat`` rounds; each round runs every variant once, in a rotated order."""
    results = {variant.name: Throughput() for variant in variants}
    for round_no in range(repeat):
        shift = round_no % len(variants)
        for variant in [*variants[shift:], *variants[:shift]]:
            run = measured_upload(stack, variant, path)
            results[variant.name].runs.append(run)
            say(f"round {round_no + 1}/{repeat} {variant.name:6} {run.transfer.seconds:7.2f}s "
                f"{run.transfer.mbps:8.1f} MB/s")
            settle(stack)
    return results


def measured_upload(stack: Stack, variant: Variant, path: Path) -> Run:
    """Upload once, counting the CPU of the front service and the geo service.

    The front's disk writes are counted too where it is one of ours to
    judge (the API, the naive app).
    """
    masters = {"geo": stack.pid("geo")}
    if variant.front != "geo":
        masters["front"] = stack.pid(variant.front)
    if variant.front not in ("api", "naive"):
        with CpuTime(masters) as cpu:
            transfer = upload(stack, variant, path)
        return Run(transfer, 0, True, cpu.seconds, cpu.host_idle_share)
    with DiskWrites(stack.pid(variant.front)) as writes, CpuTime(masters) as cpu:
        transfer = upload(stack, variant, path)
    return Run(transfer, writes.bytes, writes.stable, cpu.seconds, cpu.host_idle_share)


@dataclass(frozen=True)
class MemoryPoint:
    """One relayed upload watched from the outside: memory and disk of both services."""

    size: int
    seconds: float
    api_idle_mib: float
    api_peak_mib: float
    geo_peak_mib: float
    api_write_bytes: int
    writes_exact: bool


def memory_point(stack: Stack, path: Path) -> MemoryPoint:
    """Relay ``path`` once while sampling worker RSS and counting the API's disk writes."""
    idle = max_rss(workers(stack.pid("api"))) / MiB
    masters = {"api": stack.pid("api"), "geo": stack.pid("geo")}
    with DiskWrites(stack.pid("api")) as writes, PeakRss(masters) as rss:
        transfer = upload(stack, RELAY, path)
    settle(stack)
    peak = rss.peak_mib
    return MemoryPoint(transfer.size, transfer.seconds, idle, peak["api"], peak["geo"],
                       writes.bytes, writes.stable)


@dataclass(frozen=True)
class ConcurrentRound:
    """``count`` uploads started together; aggregate over the wall time of all of them."""

    variant: str
    transfers: list[Transfer]
    wall_seconds: float
    api_peak_mib: float

    @property
    def aggregate_mbps(self) -> float:
        return sum(t.size for t in self.transfers) / self.wall_seconds / 1e6


def concurrent_round(stack: Stack, variant: Variant, path: Path, count: int) -> ConcurrentRound:
    """Start ``count`` curls at once, wait for all of them, then for their jobs."""
    found = concurrent_uploads(stack, variant, path, count)
    settle(stack)
    return found


def concurrent_uploads(stack: Stack, variant: Variant, path: Path,
                       count: int) -> ConcurrentRound:
    """Start ``count`` curls at once and wait for their answers, leaving the uploads stored."""
    size = path.stat().st_size
    with PeakRss({"api": stack.pid("api")}) as rss:
        started = time.monotonic()
        procs = [start_upload(stack, variant, path) for _ in range(count)]
        try:
            transfers = [finish_upload(proc, variant, size) for proc in procs]
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        wall = time.monotonic() - started
    return ConcurrentRound(variant.name, transfers, wall, rss.peak_mib["api"])


@dataclass(frozen=True)
class ReplicaRound:
    """One concurrent relayed round against a stack of ``replicas`` geo replicas.

    ``cpu_seconds`` is what every process of the stack spent from the first
    byte until the last job was done; ``placed`` counts the uploads each
    geo service's store received.
    """

    replicas: int
    uploads: ConcurrentRound
    cpu_seconds: float
    placed: dict[str, int]

    @property
    def cpu_per_gib(self) -> float:
        return self.cpu_seconds / (sum(t.size for t in self.uploads.transfers) / GiB)

    @property
    def spread(self) -> bool:
        """Every upload is in a store, and every replica's store holds at least one."""
        return (sum(self.placed.values()) == len(self.uploads.transfers)
                and all(self.placed.values()))


def replica_round(stack: Stack, path: Path, count: int, replicas: int) -> ReplicaRound:
    """``count`` relayed uploads at once; CPU counted over the whole stack, client excluded."""
    masters = {name: proc.pid for name, proc in stack.procs.items()}
    with CpuTime(masters) as cpu:
        uploads = concurrent_uploads(stack, RELAY, path, count)
        placed = {geo: len(upload_ids(store)) for geo, store in stack.stores.items()}
        settle(stack)
    return ReplicaRound(replicas, uploads, sum(cpu.seconds.values()), placed)


@dataclass
class Latency:
    """Small uploads, relayed and direct in pairs, and how long the job took to finish."""

    direct_ms: list[float] = field(default_factory=list)
    relay_ms: list[float] = field(default_factory=list)
    done_ms: list[float] = field(default_factory=list)
    server_accept_ms: list[float] = field(default_factory=list)

    @property
    def enqueue_ms(self) -> list[float]:
        """Per pair: what the relayed upload took beyond the same file sent direct."""
        return [relay - direct for relay, direct in zip(self.relay_ms, self.direct_ms,
                                                        strict=True)]


def latency_pairs(stack: Stack, path: Path, samples: int) -> Latency:
    """``samples`` pairs of (direct, relayed) uploads of ``path``, alternating which goes first.

    After each relayed upload the API's status is polled every 10 ms until
    ``done``: the time from the 202 to that answer is the job's turnaround.
    """
    result = Latency()
    session = requests.Session()
    accepted_before = len(stack.api_log.accepted) if stack.api_log else 0
    with tempfile.TemporaryDirectory(prefix="handoff-bench-resp-") as scratch:
        answer = Path(scratch) / "answer.json"
        for sample in range(samples):
            if sample % 2:
                result.relay_ms.append(_relay_and_wait(stack, session, path, answer, result))
                result.direct_ms.append(_direct_ms(stack, path))
            else:
                result.direct_ms.append(_direct_ms(stack, path))
                result.relay_ms.append(_relay_and_wait(stack, session, path, answer, result))
    if stack.api_log is not None:
        result.server_accept_ms = [event["seconds"] * 1000
                                   for event in stack.api_log.accepted[accepted_before:]]
    return result


def _direct_ms(stack: Stack, path: Path) -> float:
    seconds = upload(stack, DIRECT, path).seconds
    settle(stack)
    return seconds * 1000


def _relay_and_wait(stack: Stack, session: requests.Session, path: Path, answer: Path,
                    result: Latency) -> float:
    transfer = upload(stack, RELAY, path, output=str(answer))
    answered = time.monotonic()
    upload_id = json.loads(answer.read_text())["id"]
    result.done_ms.append(_wait_done(stack, session, upload_id, answered))
    settle(stack)
    return transfer.seconds * 1000


def _wait_done(stack: Stack, session: requests.Session, upload_id: str,
               answered: float) -> float:
    url = f"{stack.url('api')}/v1/uploads/{upload_id}"
    deadline = answered + DONE_TIMEOUT
    while time.monotonic() < deadline:
        status = session.get(url, timeout=10).json().get("status")
        if status == "done":
            return (time.monotonic() - answered) * 1000
        if status == "failed":
            raise BenchError(f"the raw job for {upload_id} failed")
        time.sleep(STATUS_POLL_SECONDS)
    raise BenchError(f"upload {upload_id} not done after {DONE_TIMEOUT:.0f}s")
