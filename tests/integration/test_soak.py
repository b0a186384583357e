"""A short chaos soak (``make soak`` for 60 s) on every ``make test``: nothing lost or leaked.

The seed is drawn by the soak and printed; ``HANDOFF_SOAK_SEED=<seed> make soak``
replays a failing plan. The checks that the run did something (faults
applied, uploads accepted and finished) keep a quiet run from passing.
"""

import os
import re
import signal
import subprocess
import sys

import pytest

from tests.support.processes import Processes

SECONDS = 60
SUMMARY = re.compile(
    r"^soak seed=(?P<seed>\d+) tried=(?P<tried>\d+) accepted=(?P<accepted>\d+) "
    r"refused=(?P<refused>\d+) done=(?P<done>\d+) failed=(?P<failed>\d+) "
    r"faults=(?P<faults>\d+) \((?P<kinds>[^)]*)\) lost=(?P<lost>\d+) "
    r"leaked=(?P<leaked>\d+) duplicates=(?P<duplicates>\d+)$", re.MULTILINE)


def _soak(processes: Processes, env: dict[str, str], timeout: float) -> tuple[int, str, str]:
    """Run ``python -m soak``; its exit status, stdout and stderr.

    Stopped early (a time-out, Ctrl-C), it gets SIGINT: the soak stops the
    stack it started in a ``finally``, which a SIGKILL would skip.
    """
    proc = processes.popen([sys.executable, "-m", "soak"], stop_signal=signal.SIGINT,
                           grace=60, env=env, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


@pytest.mark.timeout(900)
def test_a_minute_of_chaos_loses_leaks_and_repeats_nothing(processes: Processes) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("HANDOFF_")}
    env["HANDOFF_SOAK_SECONDS"] = str(SECONDS)
    status, out, err = _soak(processes, env, timeout=840)
    output = out + err[-4000:]
    found = SUMMARY.search(out)
    assert found, output
    print(found.group(0))  # the figures, for pytest -rP
    verdict = {name: int(value) for name, value in found.groupdict().items()
               if name != "kinds"}

    assert (verdict["lost"], verdict["leaked"], verdict["duplicates"]) == (0, 0, 0), output
    assert status == 0, output
    assert verdict["faults"] > 0, output
    assert verdict["accepted"] > 0 and verdict["refused"] > 0, output
    assert verdict["done"] + verdict["failed"] == verdict["accepted"], output
