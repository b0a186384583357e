"""The worker's scratch space: a folder per job, within a bound every thread and process keeps."""

import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from geo_service.jobs.scratch import DEFAULT_FOLDER, NoRoomYet, Scratch, TooLarge
from handoff.config import Settings
from tests.support.processes import Processes

UPLOAD_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"
OTHER = "1b4e28ba-2fa1-41d2-883f-0016d3cca427"
KiB = 1024

# Holds a job's reservation in another process until it is killed.
_HOLD = """
import sys
from pathlib import Path
from geo_service.jobs.scratch import Scratch
root, upload_id, files = sys.argv[1:]
with Scratch(Path(root), limit=10 * 1024, room=0).job(upload_id, int(files)) as folder:
    (folder / "copy").write_bytes(b"x" * int(files))
    print("held", flush=True)
    sys.stdin.read()
"""


def hold_elsewhere(processes: Processes, root: Path, upload_id: str, files: int
                   ) -> subprocess.Popen[str]:
    holder = processes.popen([sys.executable, "-c", _HOLD, str(root), upload_id, str(files)],
                             stop_signal=signal.SIGKILL, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_a_job_gets_an_empty_folder_emptied_first_and_removed_after(tmp_path: Path) -> None:
    scratch = Scratch(tmp_path / "scratch", room=0)
    stale = tmp_path / "scratch" / UPLOAD_ID
    stale.mkdir()
    (stale / "from-an-interrupted-attempt").write_bytes(b"x")

    with scratch.job(UPLOAD_ID, 0) as folder:
        assert folder == stale
        assert list(folder.iterdir()) == []
        (folder / "work").mkdir()
    assert not folder.exists()
    assert [entry.name for entry in scratch.root.iterdir()] == [".lock"]


def test_the_folder_goes_when_the_job_raises(tmp_path: Path) -> None:
    scratch = Scratch(tmp_path, room=0)
    with pytest.raises(RuntimeError), scratch.job(UPLOAD_ID, 0) as folder:
        (folder / "half").write_bytes(b"x")
        raise RuntimeError("processor crashed")
    assert not folder.exists()
    with scratch.job(UPLOAD_ID, 0):
        pass


def test_the_default_folder_is_in_the_system_temp_dir() -> None:
    assert Scratch.from_settings(Settings()).root.name == DEFAULT_FOLDER
    assert Scratch.from_settings(Settings(scratch_limit=5)).limit == 5


def test_a_job_larger_than_the_limit_fails_naming_sizes_and_setting(tmp_path: Path) -> None:
    scratch = Scratch(tmp_path, limit=10 * KiB, room=2 * KiB)
    with pytest.raises(TooLarge) as caught, scratch.job(UPLOAD_ID, 9 * KiB):
        pytest.fail("admitted")
    assert str(caught.value) == (
        "the job needs 11KiB of scratch space (9KiB of files to download + 2KiB for the "
        "processor), more than HANDOFF_SCRATCH_LIMIT (10KiB)")
    assert not (tmp_path / UPLOAD_ID).exists()


def test_a_job_larger_than_the_whole_disk_fails_when_the_limit_is_the_disk(
        tmp_path: Path) -> None:
    disk = shutil.disk_usage(tmp_path)
    with pytest.raises(TooLarge, match=r"more than the whole disk of HANDOFF_SCRATCH_DIR .*"
                                       r"HANDOFF_SCRATCH_LIMIT is 0"), \
            Scratch(tmp_path, room=disk.total + 1).job(UPLOAD_ID, 0):
        pytest.fail("admitted")


def test_a_job_beyond_the_free_space_waits_when_the_limit_is_the_disk(tmp_path: Path) -> None:
    disk = shutil.disk_usage(tmp_path)
    between = (disk.free + disk.total) // 2
    with pytest.raises(NoRoomYet, match=r"free for it now"), \
            Scratch(tmp_path, room=between).job(UPLOAD_ID, 0):
        pytest.fail("admitted")


def test_a_job_that_does_not_fit_beside_another_waits_then_fits(tmp_path: Path) -> None:
    scratch = Scratch(tmp_path, limit=10 * KiB, room=KiB)
    with scratch.job(OTHER, 6 * KiB):
        with pytest.raises(NoRoomYet, match=r"other jobs hold the rest of HANDOFF_SCRATCH_LIMIT"), \
                scratch.job(UPLOAD_ID, 3 * KiB):
            pytest.fail("admitted")
        with scratch.job(UPLOAD_ID, 2 * KiB):
            pass
    with scratch.job(UPLOAD_ID, 8 * KiB):
        pass


def test_threads_never_reserve_more_than_the_limit_together(tmp_path: Path) -> None:
    scratch = Scratch(tmp_path, limit=10 * KiB, room=0)
    admitted: list[str] = []
    refused: list[str] = []
    everyone_in = threading.Barrier(8)
    ids = [f"{n:08x}-d9cb-469f-a165-70867728950e" for n in range(8)]

    def take(upload_id: str) -> None:
        try:
            with scratch.job(upload_id, 3 * KiB):
                admitted.append(upload_id)
                everyone_in.wait()
        except NoRoomYet:
            refused.append(upload_id)
            everyone_in.wait()

    threads = [threading.Thread(target=take, args=(upload_id,)) for upload_id in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (len(admitted), len(refused)) == (3, 5)


def test_another_process_holds_its_reservation_until_it_dies(
        tmp_path: Path, processes: Processes) -> None:
    holder = hold_elsewhere(processes, tmp_path, OTHER, 6 * KiB)
    scratch = Scratch(tmp_path, limit=10 * KiB, room=0)
    with pytest.raises(NoRoomYet), scratch.job(UPLOAD_ID, 5 * KiB):
        pytest.fail("admitted")
    assert (tmp_path / OTHER / "copy").exists()

    holder.kill()
    holder.wait()

    with scratch.job(UPLOAD_ID, 10 * KiB):
        assert not (tmp_path / OTHER).exists(), "a dead job's folder goes with its reservation"
