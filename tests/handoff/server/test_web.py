"""Upload slots: a full process refuses at once with 503 and Retry-After."""

import logging
import math

import pytest
from flask import Flask, jsonify, request
from pythonjsonlogger.json import JsonFormatter

from handoff.config import Settings
from handoff.jsontext import loads
from handoff.problems import Problem
from handoff.server.logs import _serialize
from handoff.server.web import UploadSlots, make_app


def test_slots_refuse_beyond_their_size_and_free_on_exit() -> None:
    slots = UploadSlots(2)
    with slots.hold(), slots.hold():
        with pytest.raises(Problem) as caught, slots.hold("u-1"):
            pass
        problem = caught.value
        assert problem.status == 503
        assert problem.kind == "busy"
        assert int(problem.headers["Retry-After"]) > 0
        assert problem.extra == {"upload_id": "u-1"}
    with slots.hold(), slots.hold():
        pass


def test_a_failing_upload_gives_its_slot_back() -> None:
    slots = UploadSlots(1)
    with pytest.raises(RuntimeError), slots.hold():
        raise RuntimeError("the upload failed")
    with slots.hold():
        pass


def _app() -> Flask:
    return make_app("test", Settings(), dict)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_the_services_json_writes_no_nan_or_infinity(value: float) -> None:
    app = _app()
    with app.app_context(), pytest.raises(ValueError, match="not JSON compliant"):
        jsonify(x=[value])


@pytest.mark.parametrize("body", ["[" * 10_000 + "]" * 10_000, '{"x": NaN}', '{"x": -Infinity}'])
def test_the_services_json_refuses_to_read_what_rfc_8259_has_not(body: str) -> None:
    app = _app()
    with app.test_request_context(data=body, content_type="application/json"):
        assert request.get_json(silent=True) is None


def test_the_services_json_reads_json() -> None:
    app = _app()
    with app.test_request_context(data='{"a": [1.5, {"b": null}]}',
                                  content_type="application/json"):
        assert request.get_json() == {"a": [1.5, {"b": None}]}


def test_a_log_line_is_json_even_with_a_nan_in_it(capsys: pytest.CaptureFixture[str]) -> None:
    logger = logging.getLogger("handoff.test")
    formatter = JsonFormatter(json_serializer=_serialize)
    record = logger.makeRecord("handoff.test", logging.INFO, __file__, 1, "measured", (), None,
                               extra={"ratio": math.nan, "n": 3})
    line = formatter.format(record)
    assert loads(line, 2) == {"message": "measured", "ratio": "nan", "n": 3}
