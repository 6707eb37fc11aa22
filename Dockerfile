# syntax=docker/dockerfile:1
# maasflow in a container: the daemon by default, any sub-command otherwise.
#
#   docker build -t maasflow .
#   docker run -d --name maasflow \
#       -v maasflow-state:/var/lib/maasflow \
#       -v /etc/maasflow/maas_api_key:/run/secrets/maas_api_key:ro \
#       -e MAAS_URL=http://maas.example:5240/MAAS maasflow
#   docker exec maasflow maasflow status          # what it is doing, per machine
#   docker run --rm maasflow -h                   # every flag (env names in the README)
#
# Secrets: every file in /run/secrets (a bind mount, as above, or a docker/compose secret of
# that name) is copied by the entrypoint, as root, into a private in-memory directory of the
# image's user (uid 10001), $CREDENTIALS_DIRECTORY, before it drops root: so a key file only
# root may read on the host works as is. Names: maas_api_key (`maas apikey --username <admin
# user>`), provision_token, power_token, power_pass, power_ack_pass, as under systemd.
# /secrets is a link to /run/secrets (maas-flow's /secrets/maas_api_key). MAAS_API_KEY works
# too, but shows in `docker inspect`. A rotated secret is read at `docker restart`.
# PID 1 is tini, which reaps the orphaned children provisioning scripts leave and passes
# signals on to maasflow.
# /healthz, /metrics and /state listen on 127.0.0.1:9410 inside the container: the health
# check and `docker exec maasflow maasflow status` reach them there. To scrape /metrics from
# the host: -e LISTEN=0.0.0.0:9410 -p 127.0.0.1:9410:9410 (the container's own 0.0.0.0,
# which docker's port forwarding needs; published on the host's loopback only).
# The filter samples and mappings.json live in /etc/maasflow (HOST_FILTER_SPEC=@/etc/...).
# State (the provisioning records, script results) goes to /var/lib/maasflow, a VOLUME: name
# it (-v maasflow-state:/var/lib/maasflow) to keep it across containers; lost, every Deployed
# machine is provisioned again (the daemon warns how many at its first pass).
# Other sub-commands: `docker run ... maasflow serve --host 0.0.0.0` (then point the health
# check at it: -e MAASFLOW_STATUS_URL=http://127.0.0.1:9420), `... maasflow sim`.
# Python packages are installed at the versions constraints.txt pins (as ./dev and CI do).

# ---- builder: a virtualenv with the dependencies first, then maasflow itself ------------
FROM python:3.12-slim-bookworm AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
ENV VIRTUAL_ENV=/opt/maasflow
ENV PATH="${VIRTUAL_ENV}/bin:${PATH}"
WORKDIR /src
RUN python -m venv "$VIRTUAL_ENV"
# Dependencies from pyproject.toml, at constraints.txt's versions: this layer is reused until
# either file changes.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; open('requirements.txt', 'w').write(chr(10).join(deps) + chr(10))" \
    && pip install -c constraints.txt -r requirements.txt
# The code: only these layers are rebuilt when maasflow changes.
COPY README.md ./
COPY maasflow ./maasflow
RUN pip install --no-deps . \
    && maasflow status --help > /dev/null

# ---- runtime: the slim Python image, the virtualenv, tini, a non-root user ----------------
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

# tini (Debian's): PID 1, reaping orphans. setpriv (util-linux, already in the image) drops
# root in the entrypoint.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/*

# uid/gid 10001: outside the host's system and login ranges, so it means nobody on the host.
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
COPY packaging/docker-entrypoint.sh /usr/local/bin/maasflow-entrypoint

# LISTEN: the health/metrics/state endpoint, inside the container only (see the top).
# MAASFLOW_STATUS_URL: where `maasflow status` and the HEALTHCHECK find it, from inside.
ENV PATH="/opt/maasflow/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MAAS_API_KEY_FILE=/secrets/maas_api_key \
    LISTEN=127.0.0.1:9410 \
    MAASFLOW_STATUS_URL=http://127.0.0.1:9410 \
    STATE_DIRECTORY=/var/lib/maasflow \
    LOG_FORMAT=json

WORKDIR /var/lib/maasflow
# No USER: the entrypoint starts as root only to copy the secrets, then runs maasflow as
# 10001:10001 (`--user 10001` works too, with secrets that user can read).
EXPOSE 9410
# SIGTERM (docker stop) starts a graceful stop: running actions get SHUTDOWN_GRACE (30 s) to
# finish, so give `docker stop -t 40` or compose's stop_grace_period: 40s.
STOPSIGNAL SIGTERM
# 503 from /healthz (MAAS unreachable, key rejected, loop stuck) exits 1: unhealthy.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["maasflow", "status", "--healthz", "--timeout", "5"]
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/maasflow-entrypoint"]
CMD []
