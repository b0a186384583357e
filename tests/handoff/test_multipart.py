"""The incremental multipart parser, fed the same bodies in every possible way."""

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handoff.config import Settings
from handoff.form import parser_limits
from handoff.multipart import (
    MAX_BOUNDARY,
    FieldValue,
    FileData,
    FileEnd,
    FileStart,
    FormEvent,
    FormParser,
    FormTooLarge,
    MalformedForm,
    NotMultipart,
    ParserLimits,
    boundary_of,
)
from tests.support.multipart_bodies import (
    BOUNDARY,
    closing_dash_cut,
    content_type,
    field_part,
    file_part,
    multipart_body,
    split_at,
    split_every,
)

# File data that looks like the framing around it without being a delimiter.
TRICKY = (
    b"\r\n\r\nstarts with blank lines\r\n"
    b"--" + BOUNDARY + b" not after a line break\r\n"
    b"\r\n--" + BOUNDARY[:-1] + b"X almost a delimiter\r\n"
    b"\r\n-\r\n--\r\r\n\n\x00\xfe\xff\x01 ends with a CR\r"
)

BODY = multipart_body(
    [
        field_part("purpose", "raw"),
        field_part("metadata", '{"crs": "EPSG:4326"}'),
        file_part("a.bin", TRICKY, content_type="application/zip"),
        file_part("empty.txt", b""),
        file_part("b.bin", bytes(range(256)) * 4),
    ]
)

Item = FieldValue | tuple[FileStart, bytes]


def limits_with(**changes: int) -> ParserLimits:
    """The parser's limits as the settings give them, but for ``changes``."""
    return parser_limits(Settings(**changes))


LIMITS = limits_with(max_form_fields_size=1024)


def parse(chunks: list[bytes], max_field_size: int = 1024) -> list[FormEvent]:
    parser = FormParser(BOUNDARY, limits_with(max_form_fields_size=max_field_size))
    events: list[FormEvent] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    assert not parser.complete
    events.extend(parser.feed(None))
    assert parser.complete
    return events


def items(events: list[FormEvent]) -> list[Item]:
    """Fields and files in order, each file's data joined; checks the event grammar."""
    result: list[Item] = []
    current: FileStart | None = None
    data = bytearray()
    for event in events:
        if isinstance(event, FileStart):
            assert current is None
            current, data = event, bytearray()
        elif isinstance(event, FileData):
            assert current is not None
            assert event.data
            data += event.data
        elif isinstance(event, FileEnd):
            assert current is not None
            result.append((current, bytes(data)))
            current = None
        else:
            assert current is None
            result.append(event)
    assert current is None
    return result


EXPECTED: list[Item] = [
    FieldValue("purpose", "raw"),
    FieldValue("metadata", '{"crs": "EPSG:4326"}'),
    (FileStart("file", "a.bin", "application/zip"), TRICKY),
    (FileStart("file", "empty.txt", "application/octet-stream"), b""),
    (FileStart("file", "b.bin", "application/octet-stream"), bytes(range(256)) * 4),
]


# -- boundary_of ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("multipart/form-data; boundary=abc", b"abc"),
        ('multipart/form-data; boundary="a b:c"', b"a b:c"),
        ("multipart/form-data; charset=utf-8; Boundary=xyz", b"xyz"),
        (content_type(), BOUNDARY),
        ("multipart/form-data; boundary=" + "b" * MAX_BOUNDARY, b"b" * MAX_BOUNDARY),
    ],
)
def test_boundary_of(header: str, expected: bytes) -> None:
    assert boundary_of(header) == expected


@pytest.mark.parametrize(
    "header",
    [None, "", "application/json", "multipart/mixed; boundary=abc", "text/plain; boundary=x"],
)
def test_boundary_of_not_multipart(header: str | None) -> None:
    with pytest.raises(NotMultipart, match="expected multipart/form-data"):
        boundary_of(header)


@pytest.mark.parametrize(
    "header",
    [
        "multipart/form-data",
        "multipart/form-data; boundary=",
        'multipart/form-data; boundary=""',
        "multipart/form-data; charset=utf-8",
        "multipart/form-data; boundary=" + "b" * (MAX_BOUNDARY + 1),
    ],
)
def test_boundary_of_without_a_usable_boundary(header: str) -> None:
    with pytest.raises(MalformedForm, match="without a valid boundary"):
        boundary_of(header)


def test_boundary_of_ignores_the_case_of_the_media_type() -> None:
    assert boundary_of("Multipart/Form-Data; boundary=xyz") == b"xyz"


def test_not_multipart_and_malformed_are_distinct_value_errors() -> None:
    assert issubclass(NotMultipart, ValueError)
    assert issubclass(MalformedForm, ValueError)
    assert not issubclass(NotMultipart, MalformedForm)
    assert not issubclass(MalformedForm, NotMultipart)


# -- whole bodies --------------------------------------------------------------


def test_fields_and_files_in_one_chunk() -> None:
    assert items(parse([BODY])) == EXPECTED


def test_file_data_passes_through_in_pieces_not_whole() -> None:
    big = bytes(range(256)) * 4096
    body = multipart_body([file_part("big.bin", big)])
    events = parse(split_every(body, 64 * 1024))
    data_events = [event for event in events if isinstance(event, FileData)]
    assert len(data_events) >= len(big) // (64 * 1024)
    assert b"".join(event.data for event in data_events) == big


def test_file_data_in_the_middle_of_a_file_is_not_copied() -> None:
    """Gluing the held-back tail to every piece copied each file byte once more."""
    body = multipart_body([file_part("big.bin", bytes(range(256)) * 4096)])
    pieces = split_every(body, 300_000)
    parser = FormParser(BOUNDARY, LIMITS)
    for piece in pieces[:2]:  # the decoder's own start, then streaming, holding a tail back
        list(parser.feed(piece))
    views = [event.data for event in parser.feed(pieces[2]) if isinstance(event, FileData)]
    assert any(isinstance(view, memoryview) and view.obj is pieces[2]
               and len(view) > len(pieces[2]) - 200 for view in views)
    for piece in pieces[3:]:
        list(parser.feed(piece))
    list(parser.feed(None))
    assert parser.complete


def test_events_arrive_while_the_body_is_still_coming() -> None:
    head, _ = BODY.split(b"b.bin", 1)
    parser = FormParser(BOUNDARY, LIMITS)
    assert items(list(parser.feed(head))) == EXPECTED[:4]
    assert not parser.complete


def test_a_part_without_filename_is_a_field_even_with_a_content_type() -> None:
    part = b'Content-Disposition: form-data; name="note"\r\nContent-Type: text/plain\r\n\r\nhi'
    assert items(parse([multipart_body([part])])) == [FieldValue("note", "hi")]


def test_a_file_part_without_content_type_has_an_empty_one() -> None:
    part = b'Content-Disposition: form-data; name="f"; filename="x"\r\n\r\nhi'
    assert items(parse([multipart_body([part])])) == [(FileStart("f", "x", ""), b"hi")]


def test_non_ascii_filename_and_undecodable_field() -> None:
    body = multipart_body([field_part("purpose", b"r\xffw"), file_part("données été.zip", b"z")])
    assert items(parse([body])) == [
        FieldValue("purpose", "r\ufffdw"),
        (FileStart("file", "données été.zip", "application/octet-stream"), b"z"),
    ]


def test_an_empty_form_is_complete_with_no_events() -> None:
    assert parse([b"--" + BOUNDARY + b"--\r\n"]) == []


def test_epilogue_after_the_closing_boundary_is_ignored() -> None:
    assert items(parse([BODY + b"trailing junk\r\n--" + BOUNDARY + b"\r\n"])) == EXPECTED


# -- chunking ------------------------------------------------------------------


def test_one_byte_chunks_give_the_same_events_and_bytes() -> None:
    assert items(parse(split_every(BODY, 1))) == EXPECTED


def test_a_cut_inside_the_closing_dashes_adds_no_byte() -> None:
    body = multipart_body([file_part("a.bin", b"payload")])
    events = parse(split_at(body, [closing_dash_cut(body)]))
    assert items(events) == [(FileStart("file", "a.bin", "application/octet-stream"), b"payload")]


@pytest.mark.parametrize("size", [7, 2, 3, 5, 64, 1000])
def test_small_chunks_give_the_same_events_and_bytes(size: int) -> None:
    assert closing_dash_cut(BODY) % size != 0, "pick a size that avoids the known bad cut"
    assert items(parse(split_every(BODY, size))) == EXPECTED


def test_every_single_cut_gives_the_same_result() -> None:
    bad = closing_dash_cut(BODY)
    for cut in range(1, len(BODY)):
        if cut != bad:
            assert items(parse(split_at(BODY, [cut]))) == EXPECTED, cut


def test_a_boundary_split_across_many_chunks() -> None:
    delimiter = b"\r\n--" + BOUNDARY + b"\r\n"
    start = BODY.index(delimiter, BODY.index(b"a.bin"))
    cuts = range(start + 1, start + len(delimiter))
    assert items(parse(split_at(BODY, cuts))) == EXPECTED


@st.composite
def bodies_and_cuts(draw: st.DrawFn) -> tuple[bytes, bytes, list[int]]:
    pieces = st.sampled_from([b"\r", b"\n", b"\r\n", b"-", b"--", BOUNDARY[:9], b"\x00", b"x"])
    data = b"".join(draw(st.lists(pieces | st.binary(max_size=16), max_size=40)))
    body = multipart_body([field_part("purpose", "raw"), file_part("f", data)])
    cuts = draw(st.lists(st.integers(1, len(body) - 1), max_size=30))
    return data, body, cuts


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies_and_cuts())
def test_random_bytes_and_random_chunking_round_trip(
    case: tuple[bytes, bytes, list[int]],
) -> None:
    data, body, cuts = case
    delimiter = re.compile(b"[\r\n]--" + re.escape(BOUNDARY))
    if delimiter.search(data) or closing_dash_cut(body) in cuts:
        return
    assert items(parse(split_at(body, cuts))) == [
        FieldValue("purpose", "raw"),
        (FileStart("file", "f", "application/octet-stream"), data),
    ]


# -- refusals ------------------------------------------------------------------


@pytest.mark.parametrize("keep", [0, 10, 60, 120, 200, -40, -len(b"--\r\n")])
def test_a_truncated_body_is_malformed_at_the_end(keep: int) -> None:
    parser = FormParser(BOUNDARY, LIMITS)
    list(parser.feed(BODY[:keep]))
    with pytest.raises(MalformedForm, match="ended before its closing boundary"):
        list(parser.feed(None))
    assert not parser.complete


def test_the_file_data_before_a_truncation_is_still_passed_on() -> None:
    body = multipart_body([file_part("a.bin", b"0123456789" * 10)], close=False)
    parser = FormParser(BOUNDARY, LIMITS)
    events = list(parser.feed(body))
    assert isinstance(events[0], FileStart)
    assert not any(isinstance(event, FileEnd) for event in events)
    with pytest.raises(MalformedForm):
        list(parser.feed(None))


def test_a_body_without_its_closing_boundary_is_malformed() -> None:
    body = multipart_body([field_part("purpose", "raw"), file_part("a", b"abc")], close=False)
    parser = FormParser(BOUNDARY, LIMITS)
    events = list(parser.feed(body))
    assert FieldValue("purpose", "raw") in events
    with pytest.raises(MalformedForm, match="ended before its closing boundary"):
        list(parser.feed(None))


def test_a_body_with_another_boundary_is_malformed() -> None:
    body = multipart_body([field_part("purpose", "raw")], boundary=b"other")
    parser = FormParser(BOUNDARY, LIMITS)
    assert list(parser.feed(body)) == []
    with pytest.raises(MalformedForm):
        list(parser.feed(None))


def test_a_part_without_content_disposition_is_malformed() -> None:
    body = multipart_body([b"Content-Type: text/plain\r\n\r\nhi"])
    with pytest.raises(MalformedForm, match="malformed multipart body: Missing Content-Disp"):
        list(FormParser(BOUNDARY, LIMITS).feed(body))


def test_fields_up_to_the_limit_pass() -> None:
    """Names count too: "a" + 6 bytes and "b" + 3 bytes are 11."""
    body = multipart_body([field_part("a", "x" * 6), field_part("b", "y" * 4)])
    assert items(parse([body], max_field_size=12)) == [
        FieldValue("a", "x" * 6),
        FieldValue("b", "y" * 4),
    ]


def test_fields_over_the_limit_in_all_are_too_large() -> None:
    body = multipart_body([field_part("a", "x" * 6), field_part("b", "y" * 5)])
    with pytest.raises(FormTooLarge, match="more than 12 bytes") as caught:
        parse([body], max_field_size=12)
    assert caught.value.limit == "max_form_fields_size"


def test_part_names_and_filenames_count_toward_the_field_limit() -> None:
    body = multipart_body([file_part("n" * 30, b"z"), file_part("m" * 30, b"z")])
    with pytest.raises(FormTooLarge) as caught:
        parse([body], max_field_size=60)
    assert caught.value.limit == "max_form_fields_size"


def test_a_huge_field_fails_before_the_body_ends() -> None:
    head = b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="purpose"\r\n\r\n'
    parser = FormParser(BOUNDARY, LIMITS)
    list(parser.feed(head))
    with pytest.raises(FormTooLarge, match="more than 1024 bytes"):
        for _ in range(10):
            list(parser.feed(b"x" * 512))


def test_file_bytes_do_not_count_against_the_field_limit() -> None:
    body = multipart_body([field_part("purpose", "raw"), file_part("a", b"z" * 5000)])
    assert items(parse([body], max_field_size=20))[1] == (
        FileStart("file", "a", "application/octet-stream"),
        b"z" * 5000,
    )


# -- the parser's own limits -----------------------------------------------------


def feed_all(body: bytes, limits: ParserLimits, size: int = 4096) -> list[FormEvent]:
    parser = FormParser(BOUNDARY, limits)
    events: list[FormEvent] = []
    for piece in split_every(body, size):
        events.extend(parser.feed(piece))
    events.extend(parser.feed(None))
    return events


def refused_limit(body: bytes, limits: ParserLimits, size: int = 4096) -> str:
    with pytest.raises(FormTooLarge) as caught:
        feed_all(body, limits, size)
    return caught.value.limit


@pytest.mark.parametrize("size", [1, 100, 1_000_000])
def test_file_parts_up_to_max_files_pass_and_one_more_is_refused(size: int) -> None:
    limits = limits_with(max_files=5)
    five = multipart_body([file_part(f"{n}.bin", b"x") for n in range(5)])
    assert len(items(feed_all(five, limits, size))) == 5
    six = multipart_body([file_part(f"{n}.bin", b"x") for n in range(6)])
    assert refused_limit(six, limits, size) == "max_files"


def test_fields_do_not_count_as_files() -> None:
    body = multipart_body([field_part("purpose", "raw"), file_part("a", b"x")])
    assert len(items(feed_all(body, limits_with(max_files=1)))) == 2


@pytest.mark.parametrize("size", [1, 64, 1_000_000])
def test_part_headers_over_their_size_are_refused(size: int) -> None:
    limits = limits_with(max_part_header_size=200)
    pad = b"X-Pad: " + b"a" * 150 + b"\r\n"
    fits = multipart_body([pad[:60] + b"\r\n" + file_part("a", b"x")])
    assert len(items(feed_all(fits, limits, size))) == 1
    over = multipart_body([pad + file_part("a", b"x")])
    assert refused_limit(over, limits, size) == "max_part_header_size"


def test_endless_part_headers_are_refused_before_the_body_ends() -> None:
    head = b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="purpose"\r\nX-Pad: '
    parser = FormParser(BOUNDARY, LIMITS)
    list(parser.feed(head))
    with pytest.raises(FormTooLarge) as caught:
        for _ in range(9):
            list(parser.feed(b"a" * 1024))
    assert caught.value.limit == "max_part_header_size"


def test_more_headers_per_part_than_allowed_are_refused() -> None:
    limits = limits_with(max_part_headers=3)
    three = multipart_body([b"X-A: 1\r\n" + file_part("a", b"x")])
    assert len(items(feed_all(three, limits))) == 1
    four = multipart_body([b"X-A: 1\r\nX-B: 2\r\n" + file_part("a", b"x")])
    assert refused_limit(four, limits) == "max_part_headers"


@pytest.mark.parametrize("size", [1, 333, 1_000_000])
def test_a_preamble_over_its_cap_is_refused(size: int) -> None:
    limits = limits_with(max_preamble_size=1000)
    assert items(feed_all(b"p" * 1000 + b"\r\n" + BODY, limits, size)) == EXPECTED
    assert refused_limit(b"p" * 1001 + b"\r\n" + BODY, limits, size) == "max_preamble_size"


def test_an_endless_preamble_is_refused_while_it_arrives() -> None:
    parser = FormParser(BOUNDARY, limits_with(max_preamble_size=64 * 1024))
    with pytest.raises(FormTooLarge) as caught:
        for _ in range(100):
            list(parser.feed(b"p" * 1024))
    assert caught.value.limit == "max_preamble_size"
    assert len(parser._decoder.buffer) <= 66 * 1024


@pytest.mark.parametrize("size", [1, 333, 1_000_000])
def test_an_epilogue_over_its_cap_is_refused(size: int) -> None:
    limits = limits_with(max_epilogue_size=1000)
    assert items(feed_all(BODY + b"e" * 990, limits, size)) == EXPECTED
    assert refused_limit(BODY + b"e" * 2000, limits, size) == "max_epilogue_size"


# -- Content-Disposition as browsers send it --------------------------------------


def disposition_of(value: bytes) -> tuple[str, str | None]:
    part = b"Content-Disposition: " + value + b"\r\n\r\nx"
    (item,) = items(parse([multipart_body([part])]))
    if isinstance(item, FieldValue):
        return item.name, None
    return item[0].name, item[0].filename


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b'form-data; name="file"; filename="C:\\fakepath\\x.txt"',
         ("file", "C:\\fakepath\\x.txt")),
        (b'form-data; name="file"; filename="a%22b%0D%0Ac.txt"', ("file", 'a"b\r\nc.txt')),
        (b'form-data; name="file"; filename="a; name=b.txt"', ("file", "a; name=b.txt")),
        (b'form-data; name="file"; filename=""', ("file", "")),
        (b"form-data; name=file; filename=plain.txt", ("file", "plain.txt")),
        (b'form-data; filename="x.txt"; name="file"', ("file", "x.txt")),
        (b'form-data; name="purpose"', ("purpose", None)),
        ('form-data; name="file"; filename="données.zip"'.encode(), ("file", "données.zip")),
    ],
)
def test_names_and_filenames_are_read_as_browsers_send_them(
    value: bytes, expected: tuple[str, str | None]
) -> None:
    assert disposition_of(value) == expected


@pytest.mark.parametrize("value", [b"form-data", b'form-data; filename="x"', b'form-data; name=""'])
def test_a_part_without_a_name_is_malformed(value: bytes) -> None:
    with pytest.raises(MalformedForm, match="RFC 7578"):
        disposition_of(value)


@pytest.mark.parametrize(
    "boundary", [b"'()+_,-./:=?", b"a b", b"0" * 70, b"x", b"----WebKitFormBoundary7MA4YWxkTrZu0gW"]
)
def test_every_boundary_rfc_2046_allows_works(boundary: bytes) -> None:
    header = 'multipart/form-data; boundary="' + boundary.decode() + '"'
    assert boundary_of(header) == boundary
    body = multipart_body([field_part("purpose", "raw"), file_part("a", b"x")], boundary=boundary)
    parser = FormParser(boundary, LIMITS)
    assert len(items([*parser.feed(body), *parser.feed(None)])) == 2


RFC_2046_BOUNDARIES = [b"'()+_,-./:=?", b"a/b=c?d:e", b"x=?", b"a b", b"(x)", b"a,b",
                       b"----WebKitFormBoundary7MA4YWxkTrZu0gW"]


@pytest.mark.parametrize("boundary", RFC_2046_BOUNDARIES)
@pytest.mark.parametrize("piece", [None, 1], ids=["whole", "1-byte"])
def test_an_unquoted_boundary_of_rfc_2046_characters_is_read_whole(boundary: bytes,
                                                                  piece: int | None) -> None:
    for header in ("multipart/form-data; boundary=" + boundary.decode(),
                   "multipart/form-data; boundary=" + boundary.decode() + " ; charset=utf-8"):
        assert boundary_of(header) == boundary
    body = multipart_body([field_part("purpose", "raw"), file_part("a.bin", TRICKY)],
                          boundary=boundary)
    parser = FormParser(boundary_of(content_type(boundary)), LIMITS)
    events = [event for chunk in split_every(body, piece or len(body))
              for event in parser.feed(chunk)]
    assert items([*events, *parser.feed(None)]) == [
        FieldValue("purpose", "raw"),
        (FileStart("file", "a.bin", "application/octet-stream"), TRICKY)]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('multipart/form-data; boundary="a\\"b"', b'a"b'),
        ('multipart/form-data; boundary="a\\\\b"', b"a\\b"),
        ('multipart/form-data; charset="x; boundary=no"; boundary=yes', b"yes"),
    ],
)
def test_a_quoted_boundary_is_read_as_a_quoted_string(header: str, expected: bytes) -> None:
    assert boundary_of(header) == expected


QUOTED_PAIR_FILENAMES = [
    (b'filename="a\\"b.txt"', 'a"b.txt'),
    (b'filename="a\\\\b.txt"', "a\\b.txt"),
    (b'filename="C:\\fakepath\\x.txt"', "C:\\fakepath\\x.txt"),
    (b'filename="a%22b.txt"', 'a"b.txt'),
    (b'filename="\\"quoted\\" and \\\\ and \\x"', '"quoted" and \\ and \\x'),
    (b'filename="ends in a backslash\\"', "ends in a backslash\\"),
]


@pytest.mark.parametrize(("parameter", "filename"), QUOTED_PAIR_FILENAMES)
@pytest.mark.parametrize("piece", [None, 1], ids=["whole", "1-byte"])
def test_a_quoted_filename_keeps_a_lone_backslash_and_unescapes_quoted_pairs(
        parameter: bytes, filename: str, piece: int | None) -> None:
    part = (b'Content-Disposition: form-data; name="file"; ' + parameter
            + b"\r\nContent-Type: text/plain\r\n\r\nbytes")
    body = multipart_body([part, field_part("after", "it")])
    assert items(parse(split_every(body, piece or len(body)))) == [
        (FileStart("file", filename, "text/plain"), b"bytes"), FieldValue("after", "it")]


@pytest.mark.parametrize("boundary", ["ends-in-space ", "tab\there", "caf\u00e9"])
def test_boundaries_that_cannot_be_delimiters_are_refused(boundary: str) -> None:
    with pytest.raises(MalformedForm, match="without a valid boundary"):
        boundary_of('multipart/form-data; boundary="' + boundary + '"')
