# One image for every handoff process: the API, the geo service, the Dramatiq
# worker and the sweeper. The Helm chart picks the command per container.
#
#   docker build -t handoff:0.1.0 .

# ---- builder: a virtualenv with the pinned dependencies and the project ----
FROM python:3.11-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src

# Dependencies first: this layer is reused until the pins change.
COPY requirements/base.txt requirements/base.txt
RUN pip install -r requirements/base.txt

COPY . .
# --no-deps: the image runs the services on the pinned set above. A plain
# `pip install .` would bring only the client's dependencies, and the
# "server" extra only ranges; tests/handoff/test_packaging.py keeps those
# ranges in line with the pins.
RUN pip install --no-deps .

# ---- runtime ----
FROM python:3.11-slim

# tini runs as PID 1 and forwards SIGTERM, so every process shuts down when
# the pod stops, even one that installs no handler of its own.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 handoff \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin handoff \
    && mkdir -p /var/lib/handoff/uploads \
    && chown 10001:10001 /var/lib/handoff/uploads

COPY --from=builder /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HANDOFF_UPLOADS_ROOT=/var/lib/handoff/uploads

WORKDIR /var/lib/handoff
USER 10001:10001
EXPOSE 8000 8001

ENTRYPOINT ["tini", "--"]
CMD ["gunicorn", "--config", "python:handoff.server.gunicorn_conf", "--bind", "0.0.0.0:8000", "api_service.app:create_app()"]
