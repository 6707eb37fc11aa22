# syntax=docker/dockerfile:1
# maasflow in a container: the daemon by default, any sub-command otherwise.
#
#   docker build -t maasflow .
#   docker run -d --name maasflow -p 127.0.0.1:9410:9410 \
#       -v maasflow-state:/var/lib/maasflow \
#       -e MAAS_URL=http://maas.example:5240/MAAS \
#       -v /etc/maasflow/maas_api_key:/secrets/maas_api_key:ro maasflow
#   docker exec maasflow maasflow status          # what it is doing, per machine
#   docker run --rm maasflow -h                   # every flag (env names in the README)
#
# The API key (`maas apikey --username <admin user>`) is read from MAAS_API_KEY_FILE,
# /secrets/maas_api_key. /secrets is a link to /run/secrets, so a bind mount at
# /secrets/maas_api_key and a docker/compose secret named maas_api_key (mounted at
# /run/secrets/maas_api_key) both land on that file. MAAS_API_KEY works too, but shows in
# `docker inspect`.
# The filter samples and mappings.json live in /etc/maasflow (HOST_FILTER_SPEC=@/etc/...).
# State (the provisioning records, script results) goes to /var/lib/maasflow, a VOLUME: name
# it (-v maasflow-state:/var/lib/maasflow) to keep it across containers; lost, every Deployed
# machine is provisioned again (the daemon warns how many at its first pass).
# Other sub-commands: `docker run ... maasflow serve --host 0.0.0.0` (then point the health
# check at it: -e MAASFLOW_STATUS_URL=http://127.0.0.1:9420), `... maasflow sim`.

# ---- builder: a virtualenv with the dependencies first, then maasflow itself ------------
FROM python:3.12-slim-bookworm AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
ENV VIRTUAL_ENV=/opt/maasflow
ENV PATH="${VIRTUAL_ENV}/bin:${PATH}"
WORKDIR /src
RUN python -m venv "$VIRTUAL_ENV"
# Dependencies from pyproject.toml alone: this layer is reused until the dependencies change.
COPY pyproject.toml ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; open('requirements.txt', 'w').write(chr(10).join(deps) + chr(10))" \
    && pip install -r requirements.txt
# The code: only these layers are rebuilt when maasflow changes.
COPY README.md ./
COPY maasflow ./maasflow
RUN pip install --no-deps . \
    && maasflow status --help > /dev/null

# ---- runtime: the slim Python image, the virtualenv, a non-root user --------------------
FROM python:3.12-slim-bookworm
# Set at build time, e.g. --build-arg REVISION=$(git rev-parse HEAD) --build-arg SOURCE=<repo URL>
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=""
LABEL org.opencontainers.image.title="maasflow" \
      org.opencontainers.image.description="Drives MAAS machines from New to Deployed and through provisioning, unattended." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/python:3.12-slim-bookworm"

# uid/gid 10001: outside the host's system and login ranges, so a bind-mounted key can be
# owned by it (chown 10001 /etc/maasflow/maas_api_key) without meaning anyone on the host.
RUN groupadd --system --gid 10001 maasflow \
    && useradd --system --uid 10001 --gid maasflow --home-dir /var/lib/maasflow \
       --no-create-home --shell /usr/sbin/nologin maasflow \
    && install -d -o maasflow -g maasflow -m 0750 /var/lib/maasflow \
    && install -d -m 0755 /run/secrets \
    && ln -s /run/secrets /secrets

# The state directory outlives the container: records say what is provisioned already.
VOLUME ["/var/lib/maasflow"]

COPY --from=builder /opt/maasflow /opt/maasflow
COPY filters/ /etc/maasflow/filters/
COPY mappings.json /etc/maasflow/mappings.json

# LISTEN: the health/metrics/state endpoint must be reachable from outside the container.
# MAASFLOW_STATUS_URL: where `maasflow status` and the HEALTHCHECK find it, from inside.
ENV PATH="/opt/maasflow/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MAAS_API_KEY_FILE=/secrets/maas_api_key \
    LISTEN=0.0.0.0:9410 \
    MAASFLOW_STATUS_URL=http://127.0.0.1:9410 \
    STATE_DIRECTORY=/var/lib/maasflow \
    LOG_FORMAT=json

WORKDIR /var/lib/maasflow
USER 10001:10001
EXPOSE 9410
# SIGTERM (docker stop) starts a graceful stop: running actions get SHUTDOWN_GRACE (30 s) to
# finish, so give `docker stop -t 40` or compose's stop_grace_period: 40s.
STOPSIGNAL SIGTERM
# 503 from /healthz (MAAS unreachable, key rejected, loop stuck) exits 1: unhealthy.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["maasflow", "status", "--healthz", "--timeout", "5"]
ENTRYPOINT ["maasflow"]
CMD []
