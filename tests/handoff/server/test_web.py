"""Upload slots: a full process refuses at once with 503 and Retry-After."""

import pytest

from handoff.problems import Problem
from handoff.server.web import UploadSlots


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
