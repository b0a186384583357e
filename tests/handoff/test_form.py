"""The rules for the fields that travel with an upload."""

import dataclasses

import pytest

from handoff.config import Settings
from handoff.fields import MAX_METADATA_DEPTH
from handoff.form import (
    KNOWN_FIELDS,
    FieldError,
    UploadForm,
    check_field,
    over_limit,
    parse_metadata,
    parse_purpose,
    parser_limits,
    upload_limits,
)
from handoff.multipart import FileData, FileStart, FormTooLarge, ParserLimits
from tests.support.multipart_bodies import BOUNDARY, field_part, file_part, multipart_body

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


def test_parse_metadata_takes_the_documented_depth() -> None:
    text = '{"a":' * (MAX_METADATA_DEPTH - 1) + "{}" + "}" * (MAX_METADATA_DEPTH - 1)
    assert parse_metadata(text)


@pytest.mark.parametrize("depth", [MAX_METADATA_DEPTH + 1, 962, 10_000])
def test_parse_metadata_refuses_deeper_nesting(depth: int) -> None:
    text = '{"a":' * (depth - 1) + "{}" + "}" * (depth - 1)
    with pytest.raises(FieldError, match=f"metadata nests deeper than {MAX_METADATA_DEPTH}"):
        parse_metadata(text)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_parse_metadata_refuses_non_finite_numbers(constant: str) -> None:
    with pytest.raises(FieldError, match=f"metadata holds {constant}"):
        parse_metadata(f'{{"x": {constant}}}')


def test_parse_purpose_strips_and_accepts_known() -> None:
    assert parse_purpose(" raw\r\n", PURPOSES) == "raw"
    assert parse_purpose("shapefile", set(PURPOSES)) == "shapefile"


def test_parse_purpose_refuses_empty() -> None:
    with pytest.raises(FieldError, match="the purpose field is empty"):
        parse_purpose("  ", PURPOSES)


def test_parse_purpose_refuses_unknown_and_lists_known() -> None:
    with pytest.raises(FieldError, match="unknown purpose 'RAW'; known: raw, shapefile"):
        parse_purpose("RAW", PURPOSES)


def test_parse_purpose_says_when_the_field_is_missing() -> None:
    with pytest.raises(FieldError, match="the purpose field is missing"):
        parse_purpose(None, PURPOSES)


# -- UploadForm: which parts are files -------------------------------------------


def form_items(parts: list[bytes]) -> tuple[list[tuple[str, bytes]], dict[str, str]]:
    """The files (filename, bytes) the form lets through, and its fields."""
    form = UploadForm(BOUNDARY, parser_limits(Settings()))
    files: list[tuple[str, bytes]] = []
    for event in [*form.feed(multipart_body(parts)), *form.feed(None)]:
        if isinstance(event, FileStart):
            files.append((event.filename, b""))
        elif isinstance(event, FileData):
            files[-1] = (files[-1][0], files[-1][1] + bytes(event.data))
    assert form.complete
    return files, form.fields


def test_an_empty_file_input_is_skipped_beside_real_files() -> None:
    files, fields = form_items([field_part("purpose", "raw"), file_part("", b""),
                                file_part("a.txt", b"abc"), file_part("", b"")])
    assert files == [("a.txt", b"abc")]
    assert fields == {"purpose": "raw"}


def test_a_field_may_not_follow_even_an_empty_file_input() -> None:
    with pytest.raises(FieldError, match="comes after a file"):
        form_items([file_part("", b""), field_part("purpose", "raw"), file_part("a.txt", b"x")])


def test_an_empty_filename_with_data_is_refused() -> None:
    with pytest.raises(FieldError, match="empty filename carries data"):
        form_items([file_part("", b"bytes")])


@pytest.mark.parametrize("name", ["upload", "files[]", "File"])
def test_a_file_under_another_name_is_refused_naming_it(name: str) -> None:
    with pytest.raises(FieldError, match="files go in parts named 'file'") as caught:
        form_items([field_part("purpose", "raw"), file_part("a.txt", b"x", name=name)])
    assert repr(name) in str(caught.value)


def test_a_file_part_without_a_filename_says_so() -> None:
    with pytest.raises(FieldError, match="'file' has no filename"):
        form_items([field_part("purpose", "raw"), field_part("file", "contents")])


def test_filenames_up_to_255_bytes_of_utf8_pass() -> None:
    name = "é" * 127 + "x"  # 255 bytes
    assert form_items([file_part(name, b"x")])[0] == [(name, b"x")]
    with pytest.raises(FieldError, match="longer than 255 bytes"):
        form_items([file_part(name + "x", b"x")])


def test_a_field_after_a_file_is_refused() -> None:
    with pytest.raises(FieldError, match="comes after a file"):
        form_items([file_part("a", b"x"), field_part("purpose", "raw")])


def test_over_limit_names_the_variable() -> None:
    setting, detail = over_limit(FormTooLarge("max_files", "the form has more than 3 file parts"))
    assert setting == "HANDOFF_MAX_FILES"
    assert detail == "the form has more than 3 file parts; the limit is HANDOFF_MAX_FILES"


def test_parser_limits_come_from_the_settings_of_the_same_names() -> None:
    settings = Settings(max_files=7, max_part_headers=3, max_epilogue_size=9)
    limits = parser_limits(settings)
    assert (limits.max_files, limits.max_part_headers, limits.max_epilogue_size) == (7, 3, 9)
    assert {f.name for f in dataclasses.fields(limits)} <= {
        f.name for f in dataclasses.fields(Settings)}


def test_the_parser_limits_have_their_defaults_in_the_settings_alone() -> None:
    with pytest.raises(TypeError):
        ParserLimits()  # type: ignore[call-arg]
    assert parser_limits(Settings()).max_files == Settings().max_files


def test_upload_limits_come_from_the_settings() -> None:
    settings = Settings(max_upload_size=100, max_file_size=60, relay_chunk_size=7, max_files=2)
    limits = upload_limits(settings)
    assert (limits.max_upload_size, limits.max_file_size, limits.chunk_size) == (100, 60, 7)
    assert limits.form == parser_limits(settings)
