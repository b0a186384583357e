"""Bearer tokens: parsing the header and checking against the allowed set."""

import pytest

from handoff.auth import bearer_token, token_allowed


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Bearer s3cret", "s3cret"),
        ("bearer s3cret", "s3cret"),
        ("BEARER s3cret", "s3cret"),
        ("Bearer   s3cret  ", "s3cret"),
        (None, None),
        ("", None),
        ("Bearer", None),
        ("Bearer ", None),
        ("Bearer    ", None),
        ("Basic dXNlcjpwYXNz", None),
        ("Token s3cret", None),
        ("s3cret", None),
    ],
)
def test_bearer_token(header: str | None, expected: str | None) -> None:
    assert bearer_token(header) == expected


@pytest.mark.parametrize(
    ("token", "allowed", "expected"),
    [
        ("a", ["a"], True),
        ("b", ["a", "b", "c"], True),
        ("c", ("a", "b", "c"), True),
        ("d", ["a", "b", "c"], False),
        ("a", [], False),
        (None, ["a"], False),
        ("ab", ["a"], False),
        ("a", ["ab"], False),
        ("A", ["a"], False),
        ("clé-é", ["clé-é"], True),
        ("clé-e", ["clé-é"], False),
    ],
)
def test_token_allowed(token: str | None, allowed: list[str], expected: bool) -> None:
    assert token_allowed(token, allowed) is expected


def test_token_allowed_accepts_a_one_shot_iterable() -> None:
    assert token_allowed("y", iter(["x", "y", "z"]))
