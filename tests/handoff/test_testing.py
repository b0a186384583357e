"""handoff.testing builds the same upload and Job the geo service and the worker build."""

import hashlib
from pathlib import Path
from typing import Any

import pytest

from geo_service.intake.receive import Receiver
from geo_service.jobs.run import prepare_job
from geo_service.store import FileStore
from handoff.config import Settings
from handoff.form import upload_limits
from handoff.ids import new_upload_id
from handoff.processors import BadResult, Job, ValidationFailed
from handoff.testing import make_job, run_processor
from tests.support.multipart_bodies import BOUNDARY, upload_body


def echo(job: Job) -> dict[str, Any]:
    return {"purpose": job.purpose, "metadata": job.metadata, "settings": job.settings,
            "files": [(f.name, f.size, f.sha256, f.path.read_bytes().decode()) for f in job.files]}


def test_the_processor_sees_the_files_metadata_and_settings() -> None:
    result = run_processor(echo, {"a.txt": b"alpha", "b.txt": b"beta"}, purpose="survey",
                           metadata={"project": "p1"}, settings={"mode": "fast"})

    assert result == {
        "purpose": "survey", "metadata": {"project": "p1"}, "settings": {"mode": "fast"},
        "files": [["a.txt", 5, hashlib.sha256(b"alpha").hexdigest(), "alpha"],
                  ["b.txt", 4, hashlib.sha256(b"beta").hexdigest(), "beta"]],
    }


def test_files_may_come_from_disk_by_path(tmp_path: Path) -> None:
    first, second = tmp_path / "one.csv", tmp_path / "two.csv"
    first.write_bytes(b"1")
    second.write_bytes(b"22")

    by_list = run_processor(echo, [first, str(second)])["files"]
    by_name = run_processor(echo, {"renamed.csv": first})["files"]

    assert [f[:2] for f in by_list] == [["one.csv", 1], ["two.csv", 2]]
    assert by_name[0][:2] == ["renamed.csv", 1]


def test_a_str_in_a_mapping_is_refused_as_ambiguous() -> None:
    with pytest.raises(TypeError, match="give its bytes or a Path, not str"):
        run_processor(echo, {"a.txt": "is this text or a path?"})  # type: ignore[dict-item]


def test_the_job_is_the_one_the_worker_would_build(tmp_path: Path) -> None:
    files = {"a.bin": b"\x00\x01", "b.bin": b"bytes"}
    job = make_job(tmp_path / "mine", files, purpose="survey", metadata={"n": (1, 2)})

    store = FileStore(tmp_path / "uploads")
    upload_id = new_upload_id()
    store.create(upload_id, "anonymous")
    with store.lock(upload_id):
        body = upload_body(list(files.items()), purpose="survey", metadata={"n": [1, 2]})
        manifest = Receiver(store, upload_id, {"survey"}, upload_limits(Settings())).receive(
            [body], BOUNDARY)
    folder = tmp_path / "scratch"
    folder.mkdir()
    worker = prepare_job(store, upload_id, "survey", manifest["metadata"], manifest, {}, folder)

    assert [f.path.read_bytes() for f in job.files] == list(files.values())
    assert [{**f.entry, "path": None} for f in job.files] == [
        {**f.entry, "path": None} for f in worker.files]
    assert job.metadata == worker.metadata == {"n": [1, 2]}
    assert job.work_dir.is_dir() and list(job.work_dir.iterdir()) == []
    assert tmp_path / "mine" in job.work_dir.parents
    assert all(tmp_path / "mine" in f.path.parents for f in job.files)


def test_the_result_is_what_clients_would_see() -> None:
    assert run_processor(lambda job: {"bbox": (0, 1, 2, 3)}, {"a": b""}) == {"bbox": [0, 1, 2, 3]}


@pytest.mark.parametrize("result", [None, {"area": float("nan")}, {"when": object()}])
def test_a_result_the_worker_could_not_store_is_refused(result: Any) -> None:
    with pytest.raises(BadResult):
        run_processor(lambda job: result, {"a": b""})


def test_the_processors_exceptions_reach_the_test() -> None:
    def refuse(job: Job) -> dict[str, Any]:
        raise ValidationFailed(f"{job.files[0].name} is not a survey")

    with pytest.raises(ValidationFailed, match=r"^a\.txt is not a survey$"):
        run_processor(refuse, {"a.txt": b"x"})


def test_nothing_is_left_behind() -> None:
    seen: list[Path] = []

    def note(job: Job) -> dict[str, Any]:
        seen.append(job.work_dir)
        return {}

    run_processor(note, {"a": b"x"})

    assert not seen[0].exists()
    assert not seen[0].parents[2].exists(), "the whole temporary store is removed"
