"""`maasflow [flags]`: wire settings into a running daemon, or a preview, and exit cleanly.

This is where the pieces meet: settings → logging → MAAS client, store, provisioner →
daemon; then telemetry (`-listen`), systemd notifications and signals around the loop.
It decides nothing itself, and starts no pass before MAAS has said who the key belongs to.
Unless previewing, it holds the state file's instance lock (`common.instance_lock`) for the
whole run. Exit status: 0 after a clean stop, a preview or a good `-once` pass; 1 when MAAS
could not be used (`-once`/`-preview`: at the first failure; the long-running daemon
retries what may heal, such as an unreachable MAAS or a rejected key, and gives up only on
an answer waiting cannot change, such as a URL that does not lead to MAAS's API); 2 for bad
configuration or a state file another daemon holds (raised as ConfigError, printed by
`maasflow.cli`). With a PostgreSQL -db several daemons may run; only the leader acts
(`daemon.leadership`), and one that loses its leadership exits 1 at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import NoReturn

import httpx
import structlog

from maasflow.common.bearer import read_token_file
from maasflow.common.clock import SYSTEM_CLOCK
from maasflow.common.errors import MaasError
from maasflow.common.instance_lock import InstanceLock
from maasflow.common.logs import configure_logging
from maasflow.common.notify import SystemdNotifier
from maasflow.common.postgres import PostgresUrl, read_password
from maasflow.common.secrets import (
    CREDENTIALS_VARIABLE,
    parse_token,
    read_credential,
    read_secret_file,
    readable_by_others,
)
from maasflow.common.supervision import sweep
from maasflow.daemon.actions import Actuator
from maasflow.daemon.control import control_routes
from maasflow.daemon.desire_api import desire_routes
from maasflow.daemon.event_feed import EventFeed
from maasflow.daemon.leadership import Leadership, Role
from maasflow.daemon.liveness import Liveness
from maasflow.daemon.loop import Daemon
from maasflow.daemon.maas.client import MaasClient, RequestRecord, longest_silence
from maasflow.daemon.metrics import Metrics
from maasflow.daemon.postgres_store import PostgresStore
from maasflow.daemon.preview import make_plan, print_plan
from maasflow.daemon.provisioning import ScriptProvisioner, provisioner_for
from maasflow.daemon.reload import reload_settings
from maasflow.daemon.setting_sources import Given
from maasflow.daemon.settings import Settings, load_settings
from maasflow.daemon.store import ProvisionStore, Store
from maasflow.daemon.telemetry import Health, build_telemetry_app, serve_telemetry

log = structlog.get_logger(__name__)

_KEY_FLAGS = ("-apiKey", "-apikey", "--apiKey", "--apikey")
CONTROL_CREDENTIAL = "control_token"  # LoadCredential=control_token:<file> under systemd
_CONTROL = "control token"
DESIRE_CREDENTIAL = "desire_token"  # LoadCredential=desire_token:<file> under systemd
_DESIRE = "desired-state token"


def main(argv: list[str]) -> int:
    settings = load_settings(argv, os.environ)  # every input checked, a flag's key included
    _hide_key_from_process_list(argv, settings)
    with _instance_lock(settings):
        configure_logging(settings.log_level, settings.log_format)
        log.info("starting maasflow", **settings.describe())
        for setting, instead in settings.warnings:
            log.warning(instead, setting=setting)
        _warn_if_key_file_is_open(settings)
        try:
            return asyncio.run(_run(settings))
        except MaasError as exc:
            log.error("MAAS could not be used", reason=str(exc))
            print(f"maasflow: {exc}", file=sys.stderr)
            return 1


def _instance_lock(settings: Settings) -> contextlib.AbstractContextManager[object]:
    """One daemon per state file (a second one exits 2); a preview only reads, so takes none."""
    if settings.preview or isinstance(settings.db, PostgresUrl):
        return contextlib.nullcontext()
    return InstanceLock.hold(settings.db, hint="give this one its own -db or -state-dir")


def _hide_key_from_process_list(argv: list[str], settings: Settings) -> None:
    """A key given as a flag moves to the environment and the process re-executes itself.

    maas-flow took the key as `-apikey`; keeping that working without leaving the secret
    in `ps` output means replacing our own argv, which only exec can do portably. The key
    was checked by `load_settings` already, so a malformed one is named by its flag.
    """
    if not settings.key_on_command_line:
        return
    rest = _without_key(argv)
    env = dict(os.environ, MAAS_API_KEY=settings.api_key.get_secret_value())
    env.pop("AUTOMATION_MAAS_API_KEY", None)
    os.execve(sys.executable, [sys.executable, "-m", "maasflow", *rest], env)  # noqa: S606 - argv list, no shell


def _without_key(argv: list[str]) -> list[str]:
    rest: list[str] = []
    args = iter(argv)
    for arg in args:
        name, sep, _ = arg.partition("=")
        if name not in _KEY_FLAGS:
            rest.append(arg)
        elif not sep:
            next(args, None)  # the key itself
    return rest


def _warn_if_key_file_is_open(settings: Settings) -> None:
    """A key file every local user can read lets any of them act on MAAS as the key's user."""
    path = settings.api_key_path
    if path is not None and readable_by_others(path):
        log.warning(
            "the MAAS API key file is readable by every user on this host",
            file=str(path),
            fix=f"chmod 600 {path} (or 640 with a group the daemon's user is in)",
        )


def key_source(settings: Settings) -> Callable[[], str] | None:
    """Where the client reads the key again after a 401: its file (none for a flag or variable).

    Under systemd the file is LoadCredential='s copy, made at start: a key rotated in
    /etc/maasflow/maas_api_key reaches it at the next `systemctl restart maasflow`.
    """
    path = settings.api_key_path
    if path is None:
        return None
    return lambda: read_secret_file(path, "the MAAS API key", "MAAS API key")


def _build(settings: Settings, metrics: Metrics, leadership: Leadership | None = None) -> Daemon:
    health = Health(settings.period)
    fence = None if leadership is None else leadership.fence

    def on_response(record: RequestRecord) -> None:
        metrics.observe_request(record.method, record.op or "", record.status, record.duration_s)
        if record.status is None or record.status >= 500:
            answer = "no response" if record.status is None else f"HTTP {record.status}"
            health.request_failed(f"MAAS unreachable: {record.method} {record.path}: {answer}")

    liveness = Liveness(longest_silence(), SYSTEM_CLOCK)  # the client's default timeouts
    client = maas_client(
        settings, on_response=on_response, on_progress=liveness.progressed, before_write=fence
    )
    token = settings.provision_token
    provisioner = provisioner_for(
        settings.provision_url,
        settings.provision_ttl,
        token=None if token is None else token.get_secret_value(),
        runs_dir=Path(settings.state_dir) / "runs",
    )
    if isinstance(provisioner, ScriptProvisioner) and not settings.preview:
        provisioner.check()
    store = _open_store(settings)
    # Several daemons may share a state directory; only a lone daemon knows every run in it.
    if isinstance(provisioner, ScriptProvisioner) and not settings.preview and not fence:
        sweep(provisioner.runs_dir, {r.run_file for r in store.all() if r.run_file})
    actuator = Actuator(
        client,
        store,
        provisioner,
        distro=settings.distro,
        power_helper=settings.power_helper_script,
        power_helper_args=settings.power_helper_args,
        health=health,
        fence=fence or (lambda: None),
        build=lambda where: provisioner_for(
            where,
            settings.provision_ttl,
            token=None if token is None else token.get_secret_value(),
            runs_dir=Path(settings.state_dir) / "runs",
        ),
    )
    return Daemon(
        client,
        actuator,
        filters=settings.filter,
        mappings=settings.mappings,
        period=settings.period,
        concurrency=settings.concurrency,
        always_rename=settings.always_rename,
        provision_existing=settings.provision_existing,
        commission_unknown_power=settings.commission_unknown_power,
        retry_failed=settings.retry_failed,
        quarantine_tag=settings.quarantine_tag,
        metrics=metrics,
        health=health,
        liveness=liveness,
        targets=settings.targets,
        feed=_feed(settings, client, store),
    )


def _feed(settings: Settings, client: MaasClient, store: ProvisionStore) -> EventFeed | None:
    """With `-events on` (not for a preview's one pass), the cursor into MAAS's event log;
    full listings never come closer than the period when the log fails."""
    if not settings.events or settings.preview or settings.once:
        return None
    return EventFeed(
        client.events_after, relist_s=settings.relist, min_full_s=settings.period, store=store
    )


def maas_client(
    settings: Settings,
    *,
    on_response: Callable[[RequestRecord], None] | None = None,
    on_progress: Callable[[], None] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    before_write: Callable[[], None] | None = None,
) -> MaasClient:
    """The daemon's MAAS client (`transport` and `sleep` are for tests).

    `on_progress` hears every sign that a call moves (the watchdog's `Liveness`);
    `before_write` is the leadership fence.
    """
    return MaasClient(
        settings.maas_url,
        settings.api_key.get_secret_value(),
        api_version=settings.api_version,
        read_only=settings.preview,
        on_response=on_response,
        on_progress=on_progress,
        max_answer_bytes=settings.max_answer_bytes,
        transport=transport,
        sleep=sleep,
        before_write=before_write,
        # One attempt per write: a write's retry waits would hold an action slot (a MAAS
        # that answers 503 for a doomed machine would fill them all); the per-machine
        # backoff (daemon/setbacks.py) sends it again on a later pass. Reads keep retrying.
        write_attempts=1,
        key_source=key_source(settings),
    )


def _open_store(settings: Settings) -> ProvisionStore:
    """The provisioning store; a preview reads an existing one and never creates a file.

    A `postgresql://` -db opens the PostgreSQL store, with the password from
    -db-password-file or systemd's credential. Script runs a previous daemon left running
    are not touched here: the first pass adopts them (`attempts`), waiting for those alive.
    """
    if isinstance(settings.db, PostgresUrl):
        password = read_password(settings.db_password_file, "-db-password-file")
        return PostgresStore(settings.db, password)
    path = Path(settings.db)
    if settings.preview and not path.exists():
        return Store(":memory:")
    return Store(path)


def _leadership(settings: Settings) -> Leadership | None:
    """With a PostgreSQL -db, this daemon acts only while it leads (`daemon.leadership`)."""
    if settings.preview or not isinstance(settings.db, PostgresUrl):
        return None
    password = read_password(settings.db_password_file, "-db-password-file")
    return Leadership(settings.db, password, lease=settings.leader_lease)


def _follow(leadership: Leadership, daemon: Daemon, metrics: Metrics) -> None:
    """Show the role in /healthz, /metrics and /state as it changes; feed the watchdog."""

    def changed(role: Role) -> None:
        daemon.health.role = str(role)
        metrics.observe_leader(role is Role.LEADER)

    leadership.on_change = changed
    leadership.on_try = daemon.liveness.progressed  # a standby's tries keep the watchdog fed
    changed(leadership.role)
    daemon.leadership = leadership.describe


async def _run(settings: Settings) -> int:
    metrics = Metrics()
    leadership = _leadership(settings)
    daemon = _build(settings, metrics, leadership)
    if leadership is not None:
        _follow(leadership, daemon, metrics)
    try:
        if settings.preview:
            await daemon.identify(retry=False)
            print_plan(await make_plan(daemon), settings.log_format, sys.stdout)
            return 0
        if settings.once:
            return await _once(daemon, settings, leadership)
        return await _forever(daemon, settings, metrics, leadership)
    finally:
        await daemon.client.aclose()
        daemon.flush_history()  # `-once`: what its actions noted
        daemon.actuator.store.close()
        if leadership is not None:
            await leadership.close()


async def _once(daemon: Daemon, settings: Settings, leadership: Leadership | None) -> int:
    reload_on_sighup(daemon, settings.reload_from, SystemdNotifier())
    await daemon.identify(retry=False)
    if leadership is not None:
        await leadership.campaign(asyncio.Event())  # -once acts only as the leader
        asyncio.create_task(leadership.hold())  # noqa: RUF006 - ends with the run
    try:
        await daemon.run_pass()
    except MaasError:
        return 1
    ttl = settings.provision_ttl or math.inf  # PROVISION_TTL=0: no limit, wait for the script
    await daemon.executor.drain(ttl + settings.grace)
    return 0


def reload_on_sighup(
    daemon: Daemon, sources: Mapping[str, Given], notifier: SystemdNotifier
) -> None:
    """From now on SIGHUP reloads the filter and mappings files (`daemon.reload`).

    SIGHUP's default action ends the process, and systemd counts that as a clean exit and
    does not restart it: so this is installed before the first request to MAAS.
    """
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGHUP, _reload, daemon, sources, notifier)


def _reload(daemon: Daemon, sources: Mapping[str, Given], notifier: SystemdNotifier) -> None:
    notifier.reloading(time.monotonic_ns() // 1000)
    try:
        reload_settings(daemon, sources)
    finally:
        notifier.ready()


async def _forever(
    daemon: Daemon, settings: Settings, metrics: Metrics, leadership: Leadership | None
) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    notifier = SystemdNotifier()
    reload_on_sighup(daemon, settings.reload_from, notifier)
    async with _telemetry(daemon, settings, metrics):
        notifier.ready()
        watchdog = asyncio.create_task(notifier.keepalive(daemon.loop_alive, daemon.clock.sleep))
        try:
            await run_identified(
                daemon, stop, lambda: notifier.status(daemon.status_line()), leadership
            )
            if leadership is not None and leadership.lost.is_set():
                _exit_fenced()
        finally:
            notifier.stopping()
            await daemon.shutdown(settings.grace)
            watchdog.cancel()
    return 0


def _exit_fenced() -> NoReturn:
    """Leadership lost: exit 1 at once, as a SIGKILL would end it (from any thread).

    Draining would cancel running provisioning, which the new leader would find cut short;
    left running, the new leader adopts it (the store records every run). Writes are
    fenced already; nothing here writes.
    """
    log.error("leadership lost: exiting")
    sys.stderr.flush()
    sys.stdout.flush()
    os._exit(1)


async def run_identified(
    daemon: Daemon,
    stop: asyncio.Event,
    on_pass: Callable[[], None] | None = None,
    leadership: Leadership | None = None,
) -> None:
    """Identify to MAAS (retrying what may heal), then run passes until `stop` is set.

    No pass starts unless identify succeeded: an identify that gives up raises its error
    (the caller exits 1 with its message); `stop` during identify ends without a pass.
    With `leadership`, passes start only once this daemon leads, and stop when it loses.
    """
    identify = asyncio.create_task(daemon.identify())
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({identify, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if not identify.done():
        identify.cancel()
        await asyncio.gather(identify, return_exceptions=True)
        return
    identify.result()  # raises when MAAS refused for good
    if leadership is None:
        await daemon.run(stop, on_pass=on_pass)
    elif await leadership.campaign(stop):
        await _lead(daemon, stop, on_pass, leadership)


async def _lead(
    daemon: Daemon, stop: asyncio.Event, on_pass: Callable[[], None] | None, leadership: Leadership
) -> None:
    """Run passes while leading: the heartbeat runs beside them, and losing sets `stop`."""
    holding = asyncio.create_task(leadership.hold())
    leadership.watch(_exit_fenced)
    lost = asyncio.create_task(leadership.lost.wait())
    lost.add_done_callback(lambda _: stop.set())
    try:
        await daemon.run(stop, on_pass=on_pass)
    finally:
        holding.cancel()
        lost.cancel()


@contextlib.asynccontextmanager
async def _telemetry(daemon: Daemon, settings: Settings, metrics: Metrics) -> AsyncIterator[None]:
    if not settings.listen:
        yield
        return
    token, desire = control_token(settings), desire_token(settings)
    app = build_telemetry_app(
        daemon.health,
        metrics,
        daemon.snapshot,
        snapshot_all=lambda: daemon.snapshot(left_out=True),
        history=daemon.history,
        routes=[*control_routes(daemon, token), *desire_routes(daemon.desired, desire, token)],
    )
    async with serve_telemetry(app, settings.listen) as url:
        api = "on" if token or desire else "off"
        log.info("telemetry listening", url=url, control="on" if token else "off", desired=api)
        yield


def control_token(settings: Settings, environ: Mapping[str, str] = os.environ) -> str | None:
    """The token `/control/*` requires: -control-token-file's, else the credential
    `control_token` (systemd's LoadCredential=); None, control off, when neither gives one
    (a blank credential, the unit's default, gives none)."""
    return _token(settings.control_token_file, "-control-token-file", CONTROL_CREDENTIAL,
                  _CONTROL, environ)  # fmt: skip


def desire_token(settings: Settings, environ: Mapping[str, str] = os.environ) -> str | None:
    """The token `/machines/<id>/desired` requires (besides the control token):
    -desire-token-file's, else the credential `desire_token`; None when neither gives one."""
    return _token(settings.desire_token_file, "-desire-token-file", DESIRE_CREDENTIAL,
                  _DESIRE, environ)  # fmt: skip


def _token(
    file: Path | None, flag: str, credential: str, what: str, environ: Mapping[str, str]
) -> str | None:
    if file is not None:
        return read_token_file(file, flag, what)
    text = read_credential(credential, what, environ)
    origin = f"{CREDENTIALS_VARIABLE}/{credential}"
    return None if text is None else parse_token(text, origin, what)
