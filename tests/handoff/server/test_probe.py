"""The liveness probe of the worker and the sweeper, with its settings from the environment."""

import os
import time
from pathlib import Path

import pytest

from handoff.server import probe


@pytest.fixture
def heartbeats(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in [name for name in os.environ if name.startswith("HANDOFF_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HANDOFF_HEARTBEAT_DIR", str(tmp_path))
    monkeypatch.setenv("HANDOFF_PROBE_MAX_AGE", "1m")
    return tmp_path


def test_a_beat_lands_in_the_heartbeat_dir_and_passes_the_probe(heartbeats: Path) -> None:
    probe.beat("worker")
    assert (heartbeats / "handoff-worker.heartbeat").is_file()
    assert probe.main(["worker"]) == 0


def test_a_heartbeat_older_than_the_max_age_fails(
    heartbeats: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    probe.beat("gc")
    stale = time.time() - 61
    os.utime(heartbeats / "handoff-gc.heartbeat", (stale, stale))
    assert probe.main(["gc"]) == 1
    assert "gc: no heartbeat within 60s" in capsys.readouterr().err


def test_each_geo_replica_beats_on_its_own(heartbeats: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HANDOFF_REPLICA", "geo-1")
    probe.beat("worker")
    assert (heartbeats / "handoff-worker-geo-1.heartbeat").is_file()
    assert probe.main(["worker"]) == 0
    monkeypatch.setenv("HANDOFF_REPLICA", "geo-2")
    assert probe.main(["worker"]) == 1


def test_no_heartbeat_at_all_fails(heartbeats: Path) -> None:
    assert probe.main(["worker"]) == 1


def test_a_bad_max_age_names_the_variable(
    heartbeats: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    probe.beat("worker")
    monkeypatch.setenv("HANDOFF_PROBE_MAX_AGE", "soon")
    assert probe.main(["worker"]) == 2
    assert "HANDOFF_PROBE_MAX_AGE='soon' is invalid" in capsys.readouterr().err


def test_without_a_heartbeat_dir_the_system_temp_dir_is_used(
    heartbeats: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HANDOFF_HEARTBEAT_DIR")
    monkeypatch.setenv("TMPDIR", str(heartbeats / "tmp"))
    (heartbeats / "tmp").mkdir()
    monkeypatch.setattr(probe.tempfile, "tempdir", None)
    probe.beat("gc")
    assert (heartbeats / "tmp" / "handoff-gc.heartbeat").is_file()
