"""`maasflow status`: what the daemon knows about each machine, as a table or JSON.

The state comes from the running daemon's endpoint (`GET <url>/state`, `--url`, default
`$MAASFLOW_STATUS_URL` or `http://127.0.0.1:9410`; schema in `maasflow.daemon.telemetry`)
or, with `--db PATH`, from the daemon's SQLite store, opened read-only (its tables know
provisioning, setbacks and retry counts, so MAAS status and zone are blank there). REASON
says why maasflow acts on a machine or leaves it alone (waiting for MAAS, an action in
flight, backing off until a time, locked, owned by another user, quarantined, paused, ...);
`--all` adds the machines the filters leave out, with the filter that does. DESIRED marks a
machine with a desire an orchestrator stored over HTTP (`api: target=ready ...`; user data
as its size only). LAST ERROR is
MAAS's own `error_description` (or `status_message`) for a machine in trouble, else the last
error maasflow met. The BACKOFF column shows an action backing off after failures (`deploy
x3, next in 2m`) and the retries spent on a failed machine (`-retry-failed`); a quarantined
machine shows phase `quarantined`. `--host REGEX` keeps machines whose hostname matches
(unanchored search), `--json` prints the state document for scripts, `--healthz` asks
`/healthz` instead (what the container HEALTHCHECK runs). `maasflow status <machine>`
shows one machine and its recent history (`machine_report`).

Exit status: 0 shown; 1 the daemon could not be reached or answered nonsense (or, with
`--healthz`, is unhealthy); 2 bad input (flag, regex, URL, database file). Text from MAAS is
shown with control and bidirectional characters escaped (`safe_text.escape`), so a hostile
hostname can neither drive the terminal nor read backwards.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sqlite3
import sys
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from maasflow.common.command_parser import CommandParser
from maasflow.common.errors import ConfigError
from maasflow.common.options import Bound, duration_type
from maasflow.common.safe_text import escape
from maasflow.common.sqlite import open_read_only
from maasflow.daemon.lifecycle import Phase, ProvisionState
from maasflow.daemon.stored_desire import summary

DEFAULT_URL = "http://127.0.0.1:9410"
ERROR_WIDTH = 60
REASON_WIDTH = 64
CELL_WIDTH = 40
COLUMNS = (
    "HOSTNAME",
    "SYSTEM_ID",
    "ZONE",
    "MAAS STATUS",
    "PHASE",
    "DESIRED",
    "REASON",
    "LAST ACTION",
    "WHEN",
    "ATTEMPTS",
    "BACKOFF",
    "LAST ERROR",
)


class Unreachable(Exception):
    """The daemon's endpoint did not answer usable state; the message says which and why."""


def _parser() -> argparse.ArgumentParser:
    p = CommandParser(prog="maasflow status", description="Show what the daemon knows per machine.")
    p.add_argument(
        "--url",
        default=os.environ.get("MAASFLOW_STATUS_URL", DEFAULT_URL),
        help="the daemon's -listen endpoint (env MAASFLOW_STATUS_URL; default %(default)s)",
    )
    p.add_argument("--db", metavar="PATH", help="read the daemon's SQLite store instead")
    p.add_argument("--host", metavar="REGEX", help="only hostnames matching REGEX (search)")
    p.add_argument("--all", action="store_true", help="list machines the filters leave out too")
    p.add_argument(
        "machine", nargs="?", help="show this machine (hostname or system_id) and its history"
    )
    p.add_argument("--json", action="store_true", help="print JSON (the /state schema)")
    p.add_argument("--healthz", action="store_true", help="check /healthz: exit 0 healthy, 1 not")
    p.add_argument(
        "--timeout", type=duration_type(Bound.POSITIVE), default=5.0, help="HTTP timeout (5s)"
    )
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    pattern = _compile(args.host)
    try:
        if args.healthz:
            return _healthz(args.url, args.timeout)
        if args.machine is not None:
            return _one_machine(args)
        if args.db:
            doc = read_store(args.db)
        else:
            doc = fetch_state(args.url, args.timeout, every=args.all)
    except Unreachable as exc:
        print(f"maasflow status: {exc}", file=sys.stderr)
        return 1
    doc["machines"] = [m for m in doc["machines"] if pattern.search(shown(m.get("hostname")))]
    print(json.dumps(doc, indent=2, default=str) if args.json else render_table(doc))
    return 0


def _one_machine(args: argparse.Namespace) -> int:
    from maasflow.daemon import machine_report  # it builds on this module's helpers

    return machine_report.show(args)


def _compile(regex: str | None) -> re.Pattern[str]:
    try:
        return re.compile(regex or "")
    except re.error as exc:
        raise ConfigError(f"--host {regex!r} is not a valid regular expression: {exc}") from None


# -- reading the endpoint -----------------------------------------------------------------


def endpoint(url: str, path: str) -> str:
    """`url` (the daemon's -listen endpoint, perhaps ending in `path` already) + `path`."""
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"--url {url!r}: expected http://host:port, e.g. {DEFAULT_URL}")
    base = url.rstrip("/")
    return base if base.endswith(path) else base + path


def http_get(url: str, timeout: float) -> httpx.Response:
    hint = "is the daemon running with -listen? (or set --url / MAASFLOW_STATUS_URL, or --db)"
    try:
        return httpx.get(url, timeout=timeout, trust_env=False)
    except httpx.InvalidURL as exc:
        raise ConfigError(f"--url: {exc}") from None
    except httpx.HTTPError as exc:
        raise Unreachable(f"cannot reach the maasflow daemon at {url} ({exc}); {hint}") from None


def fetch_state(url: str, timeout: float = 5.0, *, every: bool = False) -> dict[str, Any]:
    """The daemon's `/state` document (`every`: with the machines left out), checked for the
    shape this command reads."""
    url = endpoint(url, "/state")
    response = http_get(url + "?all=1" if every else url, timeout)
    if response.status_code != 200:
        raise Unreachable(f"{url} answered HTTP {response.status_code}, not the daemon's state")
    try:
        doc = response.json()
    except ValueError:
        raise Unreachable(f"{url} did not answer JSON; is it a maasflow daemon?") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("machines"), list):
        raise Unreachable(f"{url} answered JSON without a machines list; is it maasflow?")
    doc["machines"] = [m for m in doc["machines"] if isinstance(m, dict)]
    return doc


def _healthz(url: str, timeout: float) -> int:
    url = endpoint(url, "/healthz")
    response = http_get(url, timeout)
    try:
        reason = str(response.json().get("reason", ""))
    except (ValueError, AttributeError):
        reason = response.text[:200]
    print("ok" if response.status_code == 200 else f"unhealthy: {_clean(reason)}")
    return 0 if response.status_code == 200 else 1


# -- the table ----------------------------------------------------------------------------


def render_table(doc: Mapping[str, Any], now: float | None = None) -> str:
    """A summary line, then one aligned row per machine (sorted by hostname)."""
    ref = epoch(doc.get("generated_at")) or (time.time() if now is None else now)
    machines = sorted(doc.get("machines", []), key=lambda m: shown(m.get("hostname")))
    rows = [list(COLUMNS)] + [_row(m, ref) for m in machines]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = [_summary(doc, ref, len(machines))]
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    return "\n".join(lines)


def _summary(doc: Mapping[str, Any], ref: float, count: int) -> str:
    source = shown(doc.get("maas_url")) or shown(doc.get("source")) or "?"
    info = doc.get("pass") if isinstance(doc.get("pass"), dict) else {}
    parts = [f"{count} machine{'s' if count != 1 else ''}", f"MAAS {source}"]
    if doc.get("paused") is True:
        parts.insert(0, "PAUSED (maasflow resume to act again)")
    if info:
        parts.append(f"passes {shown(info.get('count'))}")
        parts.append(f"last ok {ago(epoch(info.get('last_ok_at')), ref)}")
        if info.get("last_error"):
            parts.append(f"last error: {truncate(shown(info['last_error']), ERROR_WIDTH)}")
    leading = doc.get("leadership")
    if isinstance(leading, dict):  # several daemons on one database: who acts
        leader = truncate(shown(leading.get("leader")), CELL_WIDTH) or "?"
        parts.append(f"this daemon: {shown(leading.get('role'))}; leader {leader}")
    return "; ".join(parts)


def _row(m: Mapping[str, Any], ref: float) -> list[str]:
    status = m.get("status_name") or m.get("status")
    named = (m.get("hostname"), m.get("system_id"), m.get("zone"), status, m.get("phase"))
    cells = [truncate(shown(v), CELL_WIDTH) or "-" for v in named]
    cells.append(desired_cell(m.get("desired")))
    cells.append(truncate(shown(m.get("reason")), REASON_WIDTH) or "-")
    cells.append(truncate(shown(m.get("last_action")), CELL_WIDTH) or "-")
    cells.append(ago(epoch(m.get("last_action_at")), ref))
    cells.append(shown(m.get("attempts")) or "0")
    cells.append(backoff_cell(m, ref))
    cells.append(truncate(shown(last_error(m)), ERROR_WIDTH) or "-")
    return cells


def desired_cell(desired: Any) -> str:
    """`api: target=ready` for a machine with a desire stored over HTTP; `-` without."""
    if not isinstance(desired, Mapping):
        return "-"
    return truncate(f"api: {shown(desired.get('summary'))}", CELL_WIDTH)


def last_error(m: Mapping[str, Any]) -> Any:
    """MAAS's own error text for a machine in trouble, else maasflow's last error."""
    return m.get("maas_error") or m.get("last_error")


def backoff_cell(m: Mapping[str, Any], now: float) -> str:
    """`deploy x3, next in 2m` for an action backing off; `retried 2x` for spent retries."""
    parts = []
    until = epoch(m.get("backoff_until"))
    if until is not None:
        action = truncate(shown(m.get("backoff_action")), CELL_WIDTH) or "action"
        parts.append(f"{action} x{shown(m.get('backoff_failures'))}, next {within(until, now)}")
    retries = m.get("retries")
    if isinstance(retries, int) and not isinstance(retries, bool) and retries > 0:
        parts.append(f"retried {retries}x")
    return "; ".join(parts) or "-"


def within(then: float, now: float) -> str:
    """`in 12s`, `in 3m`, ...; `now` once it is due."""
    seconds = int(then - now)
    if seconds <= 0:
        return "now"
    return "in " + ago(now - seconds, now).removesuffix(" ago")


def ago(then: float | None, now: float) -> str:
    """`12s ago`, `3m ago`, `5h ago`, `2d ago`; `-` when unknown."""
    if then is None:
        return "-"
    seconds = max(0, int(now - then))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def epoch(value: Any) -> float | None:
    """Unix seconds from a number or an ISO-8601 string; None when neither."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return None


def shown(value: Any) -> str:
    return "" if value is None else _clean(str(value))


def _clean(text: str) -> str:
    return escape(text)


def truncate(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# -- reading the store --------------------------------------------------------------------

_PHASE_OF_STATE: dict[str, str] = {
    ProvisionState.RUNNING: Phase.PROVISIONING,
    ProvisionState.COMPLETE: Phase.PROVISIONED,
    ProvisionState.FAILED: "provision failed",  # not a Phase: the daemon retries it in provisioning
}


def store_file(path: str) -> Path:
    """The store file `--db` names; ConfigError when there is none."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(
            f"--db {path}: no such file; give the daemon's -db file "
            "(default ~/.local/state/maasflow/maasflow.sqlite, or $STATE_DIRECTORY/maasflow.sqlite)"
        )
    return file


def read_store(path: str) -> dict[str, Any]:
    """The store's provisioning records in the `/state` shape (read-only; MAAS fields blank)."""
    file = store_file(path)
    machines = {row["system_id"]: _store_machine(row) for row in table_rows(file)}
    _add_trouble(file, machines)
    return {
        "generated_at": time.time(),
        "maas_url": None,
        "source": str(file),
        "pass": None,
        "machines": list(machines.values()),
    }


def table_rows(
    file: Path, table: str = "provision", *, optional: bool = False
) -> list[dict[str, Any]]:
    """Every row of `table`; none when it is `optional` and the file predates it."""
    try:
        with contextlib.closing(open_read_only(file, label=f"--db {file}")) as db:
            db.row_factory = sqlite3.Row
            return [dict(row) for row in db.execute(f"SELECT * FROM {table}")]  # noqa: S608 - our table names
    except sqlite3.Error as exc:
        if optional and "no such table" in str(exc):
            return []
        hint = f"no {table} table: is it maasflow's store?" if "no such table" in str(exc) else exc
        raise ConfigError(f"--db {file}: cannot read it ({hint})") from None


def _add_trouble(file: Path, machines: dict[str, dict[str, Any]]) -> None:
    """Fold the setback, retry-count and desire tables (absent in older files) into
    `machines`."""
    folds = (("setback", _fold_setback), ("recovery", _fold_recovery), ("desire", _fold_desire))
    for table, fold in folds:
        try:
            rows = table_rows(file, table)
        except ConfigError:
            continue  # a state file from before these tables existed
        for row in rows:
            sid = str(row.get("system_id"))
            fold(machines.setdefault(sid, _bare_machine(sid)), row)


def _bare_machine(system_id: Any) -> dict[str, Any]:
    """A machine the store knows only from its setback or retry count."""
    blank = dict.fromkeys(("hostname", "zone", "pool", "status", "status_name", "phase"))
    blank |= dict.fromkeys(("last_action", "last_action_at", "last_outcome", "last_error"))
    return blank | {"system_id": system_id, "attempts": 0}


def _fold_setback(machine: dict[str, Any], row: Mapping[str, Any]) -> None:
    machine["backoff_action"] = row.get("action")
    machine["backoff_failures"] = row.get("failures")
    machine["backoff_until"] = row.get("retry_at")
    machine["last_error"] = machine.get("last_error") or row.get("last_error") or None


def _fold_desire(machine: dict[str, Any], row: Mapping[str, Any]) -> None:
    try:
        desire = json.loads(str(row.get("desire")))
    except ValueError:
        desire = {}
    text = summary(desire) if isinstance(desire, dict) else "unreadable"
    machine["hostname"] = machine.get("hostname") or row.get("hostname")
    machine["desired"] = {"summary": text, "set_at": row.get("set_at"), "set_by": row.get("set_by")}


def _fold_recovery(machine: dict[str, Any], row: Mapping[str, Any]) -> None:
    machine["retries"] = row.get("retries") or 0
    if row.get("quarantined"):
        machine["phase"] = Phase.QUARANTINED


def _store_machine(row: Mapping[str, Any]) -> dict[str, Any]:
    state = row.get("state")
    mode = row.get("mode")
    when = row.get("updated_at") or row.get("finished_at") or row.get("started_at")
    return {
        "system_id": row.get("system_id"),
        "hostname": row.get("hostname"),
        "zone": row.get("zone"),
        "pool": row.get("pool"),
        "status": None,
        "status_name": None,
        "phase": _PHASE_OF_STATE.get(str(state), state),
        "last_action": f"provision ({mode})" if mode else "provision",
        "last_action_at": when,
        "last_outcome": state,
        "attempts": row.get("attempts") or 0,
        "last_error": row.get("last_error") or None,
    }
