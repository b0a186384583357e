"""The real worker survives any processor: hostile GeoJSON, runaway memory, endless calls.

One stack with small processor limits runs every upload here. The worker
process that ran each job is the one its claim names; its peak resident
size (VmHWM) is read while idle, after a first ordinary job, and again
after the hostile ones. A child process's memory is its own: the worker's
figure is the one that must not move.
"""

from typing import Any

import pytest

from bench.probes import peak_resident
from geo_service.processors.geojson import MAX_DEPTH
from geo_service.store import FileStore
from handoff.units import MiB
from tests.support import plugin_path
from tests.support.nested_geojson import nested
from tests.support.processes import Processes
from tests.support.stacks import Stack

LIMITS = {"HANDOFF_PROCESSOR_MEMORY_LIMIT": "256MiB", "HANDOFF_PROCESSOR_TIME_LIMIT": "5s",
          "PYTHONPATH": plugin_path.pythonpath()}
DEPTHS = (20_000, 50_000, 100_000)
HOSTILE_POSITIONS = ("top-level array", "property value", "inside features",
                     "another top-level member")
PEAK_ALLOWANCE = 64 * MiB


@pytest.fixture(scope="module")
def limited(module_processes: Processes) -> Stack:
    """A stack whose processors get 256 MiB and 5 s, shared by this module's tests."""
    return module_processes.stack("limited-stack", LIMITS)


def finished(stack: Stack, purpose: str, name: str, content: bytes) -> tuple[dict[str, Any], int]:
    """The upload's final status and the pid of the worker process that ran its job."""
    response = stack.upload([(name, content)], purpose=purpose)
    assert response.status_code == 202, response.text
    upload_id = response.json()["id"]
    status = stack.wait_for(upload_id, timeout=120)
    claim = FileStore(stack.uploads).claimed(upload_id)
    assert claim is not None, status
    return status, int(claim["worker"].split(":")[1])


def test_deep_geojson_fails_everywhere_and_the_worker_stays_its_size(limited: Stack) -> None:
    status, worker = finished(limited, "raw", "warm.txt", b"an ordinary job first")
    assert status["status"] == "done", status
    idle = peak_resident(worker)

    outcomes = {}
    for position in HOSTILE_POSITIONS:
        for depth in DEPTHS:
            status, pid = finished(limited, "geojson", "n.geojson", nested(position, depth))
            outcomes[position, depth] = (status["status"], status.get("error", ""), pid)

    assert {key: (state, pid) for key, (state, _, pid) in outcomes.items()} == {
        key: ("failed", worker) for key in outcomes}
    for key, (_, error, _) in outcomes.items():
        assert error.startswith(f"n.geojson is nested deeper than {MAX_DEPTH} levels at byte "), key
    grown = peak_resident(worker) - idle
    assert grown <= PEAK_ALLOWANCE, f"the worker's peak grew by {grown / MiB:.1f} MiB"


@pytest.mark.parametrize(("purpose", "error"), [
    ("runaway-memory", "the processor exceeded HANDOFF_PROCESSOR_MEMORY_LIMIT (256MiB)"),
    ("runaway-time", "the processor ran past HANDOFF_PROCESSOR_TIME_LIMIT (5 s)"),
])
def test_a_processor_past_its_limit_fails_its_upload_and_the_worker_goes_on(
        limited: Stack, purpose: str, error: str) -> None:
    status, worker = finished(limited, purpose, "a.txt", b"anything")
    assert (status["status"], status.get("error")) == ("failed", error)

    status, pid = finished(limited, "raw", "b.txt", b"the next upload")
    assert (status["status"], pid) == ("done", worker)
