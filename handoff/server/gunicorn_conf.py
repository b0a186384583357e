"""gunicorn settings for both services: ``gunicorn --config python:handoff.server.gunicorn_conf``.

Uploads of many GB last far longer than gunicorn's default 30 s, and most
of an upload's life is waiting for the client's next bytes. gevent workers
serve each connection on a greenlet: a thousand slow or idle clients cost a
thousand greenlets, not a thousand threads, and ``/healthz`` is answered
between their reads. ``timeout`` only catches a process that is truly stuck.
``HANDOFF_WEB_WORKER_CLASS=gthread`` keeps the threaded worker (``make bench``
compares the two). Every value can be overridden with ``GUNICORN_CMD_ARGS``
or on the command line.
"""

import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

from handoff.config import ConfigError, load_settings
from handoff.server import gunicorn_errors, shutdown
from handoff.server.allocator import keep_freed_memory
from handoff.server.health import HealthServer, ReadinessReporter, report_path
from handoff.server.request_body import defer_continue

try:
    _settings = load_settings()
except ConfigError as _error:
    raise SystemExit(f"handoff: configuration error: {_error}") from None

worker_class = _settings.web_worker_class
workers = _settings.web_workers
threads = _settings.web_threads
# Connections per worker process, busy or idle; uploads take at most
# HANDOFF_MAX_ACTIVE_UPLOADS of them, so health checks and refusals always fit.
worker_connections = _settings.web_connections
# Seconds a worker process may go without a heartbeat before it is restarted.
timeout = 120
# Seconds given to requests in flight after SIGTERM: long enough for an upload to finish.
graceful_timeout = int(_settings.graceful_timeout)
# Seconds an idle keep-alive connection is kept; also how long a stopping evented
# worker may wait for one, so it stays short (gunicorn's own default).
keepalive = 2
# gunicorn's largest request line, so that absurd ids still reach the app and
# get a problem+json answer instead of gunicorn's own 414 page.
limit_request_line = 8190
# Several gunicorns share a host (API and geo); none needs the control socket.
control_socket_disable = True
# Uploads are streamed, never buffered; keep header limits at their defaults.
accesslog = "-"
access_log_format = (
    '{"remote": "%(h)s", "request": "%(r)s", "status": %(s)s, "bytes": "%(B)s", "seconds": %(L)s}'
)

# gunicorn's own refusals (400 bad request line, 414, 431) answer problem+json
# like the applications do; set in the master, inherited by every worker.
gunicorn_errors.install()

# Set in the master, inherited by every worker it forks: large buffers are
# reused instead of being faulted in afresh for every chunk (handoff/server/allocator.py).
keep_freed_memory()

# Memory-backed files for what changes all the time: gunicorn's worker
# heartbeat and the Prometheus values. On a disk they cause steady writes
# (the API is meant to write nothing) and can stall on a busy disk.
_SHM = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
worker_tmp_dir = _SHM

# Prometheus values of all worker processes go to files in one folder per
# service run, which /metrics merges. It must be set before any worker
# imports prometheus_client, hence here, in the master.
_METRICS_PREFIX = "handoff-metrics-"


def _remove_orphaned_metrics_dirs(parent: str) -> None:
    """Folders left by masters that died without on_exit (SIGKILL, OOM): the pid is in the name.

    Best effort: a folder that cannot be listed must not keep the service from starting.
    """
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for name in names:
        pid = name.removeprefix(_METRICS_PREFIX).split("-", 1)[0]
        if name.startswith(_METRICS_PREFIX) and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, and another user's
        pass
    return True


if _settings.metrics_dir is not None:
    _metrics_dir = str(_settings.metrics_dir)
else:
    _remove_orphaned_metrics_dirs(_SHM or tempfile.gettempdir())
    _metrics_dir = tempfile.mkdtemp(prefix=f"{_METRICS_PREFIX}{os.getpid()}-", dir=_SHM)
os.makedirs(_metrics_dir, exist_ok=True)
for _stale in os.listdir(_metrics_dir):
    _path = os.path.join(_metrics_dir, _stale)
    shutil.rmtree(_path) if os.path.isdir(_path) else os.unlink(_path)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir


# The workers' readiness verdicts for the master's health port (handoff/server/health.py).
_health_dir = Path(_metrics_dir) / "health"
_health_dir.mkdir(exist_ok=True)
_health: HealthServer | None = None


def when_ready(server):
    global _health
    if _settings.health_port:
        _health = HealthServer(
            _settings.metrics_host, _settings.health_port,
            workers=lambda: list(server.WORKERS.values()),
            heartbeat_age=lambda worker: time.monotonic() - worker.tmp.last_update(),
            timeout=server.timeout, folder=_health_dir)
        _health.start()
        server.log.info("health checks on http://%s:%d/healthz and /readyz",
                        _settings.metrics_host, _health.port)


def post_worker_init(worker):
    _cut_uploads_before_the_deadline(worker)
    app = worker.wsgi
    ready = app.extensions.get("handoff.ready")
    if _settings.health_port and ready is not None:
        def in_app_context() -> dict[str, str]:
            with app.app_context():
                return ready()

        ReadinessReporter(_health_dir, in_app_context).start()


def _cut_uploads_before_the_deadline(worker):
    """On SIGTERM, cut the uploads still arriving just before gunicorn would kill them.

    Set here, after gunicorn installed the worker's own handler, which still runs.
    """
    stop = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum, frame):
        shutdown.later(shutdown.cut_delay(worker.cfg.graceful_timeout), shutdown.cut_bodies)
        if callable(stop):
            stop(signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)


def pre_request(worker, req):
    """``100 Continue`` only once the application reads, and ``Connection:`` that tells the truth.

    A refusal the headers decide (401, 413 by Content-Length, 415) then goes
    out without inviting the body, and closes the connection.
    """
    defer_continue(req)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
    report_path(_health_dir, worker.pid).unlink(missing_ok=True)


def on_exit(server):
    if _health is not None:
        _health.stop()
    if _settings.metrics_dir is None:
        shutil.rmtree(_metrics_dir, ignore_errors=True)


def post_fork(server, worker):
    """A worker stopped while it boots simply ends.

    Until gunicorn installs a worker's own signal handlers, the worker still
    has the master's, which only queue a signal for the master's loop: a
    SIGTERM in that window (a gevent worker takes a while to boot) was lost,
    and the master then waited ``graceful_timeout`` for a worker that never
    heard it. The default action ends the worker, and the master reaps it.
    """
    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        signal.signal(number, signal.SIG_DFL)
    if _health is not None:
        _health.close()
