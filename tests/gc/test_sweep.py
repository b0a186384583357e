"""The sweep against a real store on disk, with real locks held by other processes."""

import logging
import os
import subprocess
import threading
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from geo_service.store import FileStore, UploadStore
from handoff.ids import new_upload_id
from handoff_gc.rules import Ttls
from handoff_gc.sweep import STALE_LOCK_AGE, Deletion, SweepReport, sweep
from tests.gc import PAYLOAD, age_file, age_tree, make_upload
from tests.geo_service.store import disk
from tests.geo_service.store.disk import LOCKS, RESULT, TRASH

TTLS = Ttls(orphan=100.0, partial=200.0, retention=1000.0)


@pytest.fixture
def store(tmp_path: Path) -> UploadStore:
    return FileStore(tmp_path / "uploads")


def deleted_ids(report: SweepReport) -> set[str]:
    return {deletion.upload_id for deletion in report.deletions}


@pytest.mark.parametrize(
    ("state", "age", "reason"),
    [
        ("complete", 150, "orphan"),
        ("receiving", 250, "partial"),
        ("claimed", 1500, "stale-claim"),
        ("done", 1500, "expired"),
        ("failed", 1500, "expired"),
    ],
)
def test_each_rule_deletes_what_outlived_its_ttl(
    store: UploadStore, state: str, age: float, reason: str
) -> None:
    old = make_upload(store, state, age)
    young = make_upload(store, state, age / 2)
    size = store.size(old)

    report = sweep(store, TTLS)

    assert report.deletions == [Deletion(old, reason, size)]
    assert report.counts == Counter({reason: 1})
    assert report.bytes_freed == size >= len(PAYLOAD)
    assert not store.exists(old)
    assert store.exists(young)
    assert report.errors == 0


def test_a_slow_upload_is_judged_by_its_last_byte(store: UploadStore) -> None:
    upload_id = make_upload(store, "receiving", age=10_000)
    age_file(disk.file_path(store, upload_id, 0), 5)

    report = sweep(store, TTLS)

    assert store.exists(upload_id)
    assert report.kept == Counter({"receiving": 1})


@pytest.mark.parametrize(("state", "age"), [("receiving", 10_000), ("done", 10_000)])
def test_an_upload_locked_by_another_process_survives(
    store: UploadStore, state: str, age: float, hold_lock: Callable[..., subprocess.Popen]
) -> None:
    upload_id = make_upload(store, state, age)

    holder = hold_lock(store, upload_id)
    report = sweep(store, TTLS)
    holder.kill()
    holder.wait()

    assert store.exists(upload_id)
    assert report.skipped_busy == 1
    assert report.deletions == []
    assert sweep(store, TTLS).counts.total() == 1


class RacingStore(FileStore):
    """A store where something happens to the upload just before the sweeper locks it."""

    def __init__(self, root: Path, before_lock: str) -> None:
        super().__init__(root)
        self.before_lock = before_lock

    def lock(self, upload_id: str, timeout: float = 0) -> AbstractContextManager[None]:
        if self.before_lock == "enqueue":
            self.mark_queued(upload_id, {"purpose": "raw"})
        elif self.before_lock == "remove":
            with super().lock(upload_id):
                self.remove(upload_id)
        return super().lock(upload_id, timeout)


def test_facts_are_read_again_under_the_lock(tmp_path: Path) -> None:
    store = RacingStore(tmp_path / "uploads", before_lock="enqueue")
    upload_id = make_upload(store, "complete", age=150)

    report = sweep(store, TTLS)

    assert store.exists(upload_id)
    assert report.deletions == []
    assert report.kept == Counter({"queued": 1})


def test_an_upload_removed_by_someone_else_is_not_an_error(tmp_path: Path) -> None:
    store = RacingStore(tmp_path / "uploads", before_lock="remove")
    upload_id = make_upload(store, "done", age=1500)

    report = sweep(store, TTLS)

    assert not store.exists(upload_id)
    assert report.deletions == []
    assert report.errors == 0


def test_dry_run_deletes_nothing(store: UploadStore) -> None:
    doomed = {make_upload(store, "done", 1500), make_upload(store, "complete", 150)}
    (store.root / TRASH / "leftover").mkdir()
    before = sorted(p.relative_to(store.root) for p in store.root.rglob("*"))

    report = sweep(store, TTLS, dry_run=True)

    assert deleted_ids(report) == doomed
    assert report.bytes_freed == sum(d.bytes for d in report.deletions) > 0
    assert all(store.exists(upload_id) for upload_id in doomed)
    after = sorted(p.relative_to(store.root) for p in store.root.rglob("*"))
    assert [p for p in after if p.parts[0] != LOCKS] == [p for p in before if p.parts[0] != LOCKS]


def test_an_interrupted_removal_is_finished(store: UploadStore) -> None:
    upload_id = make_upload(store, "done", age=0)
    size = store.size(upload_id)
    disk.folder(store, upload_id).rename(store.root / TRASH / f"{upload_id}.123")

    report = sweep(store, TTLS)

    assert list((store.root / TRASH).iterdir()) == []
    assert report.resumed_bytes == report.bytes_freed == size


def test_a_symlink_named_like_an_upload_is_never_followed(
    store: UploadStore, tmp_path: Path
) -> None:
    outside = FileStore(tmp_path / "outside")
    target_id = make_upload(outside, "done", age=1_000_000)
    link = store.root / new_upload_id()
    link.symlink_to(disk.folder(outside, target_id), target_is_directory=True)
    age_file(link, 1_000_000)
    before = sorted(disk.folder(outside, target_id).rglob("*"))

    report = sweep(store, TTLS)

    assert link.is_symlink()
    assert sorted(disk.folder(outside, target_id).rglob("*")) == before
    assert report.deletions == []
    assert report.strays == 1


def test_a_symlink_inside_an_upload_is_removed_not_its_target(
    store: UploadStore, tmp_path: Path
) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "data").write_bytes(b"keep me" * 1000)
    upload_id = make_upload(store, "done", age=0)
    (disk.folder(store, upload_id) / "link").symlink_to(precious, target_is_directory=True)
    age_tree(disk.folder(store, upload_id), 1500)

    report = sweep(store, TTLS)

    assert deleted_ids(report) == {upload_id}
    assert (precious / "data").read_bytes() == b"keep me" * 1000


def test_stray_entries_are_logged_and_left_alone(
    store: UploadStore, caplog: pytest.LogCaptureFixture
) -> None:
    (store.root / "notes.txt").write_text("hello")
    (store.root / "not-an-upload").mkdir()
    shouting = store.root / new_upload_id().upper()
    shouting.mkdir()
    for path in store.root.iterdir():
        age_tree(path, 1_000_000)

    with caplog.at_level(logging.WARNING, logger="handoff.gc"):
        report = sweep(store, TTLS)

    assert report.strays == 3
    assert all(p.exists() for p in (store.root / "notes.txt", shouting))
    assert {r.entry for r in caplog.records if hasattr(r, "entry")} == {
        "notes.txt",
        "not-an-upload",
        shouting.name,
    }


def test_stale_lock_files_are_removed(
    store: UploadStore, hold_lock: Callable[..., subprocess.Popen]
) -> None:
    locks = store.root / LOCKS

    def lock_file(upload_id: str, age: float) -> Path:
        path = locks / f"{upload_id}.lock"
        path.touch()
        age_file(path, age)
        return path

    stale = lock_file(new_upload_id(), STALE_LOCK_AGE + 60)
    young = lock_file(new_upload_id(), 5)
    live = lock_file(make_upload(store, "receiving"), STALE_LOCK_AGE + 60)
    held_id = new_upload_id()
    held = lock_file(held_id, STALE_LOCK_AGE + 60)
    foreign = lock_file("not-an-id", STALE_LOCK_AGE + 60)

    holder = hold_lock(store, held_id)
    age_file(held, STALE_LOCK_AGE + 60)
    report = sweep(store, TTLS)
    holder.kill()
    holder.wait()

    assert not stale.exists()
    assert all(p.exists() for p in (young, live, held, foreign))
    assert report.stale_locks == 1


def test_a_deleted_uploads_old_lock_file_goes_with_it(store: UploadStore) -> None:
    upload_id = make_upload(store, "done", age=1500)
    with store.lock(upload_id):
        pass
    age_file(store.root / LOCKS / f"{upload_id}.lock", 1500)

    report = sweep(store, TTLS)

    assert deleted_ids(report) == {upload_id}
    assert report.stale_locks == 1
    assert list((store.root / LOCKS).iterdir()) == []


def test_an_unreadable_upload_is_counted_and_the_rest_is_swept(store: UploadStore) -> None:
    broken = make_upload(store, "done", age=1500)
    (disk.folder(store, broken) / RESULT).write_text("{not json")
    expired = make_upload(store, "done", age=1500)

    report = sweep(store, TTLS)

    assert report.errors == 1
    assert deleted_ids(report) == {expired}
    assert store.exists(broken)


def test_each_deletion_is_logged_with_its_facts(
    store: UploadStore, caplog: pytest.LogCaptureFixture
) -> None:
    upload_id = make_upload(store, "complete", age=150)

    with caplog.at_level(logging.INFO, logger="handoff.gc"):
        report = sweep(store, TTLS)

    [record] = [r for r in caplog.records if getattr(r, "upload_id", None) == upload_id]
    assert (record.reason, record.bytes) == ("orphan", report.bytes_freed)
    assert upload_id in record.getMessage()


def test_a_stop_request_ends_the_sweep(store: UploadStore) -> None:
    upload_id = make_upload(store, "done", age=1500)
    stop = threading.Event()
    stop.set()

    report = sweep(store, TTLS, stop=stop)

    assert store.exists(upload_id)
    assert report.deletions == []
    assert report.interrupted


def test_concurrent_sweeps_delete_each_upload_once(store: UploadStore) -> None:
    doomed = {make_upload(store, "done", 1500) for _ in range(40)}
    kept = {make_upload(store, "queued", 10) for _ in range(10)}
    reports: list[SweepReport] = []
    start = threading.Barrier(4)

    def run() -> None:
        own_store = FileStore(store.root)
        start.wait()
        reports.append(sweep(own_store, TTLS))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    all_deleted = [d.upload_id for report in reports for d in report.deletions]
    assert len(reports) == 4
    assert sorted(all_deleted) == sorted(doomed)
    assert sum(report.errors for report in reports) == 0
    assert set(os.listdir(store.root)) == kept | {LOCKS, TRASH}


def test_a_queued_upload_is_never_deleted_however_old(store: UploadStore) -> None:
    upload_id = make_upload(store, "queued", age=10**7)

    report = sweep(store, TTLS)

    assert store.exists(upload_id)
    assert report.deletions == []
    assert report.kept == Counter({"queued": 1})
