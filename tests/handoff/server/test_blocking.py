"""off_loop: a plain call without an event loop, a real thread under gevent."""

import subprocess
import sys
import threading

from handoff.server.blocking import off_loop


def test_without_an_event_loop_it_is_a_plain_call() -> None:
    assert off_loop(threading.get_native_id) == threading.get_native_id()


_PATCHED = """
from gevent import monkey
monkey.patch_all()
import threading
from handoff.server.blocking import off_loop
print(off_loop(threading.get_native_id) != threading.get_native_id())
"""


def test_in_a_monkey_patched_process_it_runs_on_another_thread() -> None:
    done = subprocess.run([sys.executable, "-c", _PATCHED], capture_output=True, text=True,
                          check=True, timeout=60)
    assert done.stdout.strip() == "True"
