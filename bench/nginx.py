"""nginx as the anchor: what a mature streaming reverse proxy gets out of this machine.

The Debian package is used as it is; the configuration, pid file, logs and
temp paths all live in the benchmark's temp folder, and nginx runs in the
foreground so it is stopped like every other child. Buffering is off in both
directions, so nginx never writes a body to disk, just as the API must not.
Its body buffer is raised from 16 KiB to 1 MiB, the API's chunk size: with
the default, the geo service receives 16 KiB pieces and spends more CPU per
byte, and the anchor would understate what a proxy can do.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

INSTALL_TIMEOUT = 600.0
CANDIDATES = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")

CONFIG = """\
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 0;
        client_body_buffer_size 1m;
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_request_buffering off;
            proxy_buffering off;
            proxy_read_timeout 600s;
            proxy_send_timeout 600s;
        }}
    }}
}}
"""


def _say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def find_nginx() -> str | None:
    """The nginx binary, also where sbin is not on PATH."""
    found = shutil.which("nginx")
    if found:
        return found
    return next((path for path in CANDIDATES if os.access(path, os.X_OK)), None)


def ensure_nginx() -> str | None:
    """nginx, installed with apt-get when missing and running as root; None to skip."""
    found = find_nginx()
    if found or not hasattr(os, "geteuid"):
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        _say("nginx is not installed and cannot be installed here (needs root and apt-get); "
             "skipping the nginx anchor")
        return None
    _say("nginx is missing; trying apt-get install -y nginx-light")
    if not _apt_install() and _apt(["update", "-qq"]):
        _apt_install()
    found = find_nginx()
    if found is None:
        _say("installing nginx-light failed; skipping the nginx anchor")
    return found


def _apt_install() -> bool:
    return _apt(["install", "-y", "-qq", "nginx-light"])


def _apt(args: list[str]) -> bool:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        done = subprocess.run(["apt-get", *args], env=env, capture_output=True,
                              timeout=INSTALL_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        _say(f"apt-get {args[0]} failed: {exc}")
        return False
    if done.returncode != 0:
        _say(f"apt-get {args[0]} failed: {done.stderr.decode(errors='replace').strip()[-300:]}")
    return done.returncode == 0


def nginx_argv(binary: str, root: Path, port: int, upstream: int) -> list[str]:
    """Write a config into ``root`` and return the command that runs nginx with it."""
    root.mkdir(parents=True, exist_ok=True)
    conf = root / "nginx.conf"
    conf.write_text(CONFIG.format(root=root, port=port, upstream=upstream))
    return [binary, "-p", str(root), "-c", str(conf), "-e", str(root / "error.log"),
            "-g", "daemon off;"]
