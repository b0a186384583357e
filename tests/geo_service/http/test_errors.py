"""A store that does not answer is a 503 to retry, whichever request met it."""

from geo_service.http.errors import upload_problem
from geo_service.store.bucket import BucketUnavailable


def test_an_unreachable_bucket_is_a_503_to_retry_that_keeps_its_endpoint_to_the_log() -> None:
    problem = upload_problem(BucketUnavailable('Could not connect to "http://10.0.0.7:8333/b"'),
                             "u-1", kept=True)

    assert problem is not None
    assert (problem.status, problem.kind, problem.extra) == (503, "store-unavailable",
                                                             {"upload_id": "u-1"})
    assert "Retry-After" in problem.headers
    assert "10.0.0.7" not in problem.detail
