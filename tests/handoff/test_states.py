"""The upload states and what a client is shown of them."""

from handoff.states import FINISHED, PUBLIC_STATUS, PUBLIC_STATUSES, State


def test_every_state_has_a_public_status() -> None:
    assert set(PUBLIC_STATUS) == set(State)


def test_the_public_statuses_in_the_order_an_upload_goes_through_them() -> None:
    assert PUBLIC_STATUSES == ("receiving", "queued", "processing", "done", "failed")


def test_a_sealed_upload_without_a_job_still_reads_as_receiving() -> None:
    assert PUBLIC_STATUS[State.COMPLETE] == PUBLIC_STATUS[State.RECEIVING] == "receiving"


def test_a_client_can_tell_a_finished_upload_by_its_public_status() -> None:
    """The client checks the status it is shown against FINISHED."""
    assert sorted(FINISHED) == ["done", "failed"]
    assert [status in FINISHED for status in PUBLIC_STATUSES] == [False, False, False, True, True]
    assert all(PUBLIC_STATUS[state] == state for state in FINISHED)
