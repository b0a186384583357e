"""The upload store and its lock, on a real temp folder with real OS locks."""

import ast
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from geo_service.store import FileStore, InvalidId, State, UploadExists, UploadMissing, UploadStore
from geo_service.store import filesystem as store_module
from geo_service.store import locks as locks_module
from geo_service.store.locks import Busy, held
from handoff.auth import ANONYMOUS
from handoff.ids import new_upload_id
from tests.geo_service.store import disk
from tests.geo_service.store.disk import (
    CANCELLED,
    CLAIM,
    JOB,
    LOCKS,
    MANIFEST,
    RESULT,
    TENANT,
    TRASH,
)

UPLOAD_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"

BAD_IDS = [
    UPLOAD_ID.upper(),
    "../x",
    "../" + UPLOAD_ID,
    UPLOAD_ID + "/..",
    "/etc/passwd",
    UPLOAD_ID[:-1] + "\x00",
    "a\x00b",
    "",
    ".",
    "..",
    LOCKS,
    TRASH,
    "x" * 10_000,
    UPLOAD_ID * 100,
]

@pytest.fixture
def store(tmp_path: Path) -> UploadStore:
    return FileStore(tmp_path / "uploads")


def sealed(store: UploadStore, upload_id: str = UPLOAD_ID, data: bytes = b"payload") -> str:
    store.create(upload_id)
    disk.file_path(store, upload_id, 0).write_bytes(data)
    store.seal(upload_id, {"id": upload_id, "files": [{"path": "files/0", "size": len(data)}]})
    return upload_id


def entries(folder: Path) -> set[str]:
    return {path.name for path in folder.iterdir()}


# -- ids -----------------------------------------------------------------------


def test_a_new_store_has_its_own_folders(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "a" / "b")
    assert store.root == (tmp_path / "a" / "b").resolve()
    assert entries(store.root) == {LOCKS, TRASH}
    assert list(store.upload_ids()) == []


def test_opening_an_existing_store_keeps_its_uploads(store: UploadStore) -> None:
    sealed(store)
    again = FileStore(store.root)
    assert list(again.upload_ids()) == [UPLOAD_ID]
    assert again.state(UPLOAD_ID) is State.COMPLETE


@pytest.mark.parametrize("bad", BAD_IDS)
def test_invalid_ids_are_refused_before_any_path_is_built(
    store: UploadStore, bad: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = sorted(p.relative_to(store.root.parent) for p in store.root.parent.rglob("*"))

    def no_lock(*args: object) -> None:
        raise AssertionError("a lock path was built")

    monkeypatch.setattr(locks_module, "held", no_lock)
    calls: list[Callable[[], object]] = [
        lambda: store.create(bad),
        lambda: store.open_writer(bad, 0),
        lambda: store.open_appender(bad, 0),
        lambda: store.read_file(bad, 0),
        lambda: store.local_path(bad, 0),
        lambda: store.lock(bad),
        lambda: store.take_over(bad, 0),
        lambda: store.stop_reason(bad),
        lambda: store.seal(bad, {}),
        lambda: store.mark_queued(bad, {}),
        lambda: store.claim(bad, {}),
        lambda: store.finish(bad, {"status": "done"}),
        lambda: store.remove(bad),
        lambda: store.exists(bad),
        lambda: store.manifest(bad),
        lambda: store.state(bad),
        lambda: store.status(bad),
        lambda: store.size(bad),
        lambda: store.last_activity(bad),
    ]
    for call in calls:
        with pytest.raises(InvalidId):
            call()
    after = sorted(p.relative_to(store.root.parent) for p in store.root.parent.rglob("*"))
    assert after == before


def test_invalid_id_is_a_value_error() -> None:
    assert issubclass(InvalidId, ValueError)


# -- life cycle ----------------------------------------------------------------


def test_create_makes_the_folder_and_refuses_a_repeat(store: UploadStore) -> None:
    store.create(UPLOAD_ID)
    folder = disk.folder(store, UPLOAD_ID)
    assert folder.is_dir()
    assert entries(folder) == {"files", TENANT}
    assert store.exists(UPLOAD_ID)
    with pytest.raises(UploadExists):
        store.create(UPLOAD_ID)
    assert store.local_path(UPLOAD_ID, 3) == folder / disk.FILES / "3"


def test_seal_writes_the_manifest_atomically_and_leaves_no_temp_file(store: UploadStore) -> None:
    store.create(UPLOAD_ID)
    manifest = {"id": UPLOAD_ID, "files": [{"name": "ä.zip", "size": 0}], "metadata": {"k": 1}}
    store.seal(UPLOAD_ID, manifest)
    assert store.manifest(UPLOAD_ID) == manifest
    assert json.loads((disk.folder(store, UPLOAD_ID) / MANIFEST).read_text()) == manifest
    assert entries(disk.folder(store, UPLOAD_ID)) == {"files", TENANT, MANIFEST}


def test_seal_goes_through_a_temp_file_and_a_rename(
    store: UploadStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.create(UPLOAD_ID)
    renames: list[tuple[str, str]] = []
    real_replace = os.replace

    def spy(src: str | Path, dst: str | Path) -> None:
        assert not Path(dst).exists(), "the manifest appeared before its rename"
        assert json.loads(Path(src).read_text()) == {"files": []}
        renames.append((Path(src).name, Path(dst).name))
        real_replace(src, dst)

    monkeypatch.setattr(store_module.os, "replace", spy)
    store.seal(UPLOAD_ID, {"files": []})
    assert len(renames) == 1
    temp, final = renames[0]
    assert final == MANIFEST
    assert temp != MANIFEST and temp.startswith(".")


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ([], State.RECEIVING),
        (["seal"], State.COMPLETE),
        (["seal", "queue"], State.QUEUED),
        (["seal", "queue", "claim"], State.CLAIMED),
        (["seal", "queue", "claim", "done"], State.DONE),
        (["seal", "queue", "claim", "failed"], State.FAILED),
        (["seal", "claim"], State.CLAIMED),
        (["seal", "done"], State.DONE),
        (["queue"], State.QUEUED),
        (["claim", "queue"], State.CLAIMED),
        (["failed", "claim", "queue"], State.FAILED),
    ],
)
def test_state_follows_the_markers(
    store: UploadStore, steps: list[str], expected: State
) -> None:
    store.create(UPLOAD_ID)
    actions = {
        "seal": lambda: store.seal(UPLOAD_ID, {"files": []}),
        "queue": lambda: store.mark_queued(UPLOAD_ID, {"purpose": "raw"}),
        "claim": lambda: store.claim(UPLOAD_ID, {"worker": "w1"}),
        "done": lambda: store.finish(UPLOAD_ID, {"status": "done"}),
        "failed": lambda: store.finish(UPLOAD_ID, {"status": "failed", "error": "bad"}),
    }
    for step in steps:
        actions[step]()
    assert store.state(UPLOAD_ID) is expected


def test_status_reports_every_marker(store: UploadStore) -> None:
    sealed(store)
    store.mark_queued(UPLOAD_ID, {"purpose": "raw"})
    assert store.status(UPLOAD_ID) == {
        "id": UPLOAD_ID,
        "state": "queued",
        "tenant": ANONYMOUS,
        "cancelled": False,
        "manifest": {"id": UPLOAD_ID, "files": [{"path": "files/0", "size": 7}]},
        "info": None,
        "offset": None,
        "job": {"purpose": "raw"},
        "claim": None,
        "result": None,
    }
    store.claim(UPLOAD_ID, {"worker": "w1"})
    store.finish(UPLOAD_ID, {"status": "done", "result": {"n": 1}})
    status = store.status(UPLOAD_ID)
    assert status["state"] == "done"
    assert status["claim"] == {"worker": "w1"}
    assert status["result"] == {"status": "done", "result": {"n": 1}}


def test_markers_and_state_of_a_missing_upload(store: UploadStore) -> None:
    with pytest.raises(UploadMissing):
        store.state(UPLOAD_ID)
    with pytest.raises(UploadMissing):
        store.status(UPLOAD_ID)
    for write in (store.mark_queued, store.claim, store.finish):
        with pytest.raises(UploadMissing):
            write(UPLOAD_ID, {"status": "done"})
    assert not store.exists(UPLOAD_ID)
    assert store.manifest(UPLOAD_ID) is None
    assert not (store.root / UPLOAD_ID).exists()


def test_markers_leave_no_temp_files(store: UploadStore) -> None:
    sealed(store)
    store.mark_queued(UPLOAD_ID, {"a": 1})
    store.claim(UPLOAD_ID, {"b": 2})
    store.finish(UPLOAD_ID, {"status": "done"})
    assert entries(disk.folder(store, UPLOAD_ID)) == {"files", TENANT, MANIFEST, JOB, CLAIM, RESULT}


def test_remove_returns_the_bytes_and_leaves_nothing(store: UploadStore) -> None:
    sealed(store, data=b"x" * 5000)
    disk.file_path(store, UPLOAD_ID, 1).write_bytes(b"y" * 3000)
    (disk.folder(store, UPLOAD_ID) / "extra").mkdir()
    (disk.folder(store, UPLOAD_ID) / "extra" / "left").write_bytes(b"z" * 100)
    folder = disk.folder(store, UPLOAD_ID)
    markers = sum((folder / name).stat().st_size for name in (MANIFEST, TENANT))
    assert store.size(UPLOAD_ID) == 8100 + markers

    freed = store.remove(UPLOAD_ID)

    assert freed == 8100 + markers
    assert not (store.root / UPLOAD_ID).exists()
    assert not store.exists(UPLOAD_ID)
    assert list((store.root / TRASH).iterdir()) == []
    assert list(store.upload_ids()) == []


def test_remove_of_a_missing_upload(store: UploadStore) -> None:
    with pytest.raises(UploadMissing):
        store.remove(UPLOAD_ID)


def test_a_removed_id_can_be_created_again(store: UploadStore) -> None:
    sealed(store)
    store.remove(UPLOAD_ID)
    store.create(UPLOAD_ID)
    assert store.state(UPLOAD_ID) is State.RECEIVING


def test_empty_trash_finishes_an_interrupted_removal(store: UploadStore) -> None:
    leftover = store.root / TRASH / f"{UPLOAD_ID}.123"
    (leftover / "files").mkdir(parents=True)
    (leftover / "files" / "0").write_bytes(b"a" * 700)
    (leftover / "manifest.json").write_bytes(b"{}")
    other = store.root / TRASH / f"{new_upload_id()}.456"
    other.mkdir()
    (other / "x").write_bytes(b"b" * 300)

    assert store.empty_trash() == 1002
    assert list((store.root / TRASH).iterdir()) == []
    assert store.empty_trash() == 0


def test_upload_ids_skip_strays_and_symlinks(store: UploadStore, tmp_path: Path) -> None:
    real = [new_upload_id(), new_upload_id()]
    for upload_id in real:
        store.create(upload_id)
    outside = tmp_path / "outside"
    outside.mkdir()
    linked = new_upload_id()
    (store.root / linked).symlink_to(outside, target_is_directory=True)
    (store.root / new_upload_id()).write_bytes(b"a file, not a folder")
    (store.root / UPLOAD_ID.upper()).mkdir()
    (store.root / "notes").mkdir()

    assert sorted(store.upload_ids()) == sorted(real)
    assert linked not in set(store.upload_ids())
    assert set(store.stray_entries()) == entries(store.root) - set(real) - {LOCKS, TRASH}


def test_last_activity_is_the_newest_mtime_inside(store: UploadStore) -> None:
    sealed(store)
    path = disk.file_path(store, UPLOAD_ID, 0)
    for item in [disk.folder(store, UPLOAD_ID), *disk.folder(store, UPLOAD_ID).rglob("*")]:
        os.utime(item, (1000, 1000))
    os.utime(path, (5000, 5000))
    assert store.last_activity(UPLOAD_ID) == 5000
    assert store.timeline(UPLOAD_ID).manifest_time == 1000
    assert store.timeline(UPLOAD_ID).result_time is None


def test_manifest_and_job_read_back_what_was_written(store: UploadStore) -> None:
    store.create(UPLOAD_ID)
    assert (store.manifest(UPLOAD_ID), store.job(UPLOAD_ID)) == (None, None)
    sealed_id = sealed(store, new_upload_id())
    store.mark_queued(sealed_id, {"message_id": "m-1"})
    assert store.manifest(sealed_id) == store.manifest(sealed_id)
    assert store.manifest(sealed_id)["files"] == [{"path": "files/0", "size": 7}]
    assert store.job(sealed_id) == {"message_id": "m-1"}


def test_a_timeline_has_each_steps_time_and_only_a_receiving_uploads_activity(
    store: UploadStore,
) -> None:
    store.create(UPLOAD_ID)
    disk.file_path(store, UPLOAD_ID, 0).write_bytes(b"half")
    for item in [disk.folder(store, UPLOAD_ID), *disk.folder(store, UPLOAD_ID).rglob("*")]:
        os.utime(item, (1000, 1000))
    os.utime(disk.file_path(store, UPLOAD_ID, 0), (2000, 2000))
    receiving = store.timeline(UPLOAD_ID)
    assert receiving == store_module.Timeline(State.RECEIVING, 2000, None, None, None, None)

    store.seal(UPLOAD_ID, {"files": []})
    store.mark_queued(UPLOAD_ID, {})
    store.claim(UPLOAD_ID, {})
    store.finish(UPLOAD_ID, {"status": "failed"})
    for stamp, name in enumerate((MANIFEST, JOB, CLAIM, RESULT), start=3):
        os.utime(disk.folder(store, UPLOAD_ID) / name, (stamp * 1000, stamp * 1000))
    finished = store.timeline(UPLOAD_ID)
    assert finished == store_module.Timeline(State.FAILED, None, 3000, 4000, 5000, 6000)


def test_a_timeline_of_a_link_or_a_file_is_missing(store: UploadStore, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    linked, a_file = new_upload_id(), new_upload_id()
    (store.root / linked).symlink_to(outside, target_is_directory=True)
    (store.root / a_file).write_bytes(b"not a folder")
    for upload_id in (linked, a_file, UPLOAD_ID):
        with pytest.raises(UploadMissing):
            store.timeline(upload_id)


def test_has_entry_sees_anything_at_the_uploads_path(store: UploadStore, tmp_path: Path) -> None:
    folder, a_file, dangling = new_upload_id(), new_upload_id(), new_upload_id()
    store.create(folder)
    (store.root / a_file).write_bytes(b"x")
    (store.root / dangling).symlink_to(tmp_path / "nowhere")
    assert [store.has_entry(i) for i in (folder, a_file, dangling, UPLOAD_ID)] == [
        True, True, True, False]


# -- locks ---------------------------------------------------------------------


def test_lock_lives_outside_the_upload(store: UploadStore) -> None:
    store.create(UPLOAD_ID)
    with store.lock(UPLOAD_ID):
        assert (store.root / LOCKS / f"{UPLOAD_ID}.lock").exists()
    assert entries(disk.folder(store, UPLOAD_ID)) == {"files", TENANT}


def test_lock_is_free_again_after_release(store: UploadStore) -> None:
    with store.lock(UPLOAD_ID):
        pass
    with store.lock(UPLOAD_ID):
        pass
    assert (store.root / LOCKS / f"{UPLOAD_ID}.lock").exists()


def test_lock_is_exclusive_even_within_one_process(store: UploadStore) -> None:
    with store.lock(UPLOAD_ID), pytest.raises(Busy), store.lock(UPLOAD_ID):
        pass


def test_lock_of_a_missing_upload_does_not_create_it(store: UploadStore) -> None:
    with store.lock(UPLOAD_ID):
        pass
    assert not store.exists(UPLOAD_ID)


def test_lock_held_by_another_process_is_busy_until_it_dies(
    store: UploadStore, hold_lock: Callable[[UploadStore, str], subprocess.Popen[str]]
) -> None:
    store.create(UPLOAD_ID)
    holder = hold_lock(store, UPLOAD_ID)

    with pytest.raises(Busy), store.lock(UPLOAD_ID):
        pass
    with pytest.raises(Busy), store.lock(UPLOAD_ID, timeout=0.2):
        pass

    holder.send_signal(signal.SIGKILL)
    assert holder.wait(timeout=10) == -signal.SIGKILL
    with store.lock(UPLOAD_ID, timeout=5):
        assert store.state(UPLOAD_ID) is State.RECEIVING


def test_another_upload_is_not_blocked_by_a_held_lock(
    store: UploadStore, hold_lock: Callable[[UploadStore, str], subprocess.Popen[str]]
) -> None:
    hold_lock(store, UPLOAD_ID)
    other = new_upload_id()
    with store.lock(other):
        assert (store.root / LOCKS / f"{other}.lock").exists()


def test_busy_names_the_lock_file(tmp_path: Path) -> None:
    lock_path = tmp_path / "x.lock"
    with held(lock_path), pytest.raises(Busy, match=r"x\.lock$"), held(lock_path, timeout=0.1):
        pass
    with held(lock_path, timeout=0.1):
        assert lock_path.exists()


# -- tenants and cancels ---------------------------------------------------------


def test_the_tenant_is_recorded_when_the_folder_is_made(store: UploadStore) -> None:
    """Before any byte or manifest exists, so a receiving upload is its tenant's alone."""
    store.create(UPLOAD_ID, "alice")
    assert store.tenant(UPLOAD_ID) == "alice"
    assert store.status(UPLOAD_ID)["tenant"] == "alice"
    assert store.state(UPLOAD_ID) is State.RECEIVING


def test_an_upload_without_a_tenant_record_is_anonymous(store: UploadStore) -> None:
    sealed(store)
    (disk.folder(store, UPLOAD_ID) / TENANT).unlink()
    assert store.tenant(UPLOAD_ID) == ANONYMOUS


def test_a_cancel_is_a_marker_that_keeps_the_state(store: UploadStore) -> None:
    """The writer or worker holding the lock reads it; the sweeper still sees the state."""
    store.create(UPLOAD_ID, "alice")
    assert not store.cancelled(UPLOAD_ID)
    store.mark_cancelled(UPLOAD_ID)
    assert store.cancelled(UPLOAD_ID)
    assert (disk.folder(store, UPLOAD_ID) / CANCELLED).is_file()
    assert store.state(UPLOAD_ID) is State.RECEIVING
    assert store.status(UPLOAD_ID)["cancelled"] is True


def test_a_missing_upload_cannot_be_cancelled(store: UploadStore) -> None:
    with pytest.raises(UploadMissing):
        store.mark_cancelled(UPLOAD_ID)
    assert not store.cancelled(UPLOAD_ID)


def test_taking_over_asks_the_holder_to_stop_and_gets_the_lock_once_it_lets_go(
        store: UploadStore) -> None:
    store.create(UPLOAD_ID)
    holder = store.lock(UPLOAD_ID)
    holder.__enter__()
    asked: list[bool] = []

    def let_go_when_asked() -> None:
        while store.stop_reason(UPLOAD_ID) is None:
            time.sleep(0.01)
        asked.append(True)
        holder.__exit__(None, None, None)

    watcher = threading.Thread(target=let_go_when_asked)
    watcher.start()
    with store.take_over(UPLOAD_ID, timeout=30):
        assert asked == [True]
        assert store.stop_reason(UPLOAD_ID) is None
    watcher.join()


def test_taking_over_from_a_holder_that_stays_is_busy_and_asks_no_one_after(
        store: UploadStore) -> None:
    store.create(UPLOAD_ID)
    with store.lock(UPLOAD_ID):
        with pytest.raises(Busy), store.take_over(UPLOAD_ID, timeout=0.2):
            pass
        assert store.stop_reason(UPLOAD_ID) is None


def test_lock_files_are_those_named_after_an_upload_id_with_their_mtimes(
    store: UploadStore,
) -> None:
    ids = [new_upload_id(), new_upload_id()]
    for stamp, upload_id in enumerate(ids, start=1):
        with store.lock(upload_id):
            pass
        os.utime(store.root / LOCKS / f"{upload_id}.lock", (stamp * 1000, stamp * 1000))
    (store.root / LOCKS / "not-an-id.lock").touch()
    (store.root / LOCKS / f"{UPLOAD_ID}.txt").touch()
    (store.root / LOCKS / f"{UPLOAD_ID.upper()}.lock").touch()
    (store.root / LOCKS / f"{UPLOAD_ID}.lock").mkdir()

    assert set(store.lock_files()) == {store_module.LockFile(ids[0], 1000.0),
                                       store_module.LockFile(ids[1], 2000.0)}


def test_remove_lock_file_deletes_only_that_uploads_lock_file(store: UploadStore) -> None:
    other = new_upload_id()
    for upload_id in (UPLOAD_ID, other):
        with store.lock(upload_id):
            pass
    with store.lock(UPLOAD_ID):
        store.remove_lock_file(UPLOAD_ID)
    store.remove_lock_file(UPLOAD_ID)
    assert [lock.upload_id for lock in store.lock_files()] == [other]
    with pytest.raises(InvalidId):
        store.remove_lock_file("../" + UPLOAD_ID)


# -- who knows the layout --------------------------------------------------------

PRODUCT = ("api_service", "geo_service", "gc", "handoff")
LAYOUT_NAMES = {name for name, value in vars(store_module).items()
                if name.isupper() and isinstance(value, str)}


def _layout_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    return {alias.name for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
            and node.module in ("geo_service.store", "geo_service.store.filesystem")
            for alias in node.names if alias.name in LAYOUT_NAMES}


def test_only_the_store_knows_the_layout_on_disk() -> None:
    """Product code asks the store, so a change of layout is a change of one module."""
    root = Path(store_module.__file__).resolve().parents[2]
    sources = [path for package in PRODUCT for path in (root / package).rglob("*.py")
               if path != Path(store_module.__file__).resolve()]
    assert len(sources) > 20 and {"MANIFEST", "LOCKS"} <= LAYOUT_NAMES
    assert {str(p.relative_to(root)): names for p in sources
            if (names := _layout_imports(p))} == {}


def test_a_store_whose_root_went_away_says_so(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "uploads")
    assert store.problem() is None
    (tmp_path / "uploads").rename(tmp_path / "elsewhere")
    assert store.problem() == f"{tmp_path / 'uploads'} is missing"
    assert store.free_bytes() == 0
