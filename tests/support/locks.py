"""Upload locks held from another process, as a writer or a worker would hold them.

flock locks conflict across processes, so this is the situation the store's
readers really meet.
"""

import subprocess
import sys
from typing import Any

_HOLD_LOCK = """
import sys, time
from geo_service.store import open_store_at
store = open_store_at(sys.argv[1])
with store.lock(sys.argv[2]):
    if sys.argv[3] == "claim":
        store.claim(sys.argv[2], {"worker": "test-holder", "claimed_at": time.time()})
    print("locked", flush=True)
    time.sleep(300)
"""


def hold(store: Any, upload_id: str, claim: bool = False) -> subprocess.Popen[str]:
    """Start a process holding ``upload_id``'s lock in ``store``; returns once it is held.

    ``store`` is a store or its location (:func:`geo_service.store.open_store_at`).

    With ``claim=True`` the holder also claims the upload, as a worker does
    before processing it. Killing the process releases the lock; the caller
    kills it and closes its stdout.
    """
    location = store if isinstance(store, str) else store.describe()
    argv = [sys.executable, "-c", _HOLD_LOCK, location, upload_id,
            "claim" if claim else "lock"]
    holder = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert holder.stdout is not None
    if holder.stdout.readline().strip() != "locked":
        holder.kill()
        holder.wait(timeout=10)
        holder.stdout.close()
        raise AssertionError(f"the lock holder for {upload_id} did not take the lock")
    return holder
