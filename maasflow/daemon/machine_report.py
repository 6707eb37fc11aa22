"""`maasflow status <machine>`: one machine, why it stands where it does, and its history.

The machine is named by hostname or system_id. From the running daemon it reads
`GET /machines/<machine>` (schema in `maasflow.daemon.telemetry`): the machine's row as the
last pass saw it and its recent history (the actions sent and MAAS's answers, provisioning
attempts, operators' retries; the newest `daemon.history.HISTORY_LIMIT`). With `--db` it
reads the same history from the store, read-only, with what the store knows of the machine
(its provisioning record, setback and retry count). Either way it shows the desire an
orchestrator stored for it over HTTP, if any (`daemon.desire_api`; user data as its size
only). `--json` prints the document. Text from
MAAS is escaped as in the table (`report`). Exit status as `maasflow status`: 1 also when
neither knows the machine.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from maasflow.daemon import report
from maasflow.daemon.report import Unreachable

DETAIL_WIDTH = 100


def show(args: argparse.Namespace) -> int:
    """Print machine `args.machine` from the daemon (or `args.db`); 1 when nobody knows it."""
    key = str(args.machine)
    doc = read_store(args.db, key) if args.db else fetch(args.url, key, args.timeout)
    if doc is None:
        where = f"--db {args.db}" if args.db else "the daemon"
        raise Unreachable(f"{where} knows no machine {report.shown(key)!r} (hostname or system_id)")
    print(json.dumps(doc, indent=2, default=str) if args.json else render(doc))
    return 0


def fetch(url: str, key: str, timeout: float) -> dict[str, Any] | None:
    """The daemon's `/machines/<key>` document; None when it knows no such machine."""
    base = report.endpoint(url, "/state").removesuffix("/state")
    target = f"{base}/machines/{quote(key, safe='')}"
    response = report.http_get(target, timeout)
    if response.status_code == 404:
        return None
    try:
        doc = response.json()
    except ValueError:
        doc = None
    if response.status_code != 200 or not isinstance(doc, dict):
        raise Unreachable(f"{target} answered HTTP {response.status_code}, not a machine")
    return doc


def read_store(path: str, key: str) -> dict[str, Any] | None:
    """What the store at `path` knows of machine `key`, in the `/machines/<key>` shape."""
    machines = report.read_store(path)["machines"]
    row = next((m for m in machines if key in (m.get("system_id"), m.get("hostname"))), None)
    events = [
        e
        for e in report.table_rows(report.store_file(path), "event", optional=True)
        if key in (e.get("system_id"), e.get("hostname"))
    ]
    if row is None and not events:
        return None
    sid = row["system_id"] if row else events[-1]["system_id"]
    events = sorted((e for e in events if e["system_id"] == sid), key=lambda e: e["id"])
    clean = [{k: v for k, v in e.items() if k != "id"} for e in events]
    desired = None if row is None else row.get("desired")
    return {"generated_at": time.time(), "machine": row, "events": clean, "desired": desired}


def render(doc: dict[str, Any]) -> str:
    """The machine's facts, one per line, then its history as a table (oldest first)."""
    now = report.epoch(doc.get("generated_at")) or time.time()
    machine = doc.get("machine") or {}
    events = [e for e in doc.get("events") or [] if isinstance(e, dict)]
    lines = _facts(machine, events, now, doc.get("desired"))
    lines.append("")
    lines += _history(events, now)
    return "\n".join(lines)


def _desired(desired: Any, now: float) -> str:
    """`api: target=ready (by cloud-7 ..., 3m ago)`, or what says none is stored."""
    if not isinstance(desired, dict):
        return "- (none stored: the rules decide)"
    at = report.ago(report.epoch(desired.get("set_at")), now)
    by = report.shown(desired.get("set_by")) or "?"
    return f"api: {report.shown(desired.get('summary'))} (by {by}, {at})"


def _facts(
    m: dict[str, Any], events: list[dict[str, Any]], now: float, doc_desired: Any = None
) -> list[str]:
    hostname = m.get("hostname") or (events[-1].get("hostname") if events else None)
    system_id = m.get("system_id") or (events[-1].get("system_id") if events else None)
    facts = [
        ("machine", f"{report.shown(hostname) or '-'} ({report.shown(system_id) or '-'})"),
        (
            "zone / pool",
            f"{report.shown(m.get('zone')) or '-'} / {report.shown(m.get('pool')) or '-'}",
        ),
        ("MAAS status", report.shown(m.get("status_name") or m.get("status")) or "-"),
        ("phase", report.shown(m.get("phase")) or "-"),
        ("desired", _desired(doc_desired, now)),
        ("reason", report.shown(m.get("reason")) or "-"),
        ("last error", report.shown(report.last_error(m)) or "-"),
        ("backoff", report.backoff_cell(m, now)),
        ("attempts", report.shown(m.get("attempts")) or "0"),
    ]
    width = max(len(name) for name, _ in facts)
    return [f"{name.ljust(width)}  {value}" for name, value in facts]


def _history(events: list[dict[str, Any]], now: float) -> list[str]:
    if not events:
        return ["history: none recorded"]
    header = ["WHEN", "AGO", "KIND", "ACTION", "OUTCOME", "DETAIL"]
    rows = [header] + [_event_row(e, now) for e in events]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    lines = [f"history ({len(events)}, oldest first):"]
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row, widths, strict=False)] + [row[-1]]
        lines.append("  ".join(cells).rstrip())
    return lines


def _event_row(e: dict[str, Any], now: float) -> list[str]:
    at = report.epoch(e.get("at"))
    when = "-" if at is None else datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    cells = [when, report.ago(at, now)]
    cells += [report.shown(e.get(k)) or "-" for k in ("kind", "action", "outcome")]
    cells.append(report.truncate(report.shown(e.get("detail")), DETAIL_WIDTH) or "-")
    return cells
