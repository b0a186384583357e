"""The S3 store comparison's figures, from made-up runs: no server is started."""

import json

from bench.s3 import BUDGET, S3Run, cpu_per_gib, median_mbps, s3_lines, s3_summary
from handoff.units import GiB


def _run(variant: str, mbps: float, cpu: dict[str, float]) -> S3Run:
    return S3Run(variant, GiB, GiB / mbps / 1e6, cpu)


def _runs(relay_rates: tuple[float, ...]) -> list[S3Run]:
    """Three rounds: boto3 at 100, 200, 300 MB/s (median 200), the relay at ``relay_rates``."""
    runs = []
    for base, relay in zip((100.0, 200.0, 300.0), relay_rates, strict=True):
        runs.append(_run("boto3", base, {"client": 2.0, "seaweedfs": 3.0}))
        runs.append(_run("relay", relay, {"client": 0.5, "api": 4.0, "geo": 5.0,
                                          "seaweedfs": base / 100}))
        runs.append(_run("direct", relay * 1.1, {"client": 0.5, "geo": 5.0, "seaweedfs": 3.0}))
    return runs


def test_the_ratio_is_of_medians_and_the_budget_is_met_at_the_bar() -> None:
    data = s3_summary(_runs((160.0, 170.0, 20.0)))
    assert data["s3_boto3_mbps"] == 200.0
    assert data["s3_relay_mbps"] == 160.0
    assert data["s3_relay_vs_boto3"] == BUDGET
    assert data["s3_budget_met"] is True
    assert data["s3_runs"] == 3
    json.dumps(data)


def test_a_relay_below_the_bar_misses_the_budget_and_says_fail() -> None:
    runs = _runs((100.0, 150.0, 120.0))
    assert s3_summary(runs)["s3_budget_met"] is False
    last = s3_lines(runs).splitlines()[-1]
    assert last.split()[0] == "FAIL"
    assert last.endswith("measured 0.600 x")


def test_cpu_is_the_median_per_process_and_only_for_the_processes_watched() -> None:
    runs = _runs((160.0, 170.0, 180.0))
    assert cpu_per_gib(runs, "boto3") == {"client": 2.0, "seaweedfs": 3.0}
    assert cpu_per_gib(runs, "relay") == {"client": 0.5, "api": 4.0, "geo": 5.0,
                                          "seaweedfs": 2.0}
    row = next(line for line in s3_lines(runs).splitlines() if line.split()[0] == "boto3")
    assert row.split()[-4:] == ["2.00", "-", "-", "3.00"]


def test_a_variant_never_run_has_no_figures() -> None:
    runs = [run for run in _runs((160.0, 170.0, 180.0)) if run.variant != "direct"]
    assert median_mbps(runs, "direct") is None
    assert s3_summary(runs)["s3_direct_mbps"] is None
    assert not any(line.split()[0] == "direct" for line in s3_lines(runs).splitlines()[2:])


def test_nothing_measured_gives_no_keys() -> None:
    assert s3_summary([]) == {}
    assert s3_lines([]) == "S3 store: not measured"
