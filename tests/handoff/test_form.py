"""The rules for the fields that travel with an upload."""

import pytest

from handoff.form import KNOWN_FIELDS, FieldError, check_field, parse_metadata, parse_purpose

PURPOSES = frozenset({"raw", "shapefile"})


def test_known_fields_are_accepted_once_each() -> None:
    seen: set[str] = set()
    for name in KNOWN_FIELDS:
        check_field(name, seen)
    assert seen == set(KNOWN_FIELDS)


def test_a_repeated_field_is_refused() -> None:
    seen: set[str] = set()
    check_field("purpose", seen)
    with pytest.raises(FieldError, match="'purpose' is given more than once"):
        check_field("purpose", seen)


@pytest.mark.parametrize("name", ["file", "Purpose", "", "metadata "])
def test_an_unknown_field_is_refused(name: str) -> None:
    seen: set[str] = set()
    with pytest.raises(FieldError, match="unknown form field") as caught:
        check_field(name, seen)
    assert repr(name) in str(caught.value)
    assert seen == set()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {}),
        ("   \n", {}),
        ("{}", {}),
        ('{"crs": "EPSG:4326", "tags": [1, 2], "n": {"x": null}}',
         {"crs": "EPSG:4326", "tags": [1, 2], "n": {"x": None}}),
        (' {"a": "é"} ', {"a": "é"}),
    ],
)
def test_parse_metadata(text: str, expected: dict[str, object]) -> None:
    assert parse_metadata(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "metadata must be a JSON object"),
        ('"text"', "metadata must be a JSON object"),
        ("42", "metadata must be a JSON object"),
        ("null", "metadata must be a JSON object"),
        ("{", "metadata is not valid JSON"),
        ("{'a': 1}", "metadata is not valid JSON"),
        ('{"a": 1} trailing', "metadata is not valid JSON"),
    ],
)
def test_parse_metadata_refuses(text: str, message: str) -> None:
    with pytest.raises(FieldError, match=message):
        parse_metadata(text)


def test_parse_purpose_strips_and_accepts_known() -> None:
    assert parse_purpose(" raw\r\n", PURPOSES) == "raw"
    assert parse_purpose("shapefile", set(PURPOSES)) == "shapefile"


def test_parse_purpose_refuses_empty() -> None:
    with pytest.raises(FieldError, match="the purpose field is empty"):
        parse_purpose("  ", PURPOSES)


def test_parse_purpose_refuses_unknown_and_lists_known() -> None:
    with pytest.raises(FieldError, match="unknown purpose 'RAW'; known: raw, shapefile"):
        parse_purpose("RAW", PURPOSES)
