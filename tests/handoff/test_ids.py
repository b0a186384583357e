"""Upload ids: only the canonical lowercase UUID spelling is an id."""

import uuid

import pytest

from handoff.ids import is_upload_id, new_upload_id

CANONICAL = "0f8fad5b-d9cb-469f-a165-70867728950e"


def test_canonical_uuid_is_an_id() -> None:
    assert is_upload_id(CANONICAL)


@pytest.mark.parametrize(
    "text",
    [
        "",
        CANONICAL.upper(),
        "{" + CANONICAL + "}",
        "urn:uuid:" + CANONICAL,
        CANONICAL.replace("-", ""),
        CANONICAL + "\n",
        CANONICAL + "0",
        CANONICAL[:-1],
        " " + CANONICAL,
        "../" + CANONICAL,
        CANONICAL[:-1] + "g",
        CANONICAL[:-1] + "\x00",
        CANONICAL[:-1] + "\u0663",
        "a" * 36,
    ],
)
def test_other_spellings_are_not_ids(text: str) -> None:
    assert not is_upload_id(text)


def test_new_ids_are_canonical_random_and_distinct() -> None:
    ids = {new_upload_id() for _ in range(50)}
    assert len(ids) == 50
    for upload_id in ids:
        assert is_upload_id(upload_id)
        assert uuid.UUID(upload_id).version == 4
