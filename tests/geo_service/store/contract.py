"""What every upload store must do, whatever keeps its bytes.

:class:`StoreContract` is run by each implementation's test module, which
subclasses it and provides its fixtures: ``store``, an empty store;
``location``, what :func:`geo_service.store.open_store_at` needs to open the
same store again from another process (for a holder that gets killed);
``crash_mid_removal``, which leaves a removal half done as a crash would;
and ``add_stray``, which puts something that is not an upload in the store.
Nothing here looks behind the interface, so an S3 or Azure store runs it
unchanged.
"""

import gc
import threading
import warnings
from collections.abc import Callable
from typing import Any

import pytest

from geo_service.store import (
    Busy,
    InvalidId,
    Marker,
    State,
    StopReason,
    UploadExists,
    UploadMissing,
    UploadStore,
)
from handoff.ids import new_upload_id
from tests.support.locks import hold

ID = "0f8fad5b-d9cb-469f-a165-70867728950e"
OTHER = "1b4e28ba-2fa1-41d2-883f-0016d3cca427"
CHUNKS = [b"first-", b"second-" * 1000, b"", b"third"]
DATA = b"".join(CHUNKS)
INFO = {"purpose": "raw", "metadata": {}, "filename": "f", "content_type": "", "length": 10}
PROGRESS = {"offset": 0, "sha256_state": "", "tentative": False}


def written(store: UploadStore, upload_id: str, index: int, chunks: list[bytes]) -> int:
    with store.open_writer(upload_id, index) as writer:
        for chunk in chunks:
            writer.write(chunk)
        return writer.commit()


def sealed(store: UploadStore, upload_id: str = ID, tenant: str = "alice") -> dict[str, Any]:
    store.create(upload_id, tenant)
    with store.lock(upload_id):
        written(store, upload_id, 0, CHUNKS)
        written(store, upload_id, 1, [b"two"])
        manifest = {"id": upload_id, "files": [{"name": "a", "size": len(DATA)},
                                               {"name": "b", "size": 3}]}
        store.seal(upload_id, manifest)
    return manifest


def resumable(store: UploadStore, upload_id: str = ID, data: bytes = b"") -> None:
    store.create_resumable(upload_id, "alice", INFO, PROGRESS)
    if data:
        with store.open_appender(upload_id, 0) as appender:
            appender.write(data)
            appender.sync()


def read(store: UploadStore, upload_id: str, index: int = 0, start: int = 0,
         size: int | None = None) -> bytes:
    return b"".join(store.read_file(upload_id, index, start, size))


class StoreContract:
    """The contract; see the module's docstring."""

    # -- state ---------------------------------------------------------------

    def test_an_upload_goes_through_every_state(self, store: UploadStore) -> None:
        store.create(ID, "alice")
        assert store.state(ID) is State.RECEIVING
        store.seal(ID, {"files": []})
        assert store.state(ID) is State.COMPLETE
        store.mark_queued(ID, {"message_id": "m-1"})
        assert store.state(ID) is State.QUEUED
        store.claim(ID, {"worker": "w"})
        assert store.state(ID) is State.CLAIMED
        assert store.claimed(ID) == {"worker": "w"}
        store.finish(ID, {"status": "done", "result": {"n": 1}})
        assert store.state(ID) is State.DONE
        assert store.result(ID) == {"status": "done", "result": {"n": 1}}
        store.create(OTHER, "bob")
        store.finish(OTHER, {"status": "failed", "error": "bad"})
        assert store.state(OTHER) is State.FAILED

    def test_status_says_everything_known(self, store: UploadStore) -> None:
        manifest = sealed(store)
        store.mark_queued(ID, {"message_id": "m-1"})
        status = store.status(ID)
        assert status == {"id": ID, "state": "queued", "tenant": "alice", "cancelled": False,
                          "manifest": store.manifest(ID), "info": None, "offset": None,
                          "job": {"message_id": "m-1"}, "claim": None, "result": None}
        assert [f["name"] for f in status["manifest"]["files"]] == ["a", "b"]
        assert manifest["id"] == ID

    def test_an_upload_is_created_once(self, store: UploadStore) -> None:
        store.create(ID, "alice")
        with pytest.raises(UploadExists):
            store.create(ID, "bob")
        with pytest.raises(UploadExists):
            store.create_resumable(ID, "bob", INFO, PROGRESS)
        assert store.tenant(ID) == "alice"
        assert store.exists(ID) and not store.exists(OTHER)

    @pytest.mark.parametrize("bad", [ID.upper(), "../x", "", ".", "a\x00b"])
    def test_invalid_ids_are_refused(self, store: UploadStore, bad: str) -> None:
        for call in (lambda: store.create(bad, "alice"), lambda: store.lock(bad),
                     lambda: store.state(bad), lambda: store.remove(bad),
                     lambda: store.open_writer(bad, 0), lambda: store.stop_reason(bad)):
            with pytest.raises(InvalidId):
                call()
        assert list(store.upload_ids()) == []

    def test_a_missing_upload_is_missing(self, store: UploadStore) -> None:
        for call in (lambda: store.state(ID), lambda: store.remove(ID),
                     lambda: store.timeline(ID), lambda: store.mark_queued(ID, {}),
                     lambda: store.claim(ID, {}), lambda: store.finish(ID, {"status": "done"}),
                     lambda: store.mark_cancelled(ID)):
            with pytest.raises(UploadMissing):
                call()
        assert (store.manifest(ID), store.job(ID), store.info(ID)) == (None, None, None)

    def test_requeues_are_counted(self, store: UploadStore) -> None:
        sealed(store)
        store.mark_queued(ID, {"message_id": "m-1", "purpose": "raw"})
        assert store.requeued(ID, "m-2") == 1
        assert store.requeued(ID, "m-3") == 2
        job = store.job(ID) or {}
        assert (job["message_id"], job["requeues"], job["purpose"]) == ("m-3", 2, "raw")
        assert store.state(ID) is State.QUEUED

    def test_the_outcome_and_its_announcement_are_recorded_together(
            self, store: UploadStore) -> None:
        sealed(store)
        store.finish(ID, {"status": "done"}, {"event": {"id": ID}, "pending": ["actor"]})
        assert store.announcement(ID) == {"event": {"id": ID}, "pending": ["actor"]}
        store.set_announcement(ID, {"event": {"id": ID}, "pending": []})
        assert store.announcement(ID) == {"event": {"id": ID}, "pending": []}
        store.clear_announcement(ID)
        assert store.announcement(ID) is None
        assert store.state(ID) is State.DONE

    def test_info_and_progress_of_a_resumable_upload(self, store: UploadStore) -> None:
        resumable(store)
        assert (store.info(ID), store.progress(ID)) == (INFO, PROGRESS)
        assert store.tenant(ID) == "alice"
        store.set_info(ID, {**INFO, "length": 20})
        store.save_progress(ID, {**PROGRESS, "offset": 5})
        assert store.info(ID) == {**INFO, "length": 20}
        assert store.progress(ID) == {**PROGRESS, "offset": 5}
        assert store.status(ID)["offset"] == 5
        assert read(store, ID) == b""

    # -- markers, the primitives the rest is built on -------------------------

    @pytest.mark.parametrize("marker", list(Marker))
    def test_a_marker_is_written_read_back_and_replaced_whole(
            self, store: UploadStore, marker: Marker) -> None:
        store.create(ID, "alice")
        store.write_marker(ID, marker, {"first": 1, "nested": {"a": [1, 2]}})
        assert store.read_marker(ID, marker) == {"first": 1, "nested": {"a": [1, 2]}}
        assert isinstance(store.marker_time(ID, marker), float)
        store.write_marker(ID, marker, {"second": 2})
        assert store.read_marker(ID, marker) == {"second": 2}
        assert store.read_marker(OTHER, marker) is None

    def test_a_marker_never_written_is_absent(self, store: UploadStore) -> None:
        store.create(ID, "alice")
        store.write_marker(ID, Marker.JOB, {"message_id": "m-1"})
        absent = [m for m in Marker if m not in (Marker.TENANT, Marker.JOB)]
        assert [store.read_marker(ID, m) for m in absent] == [None] * len(absent)
        assert [store.marker_time(ID, m) for m in absent] == [None] * len(absent)
        assert [store.has_marker(ID, m) for m in Marker] == [m in (Marker.TENANT, Marker.JOB)
                                                            for m in Marker]

    def test_a_deleted_marker_is_gone_and_others_stay(self, store: UploadStore) -> None:
        store.create(ID, "alice")
        store.write_marker(ID, Marker.ANNOUNCE, {"pending": ["actor"]})
        store.write_marker(ID, Marker.RESULT, {"status": "done"})
        store.delete_marker(ID, Marker.ANNOUNCE)
        assert store.read_marker(ID, Marker.ANNOUNCE) is None
        assert store.marker_time(ID, Marker.ANNOUNCE) is None
        store.delete_marker(ID, Marker.ANNOUNCE)
        assert store.read_marker(ID, Marker.RESULT) == {"status": "done"}
        assert store.state(ID) is State.DONE

    def test_markers_of_a_missing_upload(self, store: UploadStore) -> None:
        with pytest.raises(UploadMissing):
            store.write_marker(ID, Marker.INFO, {})
        assert store.read_marker(ID, Marker.INFO) is None
        assert store.marker_time(ID, Marker.INFO) is None
        assert not store.exists(ID)

    # -- files ---------------------------------------------------------------

    def test_a_file_is_written_as_a_stream_and_read_back(self, store: UploadStore) -> None:
        store.create(ID, "alice")
        assert written(store, ID, 0, CHUNKS) == len(DATA)
        assert read(store, ID) == DATA
        assert read(store, ID, 0, 6, 7) == DATA[6:13]
        assert read(store, ID, 0, len(DATA) - 5) == DATA[-5:]

    def test_a_file_is_not_visible_before_its_commit(self, store: UploadStore) -> None:
        store.create(ID, "alice")
        writer = store.open_writer(ID, 0)
        writer.write(DATA)
        with pytest.raises(FileNotFoundError):
            read(store, ID)
        writer.abort()
        with pytest.raises(FileNotFoundError):
            read(store, ID)
        with store.open_writer(ID, 0) as again:
            again.write(b"x")
        with pytest.raises(FileNotFoundError):
            read(store, ID)
        assert written(store, ID, 0, [b"y"]) == 1
        assert read(store, ID) == b"y"

    def test_sealing_records_where_each_file_is(self, store: UploadStore) -> None:
        manifest = sealed(store)
        stored = store.manifest(ID) or {}
        assert [{k: v for k, v in f.items() if k != "path"} for f in stored["files"]] == [
            {"name": "a", "size": len(DATA)}, {"name": "b", "size": 3}]
        assert all(isinstance(f["path"], str) for f in stored["files"])
        assert len({f["path"] for f in stored["files"]}) == 2
        assert manifest == stored

    def test_a_local_path_where_there_is_one_holds_the_files_bytes(
            self, store: UploadStore) -> None:
        """A processor reads such a path in place; without one the worker downloads the file."""
        sealed(store)
        for index, data in enumerate([DATA, b"two"]):
            path = store.local_path(ID, index)
            if path is not None:
                assert path.read_bytes() == data
            assert read(store, ID, index) == data

    def test_appends_at_an_offset_sync_truncate_and_read_back(self, store: UploadStore) -> None:
        resumable(store, data=b"0123456789")
        assert store.durable_size(ID) == 10
        store.truncate(ID, 4)
        assert store.durable_size(ID) == 4
        with store.open_appender(ID, 2) as appender:
            appender.write(b"ab")
            assert appender.sync() == 4
            appender.write(b"cd")
        assert read(store, ID) == b"01abcd"
        assert read(store, ID, 0, 3, 2) == b"bc"

    def test_an_appender_cuts_what_lay_past_its_offset(self, store: UploadStore) -> None:
        resumable(store, data=b"0123456789")
        with store.open_appender(ID, 3) as appender:
            appender.write(b"x")
            assert appender.sync() == 4
        assert store.durable_size(ID) == 4
        assert read(store, ID) == b"012x"

    def test_a_file_is_joined_from_other_uploads(self, store: UploadStore) -> None:
        resumable(store, OTHER, b"part-one|")
        resumable(store, ID)
        with store.open_appender(ID, 0) as appender:
            appender.copy_from(OTHER, 8)
            appender.write(b"+two")
            assert appender.sync() == 12
        assert read(store, ID) == b"part-one+two"
        assert read(store, OTHER) == b"part-one|"

    # -- locks ---------------------------------------------------------------

    def test_only_one_holds_the_lock(self, store: UploadStore) -> None:
        store.create(ID, "alice")
        with store.lock(ID):
            with pytest.raises(Busy), store.lock(ID):
                pass
            with store.lock(OTHER):
                pass
        with store.lock(ID):
            pass

    def test_a_writer_in_another_process_blocks_others_until_it_is_killed(
            self, store: UploadStore, location: str) -> None:
        store.create(ID, "alice")
        holder = hold(location, ID)
        try:
            with pytest.raises(Busy), store.lock(ID, timeout=0.2):
                pass
            assert store.state(ID) is State.RECEIVING
        finally:
            holder.kill()
            holder.wait(timeout=10)
            assert holder.stdout is not None
            holder.stdout.close()
        with store.lock(ID, timeout=10):
            assert store.state(ID) is State.RECEIVING

    def test_taking_over_asks_the_holder_to_let_go(self, store: UploadStore) -> None:
        store.create(ID, "alice")
        asked, holding, done = threading.Event(), threading.Event(), threading.Event()

        def holder() -> None:
            with store.lock(ID):
                holding.set()
                while store.stop_reason(ID) is None and not done.wait(0.01):
                    pass
                if not done.is_set():
                    asked.set()

        thread = threading.Thread(target=holder)
        thread.start()
        try:
            assert holding.wait(30)
            with store.take_over(ID, timeout=30):
                assert asked.is_set()
                assert store.stop_reason(ID) is None
        finally:
            done.set()
            thread.join()

    def test_taking_over_from_a_holder_that_stays_is_busy(self, store: UploadStore) -> None:
        store.create(ID, "alice")
        with store.lock(ID):
            with pytest.raises(Busy), store.take_over(ID, timeout=0.2):
                pass
            assert store.stop_reason(ID) is None

    def test_a_cancel_asks_the_holder_to_stop_and_remove(self, store: UploadStore) -> None:
        store.create(ID, "alice")
        store.create(OTHER, "alice")
        assert store.stop_reason(ID) is None and not store.cancelled(ID)
        store.mark_cancelled(ID)
        assert store.stop_reason(ID) is StopReason.CANCELLED
        assert store.cancelled(ID) and store.status(ID)["cancelled"] is True
        assert store.state(ID) is State.RECEIVING
        with store.lock(ID), store.lock(OTHER):
            assert store.remove_if_cancelled(ID)
            assert not store.remove_if_cancelled(OTHER)
        assert not store.exists(ID) and store.exists(OTHER)

    def test_lock_records_are_listed_and_forgotten(self, store: UploadStore) -> None:
        store.create(ID, "alice")
        with store.lock(ID):
            pass
        with store.lock(OTHER):
            pass
        assert {lock.upload_id for lock in store.lock_files()} == {ID, OTHER}
        with store.lock(OTHER):
            store.remove_lock_file(OTHER)
        assert [lock.upload_id for lock in store.lock_files()] == [ID]

    # -- removing and the sweeper's view --------------------------------------

    def test_a_removed_upload_is_gone_at_once(self, store: UploadStore) -> None:
        sealed(store)
        sealed(store, OTHER)
        size = store.size(ID)
        assert size >= len(DATA) + 3
        with store.lock(ID):
            assert store.remove(ID) == size
        assert not store.exists(ID) and not store.has_entry(ID)
        assert list(store.upload_ids()) == [OTHER]
        with pytest.raises(UploadMissing):
            store.remove(ID)
        store.create(ID, "bob")
        assert store.state(ID) is State.RECEIVING and store.tenant(ID) == "bob"

    def test_after_a_crash_partials_are_the_sweepers(self, store: UploadStore) -> None:
        store.create(ID, "alice")
        writer = store.open_writer(ID, 0)  # its writer is never heard of again
        writer.write(DATA)
        assert list(store.upload_ids()) == [ID]
        timeline = store.timeline(ID)
        assert timeline.state is State.RECEIVING and timeline.last_activity is not None
        with store.lock(ID):
            store.remove(ID)
        assert not store.has_entry(ID)  # the partial went with its upload, wherever it was
        with pytest.raises(FileNotFoundError):
            read(store, ID)
        assert store.empty_trash() == 0 and store.unfinished_removals() == []
        assert list(store.upload_ids()) == []

    def test_a_removal_a_crash_cut_short_is_finished(
            self, store: UploadStore, crash_mid_removal: Callable[[UploadStore], None]) -> None:
        crash_mid_removal(store)
        assert len(store.unfinished_removals()) == 1
        assert store.empty_trash() > 0
        assert store.unfinished_removals() == [] and store.empty_trash() == 0

    def test_strays_are_listed_and_not_uploads(
            self, store: UploadStore, add_stray: Callable[[UploadStore], str]) -> None:
        store.create(ID, "alice")
        name = add_stray(store)
        assert list(store.stray_entries()) == [name]
        assert list(store.upload_ids()) == [ID]

    def test_a_closed_appender_holds_nothing_open(self, store: UploadStore) -> None:
        resumable(store)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            appender = store.open_appender(ID, 0)
            appender.write(b"x")
            appender.sync()
            appender.close()
            del appender
            gc.collect()
        assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
        assert read(store, ID) == b"x"

    def test_listing_shows_uploads_only(self, store: UploadStore) -> None:
        ids = sorted(new_upload_id() for _ in range(3))
        for upload_id in ids:
            store.create(upload_id, "alice")
        assert sorted(store.upload_ids()) == ids
        assert list(store.stray_entries()) == []
        assert [store.has_entry(i) for i in (*ids, ID)] == [True, True, True, False]

    def test_the_timeline_follows_the_steps(self, store: UploadStore) -> None:
        store.create(ID, "alice")
        receiving = store.timeline(ID)
        assert receiving.state is State.RECEIVING and receiving.last_activity is not None
        assert receiving.manifest_time is None and receiving.result_time is None
        store.seal(ID, {"files": []})
        store.mark_queued(ID, {})
        store.claim(ID, {})
        store.finish(ID, {"status": "failed"})
        finished = store.timeline(ID)
        assert finished.state is State.FAILED and finished.last_activity is None
        times = [finished.manifest_time, finished.job_time, finished.claim_time,
                 finished.result_time]
        assert all(t is not None for t in times)
        assert times == sorted(times)  # type: ignore[type-var]
        assert store.last_activity(ID) >= receiving.last_activity  # type: ignore[operator]

    def test_the_store_reports_itself(self, store: UploadStore) -> None:
        assert store.problem() is None
        assert store.free_bytes() > 0
        assert store.describe()

