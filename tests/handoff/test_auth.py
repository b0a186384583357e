"""Bearer tokens: parsing the header and checking against the allowed set."""

import pytest

from handoff.auth import (
    ANONYMOUS,
    Credential,
    bearer_token,
    is_tenant_name,
    parse_credentials,
    tenant_for,
    token_allowed,
)


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


def test_name_token_pairs_name_their_tenant() -> None:
    assert parse_credentials("alice:alice-token, bob:bob-token") == (
        Credential("alice", "alice-token"), Credential("bob", "bob-token"))


def test_a_token_may_contain_colons_after_the_name() -> None:
    assert parse_credentials("svc:abc:def") == (Credential("svc", "abc:def"),)


def test_commas_and_new_lines_both_separate() -> None:
    assert [c.tenant for c in parse_credentials("a:1\nb:2,c:3\n\n")] == ["a", "b", "c"]


def test_a_bare_token_is_a_tenant_of_its_own_not_named_by_the_token() -> None:
    """Existing bare-token set-ups keep working; logs naming the tenant never show a token."""
    first, second = parse_credentials("t1-secret,t2-secret")
    assert (first.token, second.token) == ("t1-secret", "t2-secret")
    assert first.tenant != second.tenant
    assert "secret" not in first.tenant and "secret" not in second.tenant
    assert is_tenant_name(first.tenant)
    assert parse_credentials("t1-secret")[0].tenant == first.tenant


def test_one_tenant_may_hold_several_tokens() -> None:
    """Rotating a credential: the old and the new token open the same uploads."""
    credentials = parse_credentials("alice:old,alice:new")
    assert tenant_for("old", credentials) == tenant_for("new", credentials) == "alice"


@pytest.mark.parametrize("text", ["alice:", ":token", " : ", "al ice:t", "ä:t", "a:t,b:t"])
def test_bad_credentials_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_credentials(text)


@pytest.mark.parametrize(
    ("token", "expected"),
    [("alice-token", "alice"), ("bob-token", "bob"), ("alice-toke", None),
     ("alice", None), (None, None), ("", None)],
)
def test_tenant_for(token: str | None, expected: str | None) -> None:
    credentials = parse_credentials("alice:alice-token,bob:bob-token")
    assert tenant_for(token, credentials) == expected


def test_anonymous_is_a_valid_tenant_name() -> None:
    assert is_tenant_name(ANONYMOUS)
