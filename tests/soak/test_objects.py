"""Which store the soak runs on (HANDOFF_SOAK_STORE), and what it counts as left in a bucket."""

from pathlib import Path

import pytest

from geo_service.store import ObjectStore, open_store_at
from handoff.ids import new_upload_id
from soak.objects import chosen_store, unfinished_writes


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


def test_a_part_upload_left_pending_in_the_bucket_is_a_leftover(s3_store_url: str) -> None:
    store = open_store_at(s3_store_url)
    assert isinstance(store, ObjectStore)
    key = f"{new_upload_id()}/files/0"
    handle = store.bucket.begin(key)
    assert unfinished_writes(store) == [f"part upload {key}"]
    store.bucket.abort(key, handle)
    assert unfinished_writes(store) == []


def test_a_folder_store_has_no_part_uploads(tmp_path: Path) -> None:
    assert unfinished_writes(open_store_at(tmp_path)) == []
