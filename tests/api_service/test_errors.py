"""The geo service's refusals as the API's client is told of them."""

from api_service.errors import append_problem, geo_problem
from api_service.geo import GeoError
from handoff.problems import TYPE_BASE

STORE_DOWN = {"type": TYPE_BASE + "store-unavailable", "status": 503,
              "detail": "the upload store cannot be reached; retry later"}


def test_a_store_outage_is_passed_on_as_a_503_to_retry_not_a_bad_gateway() -> None:
    for problem in (geo_problem(GeoError(503, STORE_DOWN["detail"], STORE_DOWN), "u-1"),
                    append_problem(GeoError(503, STORE_DOWN["detail"], STORE_DOWN), "u-1")):
        assert (problem.status, problem.kind, problem.detail) == (
            503, "store-unavailable", STORE_DOWN["detail"])
        assert problem.extra == {"upload_id": "u-1"}
        assert "Retry-After" in problem.headers
