"""The geo replica comparison's figures, from made-up rounds: no stack is started."""

import json

from bench.client import Transfer
from bench.report import replica_lines, replica_summary
from bench.scenarios import ConcurrentRound, ReplicaRound
from handoff.units import GiB, MiB


def _round(replicas: int, wall: float, cpu: float, placed: dict[str, int]) -> ReplicaRound:
    transfers = [Transfer("relay", 128 * MiB, wall) for _ in range(8)]
    return ReplicaRound(replicas, ConcurrentRound("relay", transfers, wall, 40.0), cpu, placed)


ONE = {"geo": 8}
SPREAD = {"geo-0": 3, "geo-1": 3, "geo-2": 2}


def _rounds() -> list[ReplicaRound]:
    """Three rounds per stack: 1 GiB each, aggregate 1000, 500, 250 MB/s by wall time."""
    size = 8 * 128 * MiB
    walls = [size / rate / 1e6 for rate in (1000, 500, 250)]
    return [found for wall, cpu in zip(walls, (4.0, 6.0, 8.0), strict=True)
            for found in (_round(1, wall, cpu, ONE), _round(3, wall * 2, cpu + 1, SPREAD))]


def test_a_round_costs_the_stacks_cpu_per_gib_uploaded() -> None:
    found = _round(3, 1.0, 3.0, SPREAD)
    assert found.cpu_per_gib == 3.0
    assert sum(t.size for t in found.uploads.transfers) == GiB


def test_a_round_is_spread_when_every_replica_holds_some_and_none_is_missing() -> None:
    assert _round(3, 1.0, 1.0, SPREAD).spread
    assert not _round(3, 1.0, 1.0, {"geo-0": 4, "geo-1": 4, "geo-2": 0}).spread
    assert not _round(3, 1.0, 1.0, {"geo-0": 3, "geo-1": 3, "geo-2": 1}).spread


def test_the_summary_compares_medians_and_sums_the_placement() -> None:
    data = replica_summary(_rounds())
    assert data["replicas_1_mbps"] == 500.0
    assert data["replicas_3_mbps"] == 250.0
    assert data["replicas_3_vs_1"] == 0.5
    assert data["replicas_cpu_s_per_gib"] == {"1": 6.0, "3": 7.0}
    assert data["replicas_3_placed"] == {"geo-0": 9, "geo-1": 9, "geo-2": 6}
    assert data["replicas_3_spread"] is True
    assert "replicas_1_placed" not in data
    json.dumps(data)


def test_one_round_not_spread_marks_the_comparison() -> None:
    rounds = [*_rounds(), _round(3, 1.0, 1.0, {"geo-0": 8, "geo-1": 0, "geo-2": 0})]
    assert replica_summary(rounds)["replicas_3_spread"] is False
    assert "(NOT spread)" in replica_lines(rounds)


def test_nothing_measured_gives_no_keys() -> None:
    assert replica_summary([]) == {}
    assert replica_lines([]) == "Geo replicas: not measured"


def test_the_table_has_a_row_per_stack_and_no_verdict() -> None:
    text = replica_lines(_rounds())
    rows = text.splitlines()
    assert rows[0].startswith("Geo replicas: 8 x 128 MiB relayed at once, 3 rounds per stack")
    assert rows[2].split()[:3] == ["1", "500.0", "6.00"]
    assert rows[3].split()[:3] == ["3", "250.0", "7.00"]
    assert "3/3/2, 3/3/2, 3/3/2 (every round spread over all replicas)" in rows[3]
    assert rows[-1] == "  all 48 uploads answered 202"
    assert "PASS" not in text and "FAIL" not in text
