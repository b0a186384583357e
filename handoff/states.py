"""An upload's states: the six the store records, and the five a client is shown.

The geo service writes the states, the API maps them to the public status
and the client waits for a final one, so they live here, where each of them
can import them without the others. ``api_service/openapi.json`` lists the
public statuses too; a test holds it to :data:`PUBLIC_STATUSES`.
"""

from enum import StrEnum


class State(StrEnum):
    RECEIVING = "receiving"
    COMPLETE = "complete"
    QUEUED = "queued"
    CLAIMED = "claimed"
    DONE = "done"
    FAILED = "failed"


#: The outcome is recorded: the upload's state will not change any more.
FINISHED = frozenset({State.DONE, State.FAILED})

#: Store state -> public status. "complete" is sealed but its job not yet
#: recorded: it is not "queued" until the API has enqueued it, so it still
#: reads as receiving.
PUBLIC_STATUS: dict[State, str] = {
    State.RECEIVING: "receiving",
    State.COMPLETE: "receiving",
    State.QUEUED: "queued",
    State.CLAIMED: "processing",
    State.DONE: "done",
    State.FAILED: "failed",
}

#: The public statuses, in the order an upload goes through them.
PUBLIC_STATUSES: tuple[str, ...] = tuple(dict.fromkeys(PUBLIC_STATUS.values()))
