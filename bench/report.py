"""Turning measurements into the printed report, the budget verdicts and the JSON line.

Ratios use medians: on a shared host one lucky or unlucky run says little,
and the budgets in ``docs/benchmarks.md`` are stated against medians.
Budgets are reported, never asserted: a miss is a finding to explain.
"""

import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.s3 import S3Run, s3_lines, s3_summary
from bench.scenarios import ConcurrentRound, Latency, MemoryPoint, ReplicaRound, Throughput
from handoff.units import GiB, MiB


@dataclass
class Results:
    """Everything one ``python -m bench`` run measured."""

    size: int
    repeat: int
    store: str
    throughput: dict[str, Throughput]
    memory: dict[str, MemoryPoint]
    concurrent: list[ConcurrentRound]
    latency: Latency
    payload_write_cpu_per_gib: float | None = None
    notes: list[str] = field(default_factory=list)
    replicas: list[ReplicaRound] = field(default_factory=list)
    s3: list[S3Run] = field(default_factory=list)


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile (``share`` in 0..1); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def _ratio(top: float | None, bottom: float | None) -> float | None:
    if top is None or not bottom:
        return None
    return round(top / bottom, 3)


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _median_mbps(results: Results, name: str) -> float | None:
    found = results.throughput.get(name)
    return round(found.median_mbps, 1) if found and found.transfers else None


def _best_mbps(results: Results, name: str) -> float | None:
    found = results.throughput.get(name)
    return found.best_mbps if found and found.transfers else None


def _concurrent(results: Results, name: str) -> list[ConcurrentRound]:
    return [run for run in results.concurrent if run.variant == name]


def summary(results: Results) -> dict[str, Any]:
    """The JSON summary: the keys the README and CI read, then context."""
    mbps = {name: _median_mbps(results, name)
            for name in ("direct", "relay", "naive", "nginx", "tus", "tus-16m", "tus-node")}
    relay_rounds = _concurrent(results, "relay")
    latencies = [t.seconds for run in relay_rounds for t in run.transfers]
    writes = (results.throughput["relay"].front_write_bytes
              + sum(point.api_write_bytes for point in results.memory.values()))
    return {
        "relay_vs_direct": _ratio(mbps["relay"], mbps["direct"]),
        "relay_vs_naive": _ratio(mbps["relay"], mbps["naive"]),
        "relay_vs_nginx": _ratio(mbps["relay"], mbps["nginx"]),
        "tus_vs_relay": _ratio(mbps["tus"], mbps["relay"]),
        "tus_chunked_vs_relay": _ratio(mbps["tus-16m"], mbps["relay"]),
        "tus_vs_tus_node": _ratio(mbps["tus"], mbps["tus-node"]),
        "relay_vs_direct_best": _ratio(_best_mbps(results, "relay"),
                                       _best_mbps(results, "direct")),
        "api_peak_rss_mib_1g": round(results.memory["1g"].api_peak_mib, 1),
        "api_peak_rss_mib_4g": round(results.memory["4g"].api_peak_mib, 1),
        "api_disk_write_bytes": writes,
        "enqueue_ms_p50": round(percentile(results.latency.enqueue_ms, 0.5), 1),
        "concurrent_aggregate_mbps": round(statistics.median(
            run.aggregate_mbps for run in relay_rounds), 1),
        "size_gib": round(results.size / GiB, 3),
        "direct_mbps": mbps["direct"],
        "relay_mbps": mbps["relay"],
        "naive_mbps": mbps["naive"],
        "nginx_mbps": mbps["nginx"],
        "tus_mbps": mbps["tus"],
        "tus_chunked_mbps": mbps["tus-16m"],
        "tus_node_mbps": mbps["tus-node"],
        "done_ms_p50": round(percentile(results.latency.done_ms, 0.5), 1),
        "geo_peak_rss_mib_4g": round(results.memory["4g"].geo_peak_mib, 1),
        "naive_disk_write_bytes": results.throughput["naive"].front_write_bytes,
        "concurrent_direct_aggregate_mbps": round(statistics.median(
            run.aggregate_mbps for run in _concurrent(results, "direct")), 1),
        "concurrent_latency_s": [round(min(latencies), 2), round(statistics.median(latencies), 2),
                                 round(max(latencies), 2)],
        "cpu_s_per_gib": {name: {service: _round(found.cpu_per_gib(service), 2)
                                 for service in ("front", "geo")}
                          for name, found in results.throughput.items()},
        "host_idle_pct": {name: round(100 * found.median_idle_share, 1)
                          for name, found in results.throughput.items()},
        "payload_write_cpu_s_per_gib": _round(results.payload_write_cpu_per_gib, 2),
        **replica_summary(results.replicas),
        **s3_summary(results.s3),
        "repeat": results.repeat,
        "store": results.store,
    }


def _replica_rounds(rounds: Sequence[ReplicaRound]) -> dict[int, list[ReplicaRound]]:
    """The rounds per replica count, fewest replicas first."""
    grouped: dict[int, list[ReplicaRound]] = {}
    for found in sorted(rounds, key=lambda found: found.replicas):
        grouped.setdefault(found.replicas, []).append(found)
    return grouped


def replica_summary(rounds: Sequence[ReplicaRound]) -> dict[str, Any]:
    """The 1 vs 3 geo replica figures for the JSON line: context only, never a budget.

    ``replicas_<n>_placed`` sums the uploads each store received over the
    rounds; ``replicas_<n>_spread`` says whether every round reached every
    replica with all its uploads accounted for.
    """
    grouped = _replica_rounds(rounds)
    mbps = {count: round(statistics.median(r.uploads.aggregate_mbps for r in found), 1)
            for count, found in grouped.items()}
    data: dict[str, Any] = {f"replicas_{count}_mbps": value for count, value in mbps.items()}
    if len(mbps) == 2:
        fewer, more = mbps
        data[f"replicas_{more}_vs_{fewer}"] = _ratio(mbps[more], mbps[fewer])
    data["replicas_cpu_s_per_gib"] = {
        str(count): round(statistics.median(r.cpu_per_gib for r in found), 2)
        for count, found in grouped.items()}
    for count, found in grouped.items():
        if count > 1:
            data[f"replicas_{count}_placed"] = _placed_totals(found)
            data[f"replicas_{count}_spread"] = all(r.spread for r in found)
    return data if grouped else {}


def _placed_totals(rounds: Sequence[ReplicaRound]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for found in rounds:
        for geo, count in found.placed.items():
            totals[geo] = totals.get(geo, 0) + count
    return totals


@dataclass(frozen=True)
class Budget:
    name: str
    passed: bool | None
    measured: str


def budgets(data: dict[str, Any]) -> list[Budget]:
    """The design's budgets, each with what was measured."""
    rss_1g, rss_4g = data["api_peak_rss_mib_1g"], data["api_peak_rss_mib_4g"]
    checks = [
        ("end-to-end >= 0.7 x direct", data["relay_vs_direct"], 0.7, "{:.3f} x"),
        ("end-to-end >= 3 x naive", data["relay_vs_naive"], 3.0, "{:.3f} x"),
        ("tus one PATCH >= 0.9 x relay", data["tus_vs_relay"], 0.9, "{:.3f} x"),
        ("tus 16 MiB PATCHes >= 0.75 x relay", data["tus_chunked_vs_relay"], 0.75, "{:.3f} x"),
        ("tus one PATCH >= 0.8 x @tus/server", data["tus_vs_tus_node"], 0.8, "{:.3f} x"),
    ]
    found = [Budget(name, None if value is None else value >= bar, _fmt(pattern, value))
             for name, value, bar, pattern in checks]
    return [
        *found,
        Budget("API peak RSS <= 100 MiB at 4 GiB", rss_4g <= 100, f"{rss_4g:.1f} MiB"),
        Budget("API peak RSS at 4 GiB <= 1 GiB figure + 16 MiB", rss_4g - rss_1g <= 16,
               f"{rss_4g - rss_1g:+.1f} MiB"),
        Budget("API writes 0 bytes to disk", data["api_disk_write_bytes"] == 0,
               f"{data['api_disk_write_bytes']} bytes"),
        Budget("enqueue <= 50 ms p50", data["enqueue_ms_p50"] <= 50,
               f"{data['enqueue_ms_p50']:.1f} ms"),
    ]


def _fmt(pattern: str, value: float | None) -> str:
    return "n/a" if value is None else pattern.format(value)


def render(results: Results) -> str:
    """The human part of the report (everything but the JSON line)."""
    data = summary(results)
    sections = [_throughput_table(results), _memory_lines(results),
                _concurrent_lines(results), replica_lines(results.replicas),
                s3_lines(results.s3),
                _latency_lines(results.latency),
                _ratio_lines(data), _budget_lines(budgets(data))]
    notes = [*results.notes, _payload_note(results)]
    sections.append("\n".join(f"note: {note}" for note in notes))
    return "\n\n".join(sections)


def _payload_note(results: Results) -> str:
    return (f"writing the payloads into {results.store} cost "
            f"{_fmt('{:.2f}', results.payload_write_cpu_per_gib)} CPU s/GiB "
            "(kernel included): the same work as the geo service's writes into its store")


def json_line(results: Results) -> str:
    data = summary(results)
    data["budgets"] = {b.name: b.passed for b in budgets(data)}
    return json.dumps(data, sort_keys=False)


def _throughput_table(results: Results) -> str:
    head = (f"Upload byte path: {results.size / GiB:g} GiB file, {results.repeat} runs per "
            f"variant, store on {results.store} (MB/s = 10^6 bytes/s; CPU = median "
            "CPU seconds per GiB; idle = share of both cores left idle, median)")
    rows = [f"{'variant':8} {'runs':>4} {'median MB/s':>12} {'best MB/s':>10} {'median s':>9} "
            f"{'min s':>7} {'front CPU':>10} {'geo CPU':>8} {'idle':>6} {'front disk writes':>18}"]
    for name, found in results.throughput.items():
        seconds = [t.seconds for t in found.transfers]
        writes = "-" if name in ("direct", "nginx", "tus-node") else _bytes(found.front_write_bytes)
        if not found.writes_exact:
            writes = f">= {writes}"
        rows.append(f"{name:8} {len(seconds):>4} {found.median_mbps:>12.1f} "
                    f"{found.best_mbps:>10.1f} {statistics.median(seconds):>9.2f} "
                    f"{min(seconds):>7.2f} {_cpu(found.cpu_per_gib('front')):>10} "
                    f"{_cpu(found.cpu_per_gib('geo')):>8} "
                    f"{100 * found.median_idle_share:>5.0f}% {writes:>18}")
    return "\n".join([head, *rows])


def _cpu(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _bytes(count: int) -> str:
    return f"{count} B" if count < MiB else f"{count / MiB:.0f} MiB"


def _memory_lines(results: Results) -> str:
    rows = ["Relayed single uploads, RSS sampled every 25 ms (max over gunicorn workers):"]
    for label, point in results.memory.items():
        exact = "" if point.writes_exact else " (a worker was replaced: lower bound)"
        rows.append(f"  {label}: {point.seconds:6.2f}s  API idle {point.api_idle_mib:5.1f} MiB, "
                    f"peak {point.api_peak_mib:5.1f} MiB; geo peak {point.geo_peak_mib:5.1f} MiB; "
                    f"API disk writes {point.api_write_bytes} B{exact}")
    return "\n".join(rows)


def _concurrent_lines(results: Results) -> str:
    rows = []
    for name in ("direct", "relay"):
        runs = _concurrent(results, name)
        if not runs:
            continue
        each = runs[0].transfers[0].size
        seconds = [t.seconds for run in runs for t in run.transfers]
        rates = ", ".join(f"{run.aggregate_mbps:.0f}" for run in runs)
        rows.append(f"  {name:6} {len(runs[0].transfers)} x {each / MiB:.0f} MiB: aggregate "
                    f"median {statistics.median(r.aggregate_mbps for r in runs):7.1f} MB/s "
                    f"(runs {rates}); per upload min/median/max {min(seconds):.2f}/"
                    f"{statistics.median(seconds):.2f}/{max(seconds):.2f}s"
                    + (f"; API peak RSS {max(r.api_peak_mib for r in runs):.1f} MiB"
                       if name == "relay" else ""))
    return "\n".join(["Concurrent uploads:", *rows])


def replica_lines(rounds: Sequence[ReplicaRound]) -> str:
    """The "Geo replicas" table: one row per stack, no verdict (see docs/benchmarks.md)."""
    grouped = _replica_rounds(rounds)
    if not grouped:
        return "Geo replicas: not measured"
    first = rounds[0].uploads.transfers
    head = (f"Geo replicas: {len(first)} x {first[0].size / MiB:.0f} MiB relayed at once, "
            f"{len(next(iter(grouped.values())))} rounds per stack, alternating (CPU = median "
            "CPU seconds per GiB of every process of the stack: API, geo services, workers, "
            "sweepers, valkey; the client's curls not included; no budget)")
    rows = [f"  {'replicas':8} {'median MB/s':>12} {'CPU s/GiB':>10}  runs MB/s; "
            "uploads per store each round"]
    for count, found in grouped.items():
        rates = ", ".join(f"{r.uploads.aggregate_mbps:.0f}" for r in found)
        placed = ", ".join("/".join(str(n) for n in r.placed.values()) for r in found)
        spread = "" if count == 1 else (" (every round spread over all replicas)"
                                        if all(r.spread for r in found) else " (NOT spread)")
        median = statistics.median(r.uploads.aggregate_mbps for r in found)
        rows.append(f"  {count:>8} {median:>12.1f} "
                    f"{statistics.median(r.cpu_per_gib for r in found):>10.2f}  {rates}; "
                    f"{placed}{spread}")
    rows.append(f"  all {sum(len(r.uploads.transfers) for r in rounds)} uploads answered 202")
    return "\n".join([head, *rows])


def _latency_lines(latency: Latency) -> str:
    def p(values: list[float], share: float) -> str:
        return f"{percentile(values, share):.1f}"

    enqueue = latency.enqueue_ms
    return "\n".join([
        f"1 MiB uploads, {len(latency.relay_ms)} pairs (direct, relay), client-side:",
        f"  direct p50 {p(latency.direct_ms, .5)} ms; relay p50 {p(latency.relay_ms, .5)} ms",
        f"  enqueue cost (relay - direct, per pair) p50 {p(enqueue, .5)} ms, "
        f"p90 {p(enqueue, .9)} ms",
        f"  API 'upload accepted' seconds (relay + enqueue, server-side) p50 "
        f"{p(latency.server_accept_ms, .5)} ms",
        f"  202 -> status done (raw processor, polled every 10 ms) p50 "
        f"{p(latency.done_ms, .5)} ms, max {p(latency.done_ms, 1)} ms",
    ])


def _ratio_lines(data: dict[str, Any]) -> str:
    rows = ["Ratios (median throughput; the best-run ratio is context, not a budget):"]
    for key in ("relay_vs_direct", "relay_vs_naive", "relay_vs_nginx", "tus_vs_relay",
                "tus_chunked_vs_relay", "tus_vs_tus_node", "relay_vs_direct_best"):
        value = data[key]
        rows.append(f"  {key:20} {'n/a (skipped)' if value is None else f'{value:.3f}'}")
    return "\n".join(rows)


def _budget_lines(found: list[Budget]) -> str:
    rows = ["Budgets:"]
    for budget in found:
        verdict = {True: "PASS", False: "FAIL", None: "n/a "}[budget.passed]
        rows.append(f"  {verdict}  {budget.name:48} measured {budget.measured}")
    return "\n".join(rows)
