"""`maasflow serve`: flags → `ServiceConfig`, then serve until SIGTERM or SIGINT (exit 0).

    maasflow serve --script /usr/local/bin/provision \\
        [--role-script storage=/usr/local/bin/provision-storage ...] \\
        [--allow-script wipe=/usr/local/bin/wipe ...] [--role-selector-url URL] \\
        [--default-role compute] [--workers 5] [--job-timeout 1h] [--queue-limit 100] \\
        [--db PATH | --db postgresql://... [--db-password-file FILE] [--heartbeat 10s]] \\
        [--host 127.0.0.1] [--port 9420] [--tls-cert PEM --tls-key PEM] \\
        [--provision-token-file PATH] \\
        [power target flags, see `power_api`]

Port 9420 by default: free in IANA's registry and unlikely to meet another local service
(the opencord provisioner used 4243; pass `--port 4243` to stand in for it). `--port 0` picks
a free port; the `service.listening` log line tells which. `--provision-token-file` (or the
env `MAASFLOW_PROVISION_TOKEN`, the token itself) makes `/provision/*` require it as a Bearer
token; without one, listening on a non-loopback address logs a warning. `--db` defaults to
`serve.sqlite` in the state directory (`maasflow.common.options.state_directory`:
`$STATE_DIRECTORY`, systemd's StateDirectory=, else `${XDG_STATE_HOME:-~/.local/state}/maasflow`);
`--db :memory:` keeps nothing. `--job-timeout` is a duration in the daemon's syntax (`90m`,
`1h30m`), a bare number still meaning seconds.
One `serve` per records file: it holds `<db>.lock` (`common.instance_lock`) while it runs,
and a second one on the same file exits 2 naming the holder's pid. `--db postgresql://...`
instead makes this process one of any number of replicas sharing a job queue
(`shared_pool`); its password comes from `--db-password-file`, else the systemd credential
`maasflow_db_password`, else ~/.pgpass (a password in the URL is refused), and its runs'
result files wait in `serve-runs/` in the state directory. `--heartbeat` (10s) is how often
a replica stamps itself alive; one silent for three is taken for dead.

Bad flags raise `ConfigError` (one line, exit 2). Under systemd (`Type=notify`) the service
sends READY=1 once listening and WATCHDOG=1 pings while its workers are alive. SIGTERM or
SIGINT stops the server gracefully: the running jobs are killed and recorded as failed
("interrupted by shutdown"), then exit 0. SIGHUP changes nothing and is logged: the service
has nothing it can reload in place yet (its flags, scripts and power config need a restart),
and SIGHUP's default action would end it for good under systemd.

What this module stops at: flag parsing and the signal-driven run; `server` does the serving.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import structlog

from maasflow.common.command_parser import CommandParser
from maasflow.common.errors import ConfigError
from maasflow.common.instance_lock import InstanceLock
from maasflow.common.logs import add_logging_arguments, configure_logging, logging_options
from maasflow.common.notify import SystemdNotifier
from maasflow.common.options import Bound, duration_type, state_directory
from maasflow.common.postgres import PostgresUrl, is_postgres_url, read_password
from maasflow.serve.app import DEFAULT_PORT, ServiceConfig
from maasflow.serve.power_api import add_power_arguments, power_router_from_args
from maasflow.serve.provision_auth import TOKEN_ENV, TOKEN_FLAG, token_from
from maasflow.serve.roles import ROLE_PATTERN, executable, named_scripts, selector_url
from maasflow.serve.server import serve_service

log = structlog.get_logger(__name__)

DESCRIPTION = (
    "Run the provisioning service (the opencord provisioner's POST-plus-poll API that the "
    "daemon's PROVISION_URL can point at) and, with --power-config, the MAAS webhook power target."
)


def build_parser() -> argparse.ArgumentParser:
    """The flags of `maasflow serve`, the power target's included."""
    parser = CommandParser(prog="maasflow serve", description=DESCRIPTION)
    _add_listen_arguments(parser)
    _add_job_arguments(parser)
    _add_db_arguments(parser)
    add_logging_arguments(parser)
    add_power_arguments(parser)
    return parser


def _add_listen_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("listening")
    group.add_argument("--host", default="127.0.0.1", help="address to listen on (%(default)s)")
    group.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="%(default)s; 0 picks a free port"
    )
    group.add_argument("--tls-cert", metavar="PEM", help="certificate (chain) to serve HTTPS")
    group.add_argument("--tls-key", metavar="PEM", help="the unencrypted key of --tls-cert")
    group.add_argument(
        TOKEN_FLAG,
        metavar="PATH",
        help=f"file holding a token /provision/* requires as 'Authorization: Bearer' "
        f"(or set {TOKEN_ENV}); default: no token",
    )


def _add_db_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("records")
    group.add_argument(
        "--db",
        metavar="PATH|URL",
        help="SQLite file of records (default $STATE_DIRECTORY/serve.sqlite, else "
        "~/.local/state/maasflow/serve.sqlite; ':memory:' keeps nothing), or a "
        "postgresql://user@host/database URL whose job queue replicas share",
    )
    group.add_argument(
        "--db-password-file",
        type=Path,
        metavar="FILE",
        help="the PostgreSQL password (default: the systemd credential "
        "maasflow_db_password, else ~/.pgpass)",
    )
    group.add_argument(
        "--heartbeat",
        type=duration_type(Bound.POSITIVE),
        default=10.0,
        metavar="DURATION",
        help="replicas on PostgreSQL: how often each stamps itself alive (10s); one silent "
        "for 3 heartbeats is taken for dead",
    )


def _add_job_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("provisioning jobs")
    group.add_argument(
        "--script", metavar="PATH", help="run as PATH ID NAME IP MAC ROLE for roles without one"
    )
    group.add_argument(
        "--role-script",
        action="append",
        default=[],
        metavar="ROLE=PATH",
        help="the script of one role (repeatable); a request may also name it in 'script'",
    )
    group.add_argument(
        "--allow-script",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a script a request may choose by NAME in its 'script' field (repeatable)",
    )
    group.add_argument("--default-role", default="compute", help="(%(default)s)")
    group.add_argument(
        "--role-selector-url", metavar="URL", help="GET URL?id=&name=&ip=&mac= answers a role"
    )
    group.add_argument("--workers", type=int, default=5, help="jobs run at once (%(default)s)")
    group.add_argument(
        "--job-timeout",
        type=duration_type(Bound.POSITIVE),
        default=3600.0,
        metavar="DURATION",
        help="how long a job may run: 1h (the default), 90m, or seconds",
    )
    group.add_argument(
        "--queue-limit", type=int, default=100, help="pending jobs before 429 (%(default)s)"
    )


def config_from_args(
    args: argparse.Namespace, env: Mapping[str, str] | None = None
) -> ServiceConfig:
    """Check the parsed flags and build the service's configuration."""
    env = os.environ if env is None else env
    roles = named_scripts("--role-script", args.role_script)
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port}: must be between 0 and 65535")
    return ServiceConfig(
        script=None if args.script is None else executable("--script", args.script),
        role_scripts=roles,
        allowed_scripts=named_scripts("--allow-script", args.allow_script, roles),
        default_role=_role(args.default_role),
        role_selector_url=_optional_url(args.role_selector_url),
        workers=args.workers,
        job_timeout=args.job_timeout,
        queue_limit=args.queue_limit,
        **_records(args, env),
        heartbeat=args.heartbeat,
        tls_cert=_readable("--tls-cert", args.tls_cert),
        tls_key=_readable("--tls-key", args.tls_key),
        provision_token=token_from(args.provision_token_file, env),
    )


def _records(args: argparse.Namespace, env: Mapping[str, str]) -> dict[str, Any]:
    """Where records live: `--db` as a file, or a PostgreSQL queue with its password."""
    if args.db is None or not is_postgres_url(args.db):
        if args.db_password_file is not None:
            raise ConfigError("--db-password-file: only with a postgresql:// --db")
        return {"db": args.db or default_db_path(env)}
    return {
        "db": PostgresUrl.parse(args.db, "--db"),
        "db_password": read_password(args.db_password_file, "--db-password-file", env),
        "runs_dir": default_db_path(env).with_name("serve-runs"),
    }


def default_db_path(env: Mapping[str, str]) -> Path:
    """Where records live when `--db` is not given: serve.sqlite in the state directory."""
    return state_directory(env) / "serve.sqlite"


def main(argv: list[str]) -> int:
    """Run `maasflow serve` until a signal; 0 after a clean shutdown."""
    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    level, fmt = logging_options(args.log_level, args.log_format, os.environ)
    with _instance_lock(config):
        configure_logging(level, fmt)
        asyncio.run(_serve_until_signal(config, args))
    return 0


def _instance_lock(config: ServiceConfig) -> AbstractContextManager[object]:
    """One serve per records file; replicas on PostgreSQL take no lock (many may run)."""
    if isinstance(config.db, PostgresUrl):
        return nullcontext()
    return InstanceLock.hold(config.db, hint="give this one its own --db")


async def _serve_until_signal(config: ServiceConfig, args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, _hangup)
    power = power_router_from_args(args)
    notifier = SystemdNotifier()
    async with serve_service(config, host=args.host, port=args.port, power=power) as svc:
        notifier.ready()
        notifier.status(f"serving on {svc.url}")
        keepalive = asyncio.create_task(notifier.keepalive(lambda: svc.pool.healthy))
        try:
            await stop.wait()
        finally:
            notifier.stopping()
            keepalive.cancel()


def _hangup() -> None:
    """SIGHUP reloads nothing yet, and must not end the service (systemd would not restart it)."""
    log.warning(
        "SIGHUP ignored: maasflow serve reloads nothing; restart it to apply changed flags, "
        "scripts or power config"
    )


def _role(value: str) -> str:
    if not ROLE_PATTERN.fullmatch(value):
        raise ConfigError(f"--default-role {value!r}: use letters, digits, '.', '_' or '-'")
    return value


def _optional_url(value: str | None) -> str | None:
    return None if value is None else selector_url(value)


def _readable(flag: str, value: str | None) -> Path | None:
    if value is None:
        return None
    path = Path(value).expanduser()
    if not path.is_file() or not os.access(path, os.R_OK):
        raise ConfigError(f"{flag} {value}: not a readable file")
    return path
