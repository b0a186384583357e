"""``handoff.client`` against the real stack: gunicorn, the Dramatiq worker, valkey."""

import hashlib
import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from geo_service.store import FileStore
from handoff.client import Client, ProblemError, UploadedFile
from handoff.units import MiB
from tests.faults import NO_WORKER
from tests.geo_service.store import disk
from tests.support.payloads import random_file
from tests.support.stacks import Stack

TOKENS = "alice:alice-token,bob:bob-token"


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(MiB):
            digest.update(block)
    return digest.hexdigest()


def test_two_files_with_progress_are_processed_intact(stack: Stack, tmp_path: Path):
    survey = random_file(tmp_path / "survey.bin", 8)
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"field notes\n" * 1000)
    seen: list[tuple[int, int]] = []

    with Client(stack.api_url) as client:
        accepted = client.upload([survey, notes], "raw", {"project": "p1"},
                                 progress=lambda sent, total: seen.append((sent, total)))
        final = client.wait(accepted.id, timeout=120, interval=0.2)

    [total] = {total for _, total in seen}
    sent = [s for s, _ in seen]
    assert sent[0] == 0 and sent[-1] == total
    assert all(a < b for a, b in itertools.pairwise(sent))
    assert total > survey.stat().st_size + notes.stat().st_size

    expected = (UploadedFile("survey.bin", 8 * MiB, _digest(survey)),
                UploadedFile("notes.txt", notes.stat().st_size, _digest(notes)))
    assert accepted.files == expected
    assert (final.status, final.error) == ("done", None)
    assert final.files == expected
    assert final.metadata == {"project": "p1"}
    assert final.result == {"verified": True, "files": [
        {"name": f.name, "size": f.size, "sha256": f.sha256} for f in expected]}


def test_a_tenant_cancels_its_queued_upload(make_stack: Callable[..., Stack], tmp_path: Path):
    """Without a worker the upload stays queued until the cancel removes it."""
    stack = make_stack({"HANDOFF_API_TOKENS": TOKENS}, NO_WORKER)
    path = tmp_path / "x.bin"
    path.write_bytes(b"payload")

    with Client(stack.api_url, "alice-token") as alice, \
            Client(stack.api_url, "bob-token") as bob, Client(stack.api_url) as anonymous:
        upload = alice.upload([path], "raw")
        assert alice.status(upload.id).status == "queued"
        stored = disk.folder(FileStore(stack.uploads), upload.id)
        assert stored.is_dir()

        with pytest.raises(ProblemError) as unauthenticated:
            anonymous.status(upload.id)
        assert unauthenticated.value.status == 401
        with pytest.raises(ProblemError) as foreign:
            bob.cancel(upload.id)
        assert (foreign.value.status, foreign.value.upload_id) == (404, upload.id)

        alice.cancel(upload.id)
        with pytest.raises(ProblemError) as gone:
            alice.status(upload.id)
        assert gone.value.status == 404
        assert gone.value.type.endswith("/not-found")
    assert not stored.exists()


def test_a_refusal_is_a_problem_from_the_api(stack: Stack, tmp_path: Path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"payload")
    with Client(stack.api_url) as client, pytest.raises(ProblemError) as caught:
        client.upload([path], "no-such-purpose")
    assert caught.value.status == 400
    assert "unknown purpose" in caught.value.detail
