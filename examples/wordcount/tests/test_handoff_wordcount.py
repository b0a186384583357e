"""The example processor, tested the way a team tests its own: with handoff.testing."""

from pathlib import Path

import pytest
from handoff_wordcount import CHUNK, count_words, process

from handoff.config import ConfigError
from handoff.processors import ValidationFailed, installed
from handoff.testing import make_job, run_processor


def test_counts_the_words_of_every_file() -> None:
    files = {"a.txt": b"the quick brown fox\n", "b.txt": b"  jumps\tover\r\nthe lazy dog  "}

    assert run_processor(process, files, purpose="words") == {"files": 2, "words": 9}


def test_files_may_be_given_as_paths(tmp_path: Path) -> None:
    poem = tmp_path / "poem.txt"
    poem.write_text("so much depends\nupon\n")

    assert run_processor(process, [poem]) == {"files": 1, "words": 4}


def test_an_empty_file_has_no_words() -> None:
    assert run_processor(process, {"empty.txt": b""}) == {"files": 1, "words": 0}


@pytest.mark.parametrize("cut", [CHUNK - 1, CHUNK, CHUNK + 1])
def test_a_word_across_a_chunk_boundary_counts_once(tmp_path: Path, cut: int) -> None:
    """Padding puts the boundary just before, inside and just after the word ``across``."""
    text = b" " * (cut - 3) + b"across the boundary"
    path = tmp_path / "long.txt"
    path.write_bytes(text)

    assert count_words(path, "long.txt", "utf-8") == 3


def test_a_multibyte_character_split_by_a_chunk_is_decoded(tmp_path: Path) -> None:
    path = tmp_path / "accents.txt"
    path.write_bytes(b" " * (CHUNK - 1) + "été café".encode())

    assert count_words(path, "accents.txt", "utf-8") == 2


def test_the_encoding_setting_is_used() -> None:
    latin1 = {"l.txt": "déjà vu".encode("latin-1")}

    with pytest.raises(ValidationFailed, match=r"^l\.txt is not utf-8 text"):
        run_processor(process, latin1)
    assert run_processor(process, latin1, settings={"encoding": "latin-1"})["words"] == 2


def test_binary_content_fails_the_upload() -> None:
    with pytest.raises(ValidationFailed, match="holds NUL bytes"):
        run_processor(process, {"data.bin": b"GIF89a\x01\x00\x01\x00\x00\x00\x00"})


def test_an_unknown_encoding_is_a_setting_error_not_the_uploads_fault() -> None:
    """Not ValidationFailed: the worker retries, so fixing the setting saves the upload."""
    with pytest.raises(ConfigError, match=r"^HANDOFF_PROCESSOR_WORDS_ENCODING='klingon' is"):
        run_processor(process, {"a.txt": b"qapla"}, settings={"encoding": "klingon"})


def test_the_job_has_the_stored_files_and_an_empty_scratch_folder(tmp_path: Path) -> None:
    job = make_job(tmp_path, {"a.txt": b"one two"}, purpose="words", metadata={"k": "v"})

    assert (job.purpose, job.metadata, job.settings) == ("words", {"k": "v"}, {})
    (file,) = job.files
    assert (file.name, file.size, file.path.read_bytes()) == ("a.txt", 7, b"one two")
    assert job.work_dir.is_dir() and not any(job.work_dir.iterdir())


def test_registered_as_the_words_purpose() -> None:
    """The entry point in pyproject.toml is what the worker and the API find."""
    assert installed({}).targets["words"] == "handoff_wordcount:process"
    assert installed({}).processor("words") is process
