"""Which store the soak runs on: HANDOFF_SOAK_STORE."""

import pytest

from soak.objects import chosen_store


def test_a_folder_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HANDOFF_SOAK_STORE", raising=False)
    assert chosen_store() == "file"


def test_s3_is_chosen_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HANDOFF_SOAK_STORE", "s3")
    assert chosen_store() == "s3"


def test_an_unknown_store_stops_the_run_naming_the_variable(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HANDOFF_SOAK_STORE", "az")
    with pytest.raises(SystemExit, match="HANDOFF_SOAK_STORE"):
        chosen_store()
