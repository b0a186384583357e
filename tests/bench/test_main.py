"""``python -m bench``'s settings: the one-comparison switch."""

import pytest

from bench.__main__ import Config


def test_the_default_run_includes_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HANDOFF_BENCH_ONLY", raising=False)
    assert Config.from_env().only == ""


def test_replicas_only_runs_the_comparison_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HANDOFF_BENCH_ONLY", "replicas")
    assert Config.from_env().only == "replicas"


def test_s3_only_runs_the_store_comparison_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HANDOFF_BENCH_ONLY", "s3")
    assert Config.from_env().only == "s3"


def test_an_unknown_choice_stops_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HANDOFF_BENCH_ONLY", "relay")
    with pytest.raises(SystemExit, match="HANDOFF_BENCH_ONLY"):
        Config.from_env()
