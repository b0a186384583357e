"""The chaos soak, short: the same run as ``make soak``, judged by the same checker."""

import pytest

from soak.run import report, run

pytestmark = pytest.mark.integration

SECONDS = 75


def test_a_short_soak_loses_leaks_and_duplicates_nothing() -> None:
    seed = 20261202
    verdict, faults = run(SECONDS, seed)
    assert sum(faults.values()) > 0, "the nemesis injected no fault"
    assert verdict.accepted > 0, "no upload was accepted"
    assert verdict.ok, report(verdict, faults, seed)
