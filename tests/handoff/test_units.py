"""Sizes and durations as operators write them in the environment."""

import pytest

from handoff.units import CHUNK_SIZE, GiB, KiB, MiB, TiB, format_size, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("1048576", 1048576),
        ("12B", 12),
        ("1k", 1000),
        ("2KB", 2000),
        ("3MB", 3 * 1000**2),
        ("5GB", 5 * 1000**3),
        ("1TB", 1000**4),
        ("1KiB", 1024),
        ("512MiB", 512 * 1024**2),
        ("5GiB", 5 * 1024**3),
        ("2TiB", 2 * 1024**4),
        ("5gib", 5 * 1024**3),
        (" 5 GiB ", 5 * 1024**3),
        ("1.5KiB", 1536),
        ("0.5GiB", 512 * 1024**2),
    ],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not a size"),
        ("GiB", "not a size"),
        ("-1", "not a size"),
        ("1e9", "not a size"),
        ("5 G iB", "not a size"),
        ("5PiB", "unknown size unit 'PiB'"),
        ("10 apples", "unknown size unit 'apples'"),
        ("1,5GiB", "not a size"),
    ],
)
def test_parse_size_refuses(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_size(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30", 30.0),
        ("0", 0.0),
        ("500ms", 0.5),
        ("45s", 45.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1.5h", 5400.0),
        ("2d", 172800.0),
        (" 2 D ", 172800.0),
    ],
)
def test_parse_duration(text: str, expected: float) -> None:
    assert parse_duration(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not a duration"),
        ("soon", "not a duration"),
        ("-5s", "not a duration"),
        ("1w", "unknown duration unit 'w'"),
        ("3 hours", "unknown duration unit 'hours'"),
    ],
)
def test_parse_duration_refuses(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration(text)


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, "0B"),
        (1, "1B"),
        (1000, "1000B"),
        (1024, "1KiB"),
        (1536, "1536B"),
        (3 * 1024**2, "3MiB"),
        (1024**3 + 1024**2, "1025MiB"),
        (50 * 1024**3, "50GiB"),
        (2 * 1024**4, "2TiB"),
        (1024**5, "1024TiB"),
    ],
)
def test_format_size(n: int, expected: str) -> None:
    assert format_size(n) == expected


@pytest.mark.parametrize("n", [0, 7, 1024, 1536, 3 * 1024**2, 5 * 1024**3, 1024**4 + 1])
def test_format_size_reads_back_exactly(n: int) -> None:
    assert parse_size(format_size(n)) == n


def test_the_unit_constants_are_the_units_the_settings_are_written_in() -> None:
    assert [parse_size(f"1{unit}") for unit in ("KiB", "MiB", "GiB", "TiB")] == [KiB, MiB, GiB, TiB]
    assert format_size(CHUNK_SIZE) == "1MiB"
