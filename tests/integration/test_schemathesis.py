"""Generated requests against the running API: every answer matches ``/openapi.json``.

The document is loaded from the running API, so what is checked is what
clients really get. Schemathesis generates valid and invalid requests for
every operation; each answer must have a documented status code, media type
and body, and none may be a server error. The stateful test follows the
upload's ``id`` from ``POST /v1/uploads`` to ``GET /v1/uploads/{upload_id}``,
so the status document is checked for uploads that really exist, not only
for unknown ids.

Examples are few and small on purpose: the default stack relays, stores and
processes every accepted upload for real.
"""

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.schemas import BaseSchema

from tests.support.stacks import Stack

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
# Form fields must come before the files; JSON Schema cannot say so, and the
# generator lists properties in its own order. Sending them in the documented
# order lets generated uploads reach the relay and the queue instead of being
# refused at the first file part.
FIELDS_FIRST = ("purpose", "metadata")
REQUEST_TIMEOUT = 30
# tus sends upload bytes as application/offset+octet-stream: bytes, as octet-stream is.
schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")
EXAMPLES = settings(max_examples=25, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                           HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def api_schema(stack: Stack) -> BaseSchema:
    """The document as the running API serves it.

    Schemathesis leaves out the operation that serves the document itself;
    the unit tests check that one against the file.
    """
    return schemathesis.openapi.from_url(f"{stack.api_url}/openapi.json",
                                         timeout=REQUEST_TIMEOUT)


def _fields_first(case: Case) -> None:
    if isinstance(case.body, dict):
        order = {name: position for position, name in enumerate(FIELDS_FIRST)}
        case.body = dict(sorted(case.body.items(),
                                key=lambda item: order.get(item[0], len(order))))


def _cases(operation: APIOperation) -> st.SearchStrategy[Case]:
    """Valid requests, and invalid ones where the operation takes any input to spoil."""
    positive = operation.as_strategy(generation_mode=GenerationMode.POSITIVE)
    if not list(operation.iter_parameters()) and not len(operation.body):
        return positive
    return st.one_of(positive, operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))


def _check(operation: APIOperation) -> None:
    @given(case=_cases(operation))
    @EXAMPLES
    def check(case: Case) -> None:
        _fields_first(case)
        case.call_and_validate(checks=CHECKS, timeout=REQUEST_TIMEOUT)

    check()


def test_every_answer_matches_the_document(api_schema: BaseSchema, subtests: pytest.Subtests):
    """Each operation is its own subtest, so one failure does not hide the others."""
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 5, [operation.label for operation in operations]
    for operation in operations:
        with subtests.test(operation.label):
            _check(operation)


def test_uploads_can_be_followed_to_their_status(api_schema: BaseSchema):
    """Sequences of uploads and status reads, linked by the upload id (the 202's link).

    The run must have read the status of at least one real upload, or it
    only repeated what the test above already checks for unknown ids.
    """
    followed: list[str] = []

    class Uploads(api_schema.as_state_machine()):
        def before_call(self, case: Case) -> None:
            _fields_first(case)

        def get_call_kwargs(self, case: Case) -> dict[str, Any]:
            return {"timeout": REQUEST_TIMEOUT}

        def validate_response(self, response: Any, case: Case, **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS)
            if case.method == "GET" and response.status_code == 200 and "upload_id" in (
                    case.path_parameters or {}):
                followed.append(response.json()["status"])

    Uploads.run(settings=settings(EXAMPLES, max_examples=10, stateful_step_count=5,
                                  derandomize=True))
    assert followed, "no generated upload was followed to its status"
