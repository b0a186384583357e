"""Who is asking and what they may see, without a server."""

import pytest
from flask import Flask

from api_service.tenants import bearer_authenticator, visible_to
from handoff.auth import ANONYMOUS, parse_credentials
from handoff.problems import Problem

APP = Flask(__name__)


def _ask(authorization: str | None) -> str:
    headers = {"Authorization": authorization} if authorization else {}
    authenticate = bearer_authenticator(parse_credentials("alice:alice-token,bob:bob-token"))
    with APP.test_request_context(headers=headers) as context:
        return authenticate(context.request)


def test_a_token_names_its_tenant() -> None:
    assert _ask("Bearer alice-token") == "alice"
    assert _ask("Bearer bob-token") == "bob"


@pytest.mark.parametrize("authorization", [None, "Bearer carol-token", "Basic alice-token",
                                           "Bearer alice-token,bob-token"])
def test_anything_else_is_a_401_naming_the_bearer_scheme(authorization: str | None) -> None:
    with pytest.raises(Problem) as caught:
        _ask(authorization)
    assert caught.value.status == 401
    assert caught.value.headers == {"WWW-Authenticate": "Bearer"}


def test_without_tokens_everyone_is_anonymous() -> None:
    with APP.test_request_context(headers={"Authorization": "Bearer anything"}) as context:
        assert bearer_authenticator(())(context.request) == ANONYMOUS


@pytest.mark.parametrize(
    ("tenant", "status", "expected"),
    [
        ("alice", {"tenant": "alice", "cancelled": False}, True),
        ("bob", {"tenant": "alice", "cancelled": False}, False),
        ("alice", {"tenant": "alice", "cancelled": True}, False),
        ("alice", None, False),
        (ANONYMOUS, {"tenant": None}, True),
        ("alice", {}, False),
    ],
)
def test_only_the_uploads_tenant_sees_it(tenant: str, status: dict | None,
                                         expected: bool) -> None:
    assert visible_to(tenant, status) is expected
