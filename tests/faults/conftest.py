"""The stack the refusal-only fault modules share."""

from collections.abc import Iterator

import pytest

from tests.faults import private_stack
from tests.support.processes import Processes
from tests.support.stacks import Stack


@pytest.fixture(scope="package")
def quiet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack without a worker, so the queue length is what the API enqueued.

    Only refused uploads go to it, each checked to leave nothing behind
    (``nothing_kept``), so the modules that refuse can share one.
    """
    with Processes(tmp_path_factory) as running:
        yield private_stack(running, {})
