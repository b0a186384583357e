"""Processor calls in a child process: results, refusals, errors and limits come back."""

import os
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from geo_service.intake.receive import Receiver
from geo_service.jobs import run as jobs
from geo_service.jobs.sandbox import LimitExceeded, Limits, ProcessorError, call
from geo_service.jobs.scratch import Scratch
from geo_service.store import FileStore
from handoff.config import Settings
from handoff.form import upload_limits
from handoff.processors import GROUP, BadResult, Job, Registry, ValidationFailed
from handoff.testing import make_job
from tests.support import plugin_path
from tests.support.multipart_bodies import BOUNDARY, upload_body

LIMITS = Limits(memory=256 * 1024**2, seconds=30)
HERE = "tests.support.sandboxed"


@pytest.fixture(autouse=True)
def _test_plugins_on_the_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The children find the misbehaving processors of ``tests/support/plugins``."""
    monkeypatch.setenv("PYTHONPATH", plugin_path.pythonpath())


@pytest.fixture
def job(tmp_path: Path) -> Iterator[Job]:
    yield make_job(tmp_path, {"a.txt": b"some words"}, purpose="echo",
                   metadata={"k": "v"}, settings={"colour": "blue"})


def test_the_child_gets_the_job_and_its_result_comes_back(job: Job) -> None:
    result = call(f"{HERE}:echo", job, LIMITS)

    assert result == {"upload_id": job.upload_id, "purpose": "echo", "metadata": {"k": "v"},
                      "files": [["a.txt", "some words"]], "work_dir": [str(job.work_dir), True],
                      "settings": {"colour": "blue"}, "pid": result["pid"]}
    assert result["pid"] != os.getpid()


def test_a_refusal_comes_back_as_validation_failed(job: Job) -> None:
    with pytest.raises(ValidationFailed, match=r"^a\.txt is not what this purpose reads$"):
        call(f"{HERE}:refuse", job, LIMITS)


def test_any_other_exception_comes_back_as_a_processor_error(job: Job) -> None:
    with pytest.raises(ProcessorError, match=r"^the share is away$"):
        call(f"{HERE}:break_down", job, LIMITS)


def test_a_result_that_is_no_json_object_is_a_bad_result(job: Job) -> None:
    with pytest.raises(BadResult, match="returned list"):
        call(f"{HERE}:return_a_list", job, LIMITS)


def test_a_child_that_dies_without_an_answer_is_a_processor_error(job: Job) -> None:
    with pytest.raises(ProcessorError, match=r"ended without an answer \(exit status 7\)"):
        call(f"{HERE}:exit_at_once", job, LIMITS)


def test_a_processor_that_allocates_without_end_fails_naming_the_memory_limit(job: Job) -> None:
    with pytest.raises(LimitExceeded) as exceeded:
        call("handoff_runaway:allocate_forever", job, LIMITS)

    assert str(exceeded.value) == (
        "the processor exceeded HANDOFF_PROCESSOR_MEMORY_LIMIT (256MiB)")


def test_a_processor_that_never_returns_fails_naming_the_time_limit(job: Job) -> None:
    with pytest.raises(LimitExceeded) as exceeded:
        call("handoff_runaway:sleep_forever", job, Limits(LIMITS.memory, seconds=1))

    assert str(exceeded.value) == "the processor ran past HANDOFF_PROCESSOR_TIME_LIMIT (1 s)"


UPLOAD_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"


# The memory case gets time to spare: on a loaded machine, allocating 256 MiB
# can take longer than the time case's one second.
@pytest.mark.parametrize(("purpose", "seconds", "error"), [
    ("runaway-memory", 60, "the processor exceeded HANDOFF_PROCESSOR_MEMORY_LIMIT (256MiB)"),
    ("runaway-time", 1, "the processor ran past HANDOFF_PROCESSOR_TIME_LIMIT (1 s)"),
])
def test_a_job_past_a_limit_fails_at_once_and_its_scratch_folder_goes(
        tmp_path: Path, purpose: str, seconds: float, error: str) -> None:
    store = FileStore(tmp_path / "uploads")
    store.create(UPLOAD_ID)
    # The form names "raw"; the job's purpose is what the message says.
    Receiver(store, UPLOAD_ID, {"raw"}, upload_limits(Settings())).receive(
        [upload_body([("a.txt", b"x")])], BOUNDARY)
    store.mark_queued(UPLOAD_ID, {"purpose": purpose})
    processors = Registry([EntryPoint("runaway-memory", "handoff_runaway:allocate_forever",
                                      GROUP),
                           EntryPoint("runaway-time", "handoff_runaway:sleep_forever", GROUP)],
                          {})

    scratch = Scratch(tmp_path / "scratch")
    state = jobs.run(store, UPLOAD_ID, purpose, {}, processors, scratch=scratch,
                     limits=Limits(LIMITS.memory, seconds=seconds))

    assert state == "failed"
    assert store.result(UPLOAD_ID)["error"] == error  # type: ignore[index]
    assert [entry.name for entry in scratch.root.iterdir()] == [".lock"]
