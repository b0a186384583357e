"""The host app of :mod:`tests.support.host_app`, served beside a stack as its owners would.

gunicorn runs it with its own options, not handoff's ``gunicorn_conf``: a
host that mounts the upload API keeps its own server set-up, and the body
must still stream through it.
"""

from devstack import processes
from tests.support.stacks import Stack

HOST_APP = "tests.support.host_app:create_app()"


def serve_host(stack: Stack, name: str = "host") -> str:
    """Start the host app with the stack's ``HANDOFF_*`` environment; its URL.

    It is one of the stack's processes, so ``stack.stop_all()`` stops it.
    """
    port = processes.free_port()
    argv = [str(processes.BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", "1",
            "--worker-class", "gthread", "--threads", "4", HOST_APP]
    proc = stack.start(name, argv)
    url = f"http://127.0.0.1:{port}"
    processes.wait_ready(url + "/", proc)
    return url
