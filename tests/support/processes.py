"""Everything the tests start outside their own thread, and the one teardown that ends it all.

Stacks, gunicorn apps, lock holders, Node, Chromium with its chromedriver,
helper programs and the little HTTP servers that play other origins are all
started through a :class:`Processes`. Its ``close`` runs every teardown, in
the reverse order of the starts, even when a test failed or another
teardown raised: each child is stopped by pid with its whole process group,
each thread server is shut, each temp folder removed. The fixtures in
``tests/conftest.py`` hand one out per session, module and test.
"""

import contextlib
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver import Chrome
from werkzeug.serving import make_server

from devstack import processes
from tests.support import browser, locks
from tests.support.stacks import DEFAULT_COMPONENTS, Stack, launch

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Any]
#: Seconds a child has to end after its stop signal before its group is killed.
GRACE_SECONDS = 10.0


class Processes(contextlib.ExitStack):
    """What one fixture scope started; leaving it (``close``) stops and removes all of it."""

    def __init__(self, temp: pytest.TempPathFactory) -> None:
        super().__init__()
        self._temp = temp

    def folder(self, name: str) -> Path:
        """A new temp folder, removed at teardown."""
        path = self._temp.mktemp(name)
        self.callback(shutil.rmtree, path, ignore_errors=True)
        return path

    def stack(self, name: str = "stack", overrides: dict[str, str] | None = None,
              components: Sequence[str] = DEFAULT_COMPONENTS, replicas: int = 0) -> Stack:
        """A running copy of the product in a folder of its own (see ``launch``)."""
        root = self.folder(name)
        running = launch(root, overrides, components, replicas)
        self.callback(running.stop_all)
        return running

    def popen(self, argv: Sequence[str], stop_signal: int = signal.SIGTERM,
              grace: float = GRACE_SECONDS, **options: Any) -> subprocess.Popen:
        """Start ``argv`` in a session of its own; at teardown it gets ``stop_signal``, and
        its whole group SIGKILL once ``grace`` seconds have passed."""
        proc = subprocess.Popen(list(argv), start_new_session=True, **options)
        self.callback(_end, proc, stop_signal, grace)
        return proc

    def gunicorn(self, app: str, env: dict[str, str], folder: Path) -> str:
        """gunicorn with the product's settings serving ``app``; its URL once it listens."""
        port = processes.free_port()
        proc = processes.start(processes.gunicorn_argv(app, port), env, folder / "gunicorn.log")
        self.callback(processes.stop, proc)
        processes.wait_port(port, proc)
        return f"http://127.0.0.1:{port}"

    def lock_holder(self, store: Any, upload_id: str, claim: bool = False
                    ) -> subprocess.Popen[str]:
        """A process holding ``upload_id``'s lock (``tests/support/locks.py``); kill it to free."""
        holder = locks.hold(store, upload_id, claim)
        self.callback(_end, holder, signal.SIGKILL, GRACE_SECONDS)
        return holder

    def chromium(self, folder: Path) -> Chrome:
        """Headless Chromium (``tests/support/browser.py``), killed with its driver at teardown."""
        problem = browser.missing()
        if problem:
            pytest.fail(problem)
        return self.enter_context(browser.chromium(folder))

    def serve_wsgi(self, app: WSGIApp) -> str:
        """``app`` on a free loopback port, served from a thread; its origin."""
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        self.callback(_shut, server, thread)
        return f"http://127.0.0.1:{server.server_port}"


def _end(proc: subprocess.Popen, stop_signal: int, grace: float) -> None:
    """Ask the child to stop, then kill its whole group by pid; close the pipes we hold."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(stop_signal)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
    processes.kill(proc)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def _shut(server: Any, thread: threading.Thread) -> None:
    server.shutdown()
    thread.join(GRACE_SECONDS)
    server.server_close()

