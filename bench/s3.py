"""The S3 path: the product's relay into a bucket against boto3's own upload of the same file.

One embedded SeaweedFS (:mod:`devstack.seaweedfs`) serves both, in the
same run. The baseline is boto3's managed transfer (``upload_file``) with
its transfer defaults (8 MiB parts, 10 threads), on the client
configuration the product uses; the relay is curl → API → geo service →
bucket, with ``HANDOFF_STORE_URL=s3://…``; curl straight to the geo
service is measured too, so a shortfall can be placed on the API's hop or
on the geo service's writes. Rounds rotate the order, as the other
throughput rounds do.

CPU is counted per process: SeaweedFS, the API, the geo service, and the
client (this process and the curls it waited for; for the baseline, boto3
runs here).
"""

import contextlib
import resource
import statistics
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.client import DIRECT, RELAY, settle, upload
from bench.payload import Payloads
from bench.probes import CpuTime
from bench.scenarios import say
from bench.services import Stack, object_stack
from devstack import processes, seaweedfs
from geo_service.store.s3 import S3Client
from handoff.ids import is_upload_id
from handoff.units import GiB, MiB

BUCKET = "handoff-bench"
#: The relay's store prefix; the baseline writes beside it.
STORE_PREFIX = "relay"
BASELINE = "boto3"
#: The relay's throughput over the baseline's that the design asks for (reported, not asserted).
BUDGET = 0.8
#: Variants in the order of the first round.
VARIANTS = (BASELINE, RELAY.name, DIRECT.name)
PROCESSES = ("client", "api", "geo", "seaweedfs")


@dataclass(frozen=True)
class S3Run:
    """One timed upload into the bucket, and the CPU seconds each process spent on it."""

    variant: str
    size: int
    seconds: float
    cpu_seconds: dict[str, float]

    @property
    def mbps(self) -> float:
        return self.size / self.seconds / 1e6


def _of(runs: Sequence[S3Run], variant: str) -> list[S3Run]:
    return [run for run in runs if run.variant == variant]


def median_mbps(runs: Sequence[S3Run], variant: str) -> float | None:
    found = _of(runs, variant)
    return statistics.median(run.mbps for run in found) if found else None


def cpu_per_gib(runs: Sequence[S3Run], variant: str) -> dict[str, float]:
    """Median CPU seconds per GiB of each process a variant's runs watched."""
    found = _of(runs, variant)
    names = [name for name in PROCESSES if any(name in run.cpu_seconds for run in found)]
    return {name: statistics.median(run.cpu_seconds[name] / (run.size / GiB)
                                    for run in found if name in run.cpu_seconds)
            for name in names}


def s3_summary(runs: Sequence[S3Run]) -> dict[str, Any]:
    """The S3 figures for the JSON line; ``s3_relay_vs_boto3`` is the budgeted ratio."""
    if not runs:
        return {}
    mbps = {variant: median_mbps(runs, variant) for variant in VARIANTS}
    relay, baseline = mbps[RELAY.name], mbps[BASELINE]
    ratio = round(relay / baseline, 3) if relay and baseline else None
    return {
        "s3_relay_vs_boto3": ratio,
        "s3_budget_met": None if ratio is None else ratio >= BUDGET,
        **{f"s3_{variant}_mbps": None if value is None else round(value, 1)
           for variant, value in mbps.items()},
        "s3_cpu_s_per_gib": {variant: {name: round(value, 2) for name, value
                                       in cpu_per_gib(runs, variant).items()}
                             for variant in VARIANTS},
        "s3_runs": len(_of(runs, BASELINE)),
    }


def s3_lines(runs: Sequence[S3Run]) -> str:
    """The "S3 store" table and its budget line."""
    if not runs:
        return "S3 store: not measured"
    head = (f"S3 store (embedded SeaweedFS): {runs[0].size / GiB:g} GiB file, "
            f"{len(_of(runs, BASELINE))} runs per variant (CPU = median CPU seconds per GiB; "
            "client = boto3 in the bench process, or curl)")
    rows = [f"  {'variant':8} {'median MB/s':>12} {'runs MB/s':>24} "
            + " ".join(f"{name:>9}" for name in PROCESSES)]
    for variant in VARIANTS:
        found = _of(runs, variant)
        if not found:
            continue
        cpu = cpu_per_gib(runs, variant)
        rates = ", ".join(f"{run.mbps:.0f}" for run in found)
        rows.append(f"  {variant:8} {median_mbps(runs, variant):>12.1f} {rates:>24} "
                    + " ".join(f"{_cpu(cpu.get(name)):>9}" for name in PROCESSES))
    ratio = s3_summary(runs)["s3_relay_vs_boto3"]
    verdict = "n/a " if ratio is None else ("PASS" if ratio >= BUDGET else "FAIL")
    shown = "n/a" if ratio is None else f"{ratio:.3f} x"
    rows.append(f"  {verdict}  relay >= {BUDGET} x boto3 upload_file (medians): measured {shown}")
    return "\n".join([head, *rows])


def _cpu(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


@contextlib.contextmanager
def seaweedfs_running(folder: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """``weed mini`` with the bench's bucket: its pid and its clients' environment."""
    folder.mkdir(parents=True)
    port = processes.free_port()
    proc = seaweedfs.start(folder, port, folder / "weed.log")
    try:
        env = seaweedfs.environment(port)
        seaweedfs.ensure_bucket(env, BUCKET)
        yield proc.pid, env
    finally:
        seaweedfs.stop(proc)


def bucket_ids(s3: S3Client) -> set[str]:
    """The upload ids under the relay's prefix: one "folder" each."""
    found: set[str] = set()
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=BUCKET, Prefix=f"{STORE_PREFIX}/", Delimiter="/")
    for page in pages:
        for common in page.get("CommonPrefixes", []):
            name = common["Prefix"].removeprefix(f"{STORE_PREFIX}/").rstrip("/")
            if is_upload_id(name):
                found.add(name)
    return found


def s3_comparison(root: Path, payloads: Payloads, size: int, repeat: int) -> list[S3Run]:
    """``repeat`` rounds of the baseline, the relay and direct, each round in a rotated order."""
    say(f"S3 store: {repeat} rounds of {', '.join(VARIANTS)} into an embedded SeaweedFS")
    path, small = payloads.get(size), payloads.get(MiB)
    with seaweedfs_running(root / "seaweedfs") as (weed, env), \
            object_stack(root / "s3-stack", {**env, "HANDOFF_STORE_URL":
                                             f"s3://{BUCKET}/{STORE_PREFIX}"}) as stack:
        s3 = seaweedfs.client(env)
        stack.bucket_ids = lambda: bucket_ids(s3)
        for variant in VARIANTS:
            _measured(stack, s3, weed, variant, small)
        runs = []
        for round_no in range(repeat):
            shift = round_no % len(VARIANTS)
            for variant in [*VARIANTS[shift:], *VARIANTS[:shift]]:
                run = _measured(stack, s3, weed, variant, path)
                say(f"round {round_no + 1}/{repeat} s3 {variant:6} {run.seconds:7.2f}s "
                    f"{run.mbps:8.1f} MB/s")
                runs.append(run)
    return runs


def _measured(stack: Stack, s3: S3Client, weed: int, variant: str, path: Path) -> S3Run:
    """One upload of ``path`` through ``variant``, then the bucket emptied of it."""
    masters = {"seaweedfs": weed}
    if variant != BASELINE:
        masters["geo"] = stack.pid("geo")
    if variant == RELAY.name:
        masters["api"] = stack.pid("api")
    with _ClientCpu() as client, CpuTime(masters) as cpu:
        seconds = _send(stack, s3, variant, path)
    _empty(stack, s3)
    return S3Run(variant, path.stat().st_size, seconds, {**cpu.seconds, "client": client.seconds})


def _send(stack: Stack, s3: S3Client, variant: str, path: Path) -> float:
    if variant == BASELINE:
        started = time.monotonic()
        s3.upload_file(str(path), BUCKET, f"baseline/{path.name}")
        return time.monotonic() - started
    return upload(stack, RELAY if variant == RELAY.name else DIRECT, path).seconds


def _empty(stack: Stack, s3: S3Client) -> None:
    """Wait for the upload's job and delete it (through the geo service), and the baseline's."""
    settle(stack)
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="baseline/").get("Contents", [])
    for item in listed:
        s3.delete_object(Bucket=BUCKET, Key=item["Key"])


class _ClientCpu:
    """CPU seconds of this process and of the children it waited for (curl), in the block."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._before = 0.0

    @staticmethod
    def _now() -> float:
        total = 0.0
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
            usage = resource.getrusage(who)
            total += usage.ru_utime + usage.ru_stime
        return total

    def __enter__(self) -> "_ClientCpu":
        self._before = self._now()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = self._now() - self._before
