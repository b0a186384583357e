"""One run of the processing job on a real store, with real locks."""

import json
import sys
import types
from collections.abc import Callable
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest

from geo_service.intake.receive import Receiver
from geo_service.jobs import run as jobs
from geo_service.jobs.run import Retry
from geo_service.jobs.scratch import Scratch
from geo_service.store import FileStore, InvalidId, LockWait, State, UploadStore
from handoff.announce import ACTOR_CHANNEL, WEBHOOK_ACTOR, WEBHOOK_CHANNEL, Announcer, Channel
from handoff.config import Settings
from handoff.form import upload_limits
from handoff.processors import GROUP, Job, Registry, ValidationFailed
from tests.geo_service.jobs.downloading import RemoteStore
from tests.geo_service.store import disk
from tests.geo_service.store.disk import CLAIM, RESULT
from tests.support.multipart_bodies import BOUNDARY, upload_body
from tests.support.senders import RecordingSender

UPLOAD_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"
FILES = [("a.bin", bytes(range(256)) * 8), ("b.txt", b"hello\r\n" * 100)]
FAKE = "fake"
FAKE_MODULE = "handoff_fake_processor"
# What the worker builds from entry points, with the fake processor registered the same way.
PROCESSORS = Registry(
    [EntryPoint("raw", "geo_service.processors.raw:process", GROUP),
     EntryPoint(FAKE, f"{FAKE_MODULE}:process", GROUP)],
    {"HANDOFF_PROCESSOR_FAKE_COLOUR": "blue", "HANDOFF_PROCESSOR_RAW_X": "1"},
)

@pytest.fixture
def store(tmp_path: Path) -> UploadStore:
    return FileStore(tmp_path / "uploads")


@pytest.fixture
def sealed(store: UploadStore) -> dict[str, Any]:
    return seal(store)


def seal(store: UploadStore) -> dict[str, Any]:
    """A complete upload of ``FILES``, written the way the geo service writes it."""
    store.create(UPLOAD_ID)
    receiver = Receiver(store, UPLOAD_ID, {"raw", FAKE},
                        upload_limits(Settings(max_file_size=10**6, max_upload_size=10**6)))
    manifest = receiver.receive([upload_body(FILES)], BOUNDARY)
    store.mark_queued(UPLOAD_ID, {"purpose": "raw"})
    return manifest


@pytest.fixture
def fake_processor(monkeypatch: pytest.MonkeyPatch) -> Callable[[Callable[[Job], Any]], None]:
    """Make the ``fake`` entry point's module importable, running the given function.

    The registry imports the module through the entry point like any other;
    its ``process`` calls whatever this test installed.
    """
    monkeypatch.setitem(sys.modules, _FAKE.__name__, _FAKE)

    def install(process: Callable[[Job], Any]) -> None:
        monkeypatch.setitem(_FAKE.__dict__, "installed", process)

    return install


_FAKE = types.ModuleType(FAKE_MODULE)
_FAKE.__dict__["process"] = lambda job: _FAKE.__dict__["installed"](job)


@pytest.fixture
def lock_elsewhere(store: UploadStore, hold_lock: Callable[..., Any]) -> Callable[[], None]:
    """Hold the upload's lock from another process until the test ends."""
    return lambda: hold_lock(store, UPLOAD_ID) and None


def scratch_beside(store: UploadStore) -> Scratch:
    assert isinstance(store, FileStore)
    return Scratch(store.root.parent / "scratch")


def run(store: UploadStore, purpose: str = "raw", **kwargs: Any) -> str:
    kwargs.setdefault("scratch", scratch_beside(store))
    return jobs.run(store, UPLOAD_ID, purpose, {"k": "v"}, PROCESSORS, **kwargs)


def result_of(store: UploadStore) -> dict[str, Any]:
    result = store.result(UPLOAD_ID)
    assert result is not None
    return result


def flip_a_byte(store: UploadStore, index: int) -> None:
    path = disk.file_path(store, UPLOAD_ID, index)
    data = bytearray(path.read_bytes())
    data[10] ^= 0xFF
    path.write_bytes(bytes(data))


def test_raw_upload_ends_done_with_its_result(store: UploadStore, sealed: dict[str, Any]) -> None:
    assert run(store) == "done"
    assert store.state(UPLOAD_ID) is State.DONE
    result = result_of(store)
    assert result["status"] == "done"
    assert result["result"] == {
        "files": [{"name": f["name"], "size": f["size"], "sha256": f["sha256"]}
                  for f in sealed["files"]],
        "verified": True,
    }
    # The job's own time: from its claim to its result (give or take the rounding to 1 ms).
    claimed_at = store.claimed(UPLOAD_ID)["claimed_at"]  # type: ignore[index]
    assert 0 <= result["seconds"] <= result["finished_at"] - claimed_at + 0.001
    assert "error" not in result
    claim = store.claimed(UPLOAD_ID)
    assert claim is not None
    assert claim["worker"] == jobs.worker_id()


def test_a_second_run_is_a_no_op(store: UploadStore, sealed: dict[str, Any]) -> None:
    assert run(store) == "done"
    folder = disk.folder(store, UPLOAD_ID)
    before = {name: ((folder / name).stat().st_mtime_ns, (folder / name).read_bytes())
              for name in (RESULT, CLAIM)}

    assert run(store) == "done"
    assert run(store, final_attempt=True) == "done"

    after = {name: ((folder / name).stat().st_mtime_ns, (folder / name).read_bytes())
             for name in (RESULT, CLAIM)}
    assert after == before


def test_a_failed_upload_stays_failed_on_redelivery(
    store: UploadStore, sealed: dict[str, Any]
) -> None:
    assert run(store, purpose="pdf") == "failed"
    before = result_of(store)
    assert run(store) == "failed"
    assert result_of(store) == before


@pytest.mark.parametrize("index", [0, 1])
def test_a_tampered_file_fails_naming_the_file(
    store: UploadStore, sealed: dict[str, Any], index: int
) -> None:
    flip_a_byte(store, index)
    assert run(store) == "failed"
    result = result_of(store)
    assert result["status"] == "failed"
    assert result["error"].startswith(repr(FILES[index][0]) + ": stored")
    assert "result" not in result


def test_a_tampered_file_never_reaches_the_processor(
    store: UploadStore, sealed: dict[str, Any], fake_processor: Callable[..., None]
) -> None:
    calls: list[Job] = []
    fake_processor(calls.append)
    flip_a_byte(store, 1)
    assert run(store, purpose=FAKE) == "failed"
    assert calls == []


def test_a_missing_stored_file_fails_at_once(store: UploadStore, sealed: dict[str, Any]) -> None:
    disk.file_path(store, UPLOAD_ID, 1).unlink()
    assert run(store) == "failed"
    assert "'b.txt'" in result_of(store)["error"]


def test_an_unknown_purpose_fails(store: UploadStore, sealed: dict[str, Any]) -> None:
    assert run(store, purpose="pdf") == "failed"
    assert result_of(store)["error"] == "no processor for purpose 'pdf'"


def test_a_missing_upload_is_missing(store: UploadStore) -> None:
    assert run(store) == "missing"
    assert not store.exists(UPLOAD_ID)


def test_an_invalid_id_is_refused(store: UploadStore) -> None:
    with pytest.raises(InvalidId):
        jobs.run(store, "../" + UPLOAD_ID, "raw", {}, PROCESSORS, scratch=scratch_beside(store))


def test_an_upload_locked_elsewhere_is_retried(
    store: UploadStore,
    sealed: dict[str, Any],
    lock_elsewhere: Callable[[], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(LockWait, "WORKER", 0.2)
    lock_elsewhere()
    with pytest.raises(Retry, match=f"upload {UPLOAD_ID} stayed locked"):
        run(store)
    assert store.state(UPLOAD_ID) is State.QUEUED
    assert store.claimed(UPLOAD_ID) is None


def test_a_receiving_upload_is_retried(store: UploadStore) -> None:
    store.create(UPLOAD_ID)
    disk.file_path(store, UPLOAD_ID, 0).write_bytes(b"half")
    with pytest.raises(Retry, match="has no manifest yet"):
        run(store)
    assert store.state(UPLOAD_ID) is State.RECEIVING
    assert store.claimed(UPLOAD_ID) is None


def test_the_processor_gets_the_job(
    store: UploadStore, sealed: dict[str, Any], fake_processor: Callable[..., None]
) -> None:
    seen: list[tuple[Job, list[bytes], bool, bool]] = []

    def process(job: Job) -> dict[str, Any]:
        empty = not any(job.work_dir.iterdir())
        (job.work_dir / "scratch").write_bytes(b"temp")
        seen.append((job, [file.path.read_bytes() for file in job.files],
                     (disk.folder(store, UPLOAD_ID) / CLAIM).exists(), empty))
        return {"answer": 42}

    fake_processor(process)
    assert run(store, purpose=FAKE) == "done"
    ((job, contents, claimed, empty),) = seen
    assert (job.upload_id, job.purpose, job.metadata) == (UPLOAD_ID, FAKE, {"k": "v"})
    assert job.settings == {"colour": "blue"}, "only its own purpose's settings"
    assert [file.entry for file in job.files] == sealed["files"]
    assert [(file.name, file.size, file.sha256) for file in job.files] == [
        (entry["name"], entry["size"], entry["sha256"]) for entry in sealed["files"]]
    assert all(file.path.parent == disk.file_path(store, UPLOAD_ID).parent for file in job.files)
    assert contents == [data for _, data in FILES]
    assert claimed, "the claim is recorded before the processor runs"
    assert empty, "the scratch folder exists and is empty"
    assert result_of(store)["result"] == {"answer": 42}
    assert not job.work_dir.exists()


@pytest.mark.parametrize(("returned", "error"), [
    (None, "the processor returned NoneType, not a JSON object"),
    ([1, 2], "the processor returned list, not a JSON object"),
    ({"when": object()}, "the processor's result is not storable as JSON"),
    ({"area": float("nan")}, "the processor's result is not storable as JSON"),
])
def test_a_result_that_cannot_be_stored_fails_at_once(
    store: UploadStore, sealed: dict[str, Any], fake_processor: Callable[..., None],
    returned: Any, error: str,
) -> None:
    """Running it again would return the same thing, so it is not retried."""
    fake_processor(lambda job: returned)

    assert run(store, purpose=FAKE) == "failed"
    assert result_of(store)["error"].startswith(error)


def test_a_validation_failure_fails_at_once(
    store: UploadStore, sealed: dict[str, Any], fake_processor: Callable[..., None]
) -> None:
    def process(job: Job) -> dict[str, Any]:
        raise ValidationFailed("not a shapefile: no .shp member")

    fake_processor(process)
    assert run(store, purpose=FAKE) == "failed"
    assert result_of(store)["error"] == "not a shapefile: no .shp member"


def test_a_crashing_processor_propagates_then_gives_up_on_the_last_attempt(
    store: UploadStore, sealed: dict[str, Any], fake_processor: Callable[..., None]
) -> None:
    attempts: list[Path] = []

    def process(job: Job) -> dict[str, Any]:
        attempts.append(job.work_dir)
        (job.work_dir / "partial").write_bytes(b"half")
        raise ConnectionError("tile server down")

    fake_processor(process)
    with pytest.raises(ConnectionError, match="tile server down"):
        run(store, purpose=FAKE)
    assert store.state(UPLOAD_ID) is State.CLAIMED
    assert store.result(UPLOAD_ID) is None
    assert not attempts[0].exists()

    with pytest.raises(ConnectionError):
        run(store, purpose=FAKE, final_attempt=True)
    assert store.state(UPLOAD_ID) is State.FAILED
    assert result_of(store)["error"] == "gave up: tile server down"
    assert len(attempts) == 2

    assert run(store, purpose=FAKE) == "failed"
    assert len(attempts) == 2


def test_a_claimed_upload_is_processed_again_after_a_crash(
    store: UploadStore, sealed: dict[str, Any]
) -> None:
    store.claim(UPLOAD_ID, {"worker": "dead-host:1:1", "claimed_at": 0})
    assert run(store) == "done"
    claim = store.claimed(UPLOAD_ID)
    assert claim is not None
    assert claim["worker"] == jobs.worker_id()


def test_the_lock_is_released_after_every_outcome(
    store: UploadStore, sealed: dict[str, Any], fake_processor: Callable[..., None]
) -> None:
    def process(job: Job) -> dict[str, Any]:
        raise RuntimeError("boom")

    fake_processor(process)
    with pytest.raises(RuntimeError):
        run(store, purpose=FAKE)
    with store.lock(UPLOAD_ID):
        pass
    assert run(store) == "done"
    with store.lock(UPLOAD_ID):
        assert json.loads((disk.folder(store, UPLOAD_ID) / RESULT).read_text())["status"] == "done"


def test_a_cancelled_upload_is_removed_not_processed(
    store: UploadStore, sealed: dict[str, Any], fake_processor: Callable[..., None]
) -> None:
    """A cancel that reached a queued upload: the job skips it and removes its bytes."""
    calls: list[str] = []
    fake_processor(lambda job: calls.append(job.upload_id))
    store.mark_cancelled(UPLOAD_ID)

    assert run(store, FAKE) == "cancelled"
    assert calls == []
    assert not store.exists(UPLOAD_ID)
    assert run(store, FAKE) == "missing"


@pytest.fixture
def announced() -> tuple[RecordingSender, Announcer]:
    """An announcer on both channels whose broker records every message."""
    sender = RecordingSender()
    channels = {ACTOR_CHANNEL: Channel("handoff-events", "upload_finished"),
                WEBHOOK_CHANNEL: Channel("handoff-webhooks", WEBHOOK_ACTOR)}
    return sender, Announcer(channels, sender)


def test_a_finished_job_is_announced_once_however_often_it_is_delivered(
    store: UploadStore, sealed: dict[str, Any], announced: tuple[RecordingSender, Announcer]
) -> None:
    sender, announcer = announced
    assert run(store, announcer=announcer) == "done"
    assert run(store, announcer=announcer) == "done"
    assert run(store, announcer=announcer, final_attempt=True) == "done"

    assert sender.actors() == ["upload_finished", WEBHOOK_ACTOR]
    event = sender.sent[0][2][0]
    assert (event["id"], event["status"], event["purpose"]) == (UPLOAD_ID, "done", "raw")
    assert event["result"] == result_of(store)["result"]
    assert store.announcement(UPLOAD_ID) is None


def test_a_failure_is_announced_once_with_its_error(
    store: UploadStore, sealed: dict[str, Any], announced: tuple[RecordingSender, Announcer]
) -> None:
    sender, announcer = announced
    assert run(store, purpose="pdf", announcer=announcer) == "failed"
    assert run(store, announcer=announcer) == "failed"
    assert [args[0]["error"] for _, _, args in sender.sent] == [result_of(store)["error"]] * 2


def test_only_the_last_attempt_of_a_crashing_job_is_announced(
    store: UploadStore, sealed: dict[str, Any], fake_processor: Callable[..., None],
    announced: tuple[RecordingSender, Announcer]
) -> None:
    sender, announcer = announced

    def process(job: Job) -> dict[str, Any]:
        raise ConnectionError("tile server down")

    fake_processor(process)
    with pytest.raises(ConnectionError):
        run(store, purpose=FAKE, announcer=announcer)
    assert sender.sent == []
    with pytest.raises(ConnectionError):
        run(store, purpose=FAKE, announcer=announcer, final_attempt=True)
    assert [args[0]["status"] for _, _, args in sender.sent] == ["failed", "failed"]


def test_a_broker_outage_does_not_stop_the_outcome_being_recorded(
    store: UploadStore, sealed: dict[str, Any]
) -> None:
    down = RecordingSender(down_for=frozenset({"upload_finished"}))
    announcer = Announcer({ACTOR_CHANNEL: Channel("handoff-events", "upload_finished")}, down)
    assert run(store, announcer=announcer) == "done"
    assert store.state(UPLOAD_ID) is State.DONE
    kept = store.announcement(UPLOAD_ID)
    assert kept is not None
    assert kept["pending"] == [ACTOR_CHANNEL]
    assert kept["event"]["status"] == "done"


# -- a store without local files: the worker downloads into its scratch space ------------


@pytest.fixture
def remote(tmp_path: Path) -> RemoteStore:
    store = RemoteStore(tmp_path / "uploads")
    seal(store)
    return store


def test_downloaded_files_reach_the_processor_read_once_and_go_after(
    remote: RemoteStore, fake_processor: Callable[..., None]
) -> None:
    seen: list[tuple[list[Path], list[bytes]]] = []
    def process(job: Job) -> dict[str, Any]:
        seen.append(([file.path for file in job.files],
                     [file.path.read_bytes() for file in job.files]))
        return {"read": len(job.files)}

    fake_processor(process)
    remote.reads.clear()
    scratch = scratch_beside(remote)

    assert run(remote, purpose=FAKE, scratch=scratch) == "done"

    ((paths, contents),) = seen
    assert paths == [scratch.root / UPLOAD_ID / "files" / "0",
                     scratch.root / UPLOAD_ID / "files" / "1"]
    assert contents == [data for _, data in FILES]
    assert remote.reads == [0, 1], "each file read once: copied and verified together"
    assert [entry.name for entry in scratch.root.iterdir()] == [".lock"]


def test_a_corrupted_download_fails_and_never_reaches_the_processor(
    remote: RemoteStore, fake_processor: Callable[..., None]
) -> None:
    calls: list[Job] = []
    fake_processor(calls.append)
    flip_a_byte(remote, 0)
    assert run(remote, purpose=FAKE) == "failed"
    assert result_of(remote)["error"].startswith(repr(FILES[0][0]) + ": stored")
    assert calls == []


def test_a_job_too_large_for_the_scratch_limit_fails_with_the_sizes(remote: RemoteStore) -> None:
    total = sum(len(data) for _, data in FILES)
    scratch = Scratch(scratch_beside(remote).root, limit=total, room=1)
    assert run(remote, scratch=scratch) == "failed"
    assert result_of(remote)["error"] == (
        f"the job needs {total + 1}B of scratch space ({total}B of files to download + 1B "
        f"for the processor), more than HANDOFF_SCRATCH_LIMIT ({total}B)")


def test_a_job_with_no_room_yet_is_retried_and_runs_once_there_is(remote: RemoteStore) -> None:
    total = sum(len(data) for _, data in FILES)
    scratch = Scratch(scratch_beside(remote).root, limit=total, room=0)
    with scratch.job("1b4e28ba-2fa1-41d2-883f-0016d3cca427", 1), \
            pytest.raises(Retry, match="other jobs hold the rest of HANDOFF_SCRATCH_LIMIT"):
        run(remote, scratch=scratch)
    assert remote.state(UPLOAD_ID) is State.CLAIMED
    assert run(remote, scratch=scratch) == "done"
