"""gunicorn settings for both services: ``gunicorn --config python:handoff.gunicorn_conf``.

Uploads of many GB last far longer than gunicorn's default 30 s, and a
sync worker is killed when a request outlives ``timeout``. gthread workers
serve each request on a thread while the worker process keeps sending its
heartbeat, so ``timeout`` only catches a process that is truly stuck.
Every value can be overridden with ``GUNICORN_CMD_ARGS`` or on the command line.
"""

import os

worker_class = "gthread"
workers = int(os.environ.get("HANDOFF_WEB_WORKERS", "2"))
threads = int(os.environ.get("HANDOFF_WEB_THREADS", "16"))
# Seconds a worker process may go without a heartbeat before it is restarted.
timeout = 120
# Seconds given to requests in flight after SIGTERM: long enough for an upload to finish.
graceful_timeout = int(os.environ.get("HANDOFF_GRACEFUL_TIMEOUT", "3600"))
keepalive = 5
# Several gunicorns share a host (API and geo); none needs the control socket.
control_socket_disable = True
# Uploads are streamed, never buffered; keep header limits at their defaults.
accesslog = "-"
access_log_format = '{"remote": "%(h)s", "request": "%(r)s", "status": %(s)s, "bytes": "%(B)s", "seconds": %(L)s}'
