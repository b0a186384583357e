"""The master's health answers, from fake workers and verdict files: no gunicorn here."""

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from handoff.server.health import (
    HealthServer,
    ReadinessReporter,
    liveness,
    read_report,
    readiness,
    report_path,
)
from tests.support.problems import ABOUT_BLANK, assert_problem


@dataclass
class FakeWorker:
    pid: int
    age: float = 0.0


def test_alive_when_every_worker_beat_within_the_timeout() -> None:
    assert liveness([0.5, 119.0], timeout=120) == {}


def test_not_alive_without_workers_or_with_a_late_one() -> None:
    assert "no worker" in liveness([], timeout=120)["workers"]
    assert "1 of 2" in liveness([1.0, 121.0], timeout=120)["workers"]


def test_ready_while_a_worker_found_everything_reachable_lately() -> None:
    failing = {"time": 99.0, "failures": {"geo": "timed out"}, "last_ok": 90.0}
    assert readiness([failing, None], now=100.0) == {}


def test_not_ready_says_the_freshest_failure_once_no_success_is_recent() -> None:
    older = {"time": 95.0, "failures": {"redis": "down"}, "last_ok": 10.0}
    newer = {"time": 99.0, "failures": {"geo": "x"}, "last_ok": None}
    assert readiness([older, newer], now=100.0) == {"geo": "x"}


def test_not_ready_when_no_verdict_is_fresh() -> None:
    stale = {"time": 10.0, "failures": {}}
    assert "lately" in readiness([stale, None], now=100.0, max_age=15)["workers"]


def test_a_reporter_writes_its_verdict_where_the_master_reads_it(tmp_path: Path) -> None:
    ReadinessReporter(tmp_path, lambda: {"geo": "refused"}, clock=lambda: 42.0).report()
    assert read_report(tmp_path, os.getpid()) == {"time": 42.0, "failures": {"geo": "refused"},
                                                  "last_ok": None}
    assert list(tmp_path.iterdir()) == [report_path(tmp_path, os.getpid())]


def test_a_check_that_raises_is_reported_as_a_failure(tmp_path: Path) -> None:
    def broken() -> dict[str, str]:
        raise RuntimeError("boom")

    ReadinessReporter(tmp_path, broken).report()
    report = read_report(tmp_path, os.getpid())
    assert report is not None and report["failures"] == {"check": "RuntimeError: boom"}


def test_a_half_written_or_missing_verdict_is_none(tmp_path: Path) -> None:
    report_path(tmp_path, 7).write_text('{"time": ')
    assert read_report(tmp_path, 7) is None
    assert read_report(tmp_path, 8) is None


@pytest.fixture
def served(tmp_path: Path):
    workers = [FakeWorker(101), FakeWorker(102)]
    server = HealthServer("127.0.0.1", 0, lambda: workers, lambda w: w.age,
                          timeout=120, folder=tmp_path)
    server.start()
    try:
        yield f"http://127.0.0.1:{server.port}", workers, tmp_path
    finally:
        server.stop()


def test_the_listener_answers_alive_and_ready_over_http(served) -> None:
    url, _, folder = served
    report_path(folder, 102).write_text(json.dumps({"time": 1e12, "failures": {},
                                                    "last_ok": 1e12}))
    assert requests.get(url + "/healthz", timeout=5).json() == {"status": "ok"}
    assert requests.get(url + "/readyz", timeout=5).status_code == 200


def test_the_listener_says_what_is_wrong(served) -> None:
    url, workers, _ = served
    not_ready = requests.get(url + "/readyz", timeout=5)
    assert not_ready.status_code == 503
    assert "lately" in not_ready.json()["failures"]["workers"]
    workers[0].age = 500.0
    dead = requests.get(url + "/healthz", timeout=5)
    assert (dead.status_code, dead.json()["status"]) == (503, "unavailable")


def test_other_paths_and_methods_get_problems(served) -> None:
    url, _, _ = served
    assert_problem(requests.get(url + "/metrics", timeout=5), 404, ABOUT_BLANK)
    assert requests.post(url + "/healthz", timeout=5).status_code == 405


def test_a_reporter_remembers_its_last_success_through_a_failure(tmp_path: Path) -> None:
    answers = iter([{}, {"geo": "timed out"}])
    times = iter([10.0, 12.0])
    reporter = ReadinessReporter(tmp_path, lambda: next(answers), clock=lambda: next(times))
    reporter.report()
    reporter.report()
    assert read_report(tmp_path, os.getpid()) == {"time": 12.0, "failures": {"geo": "timed out"},
                                                  "last_ok": 10.0}
