"""`-preview`: one pass computed, printed as a plan, nothing written anywhere.

For every machine MAAS lists: whether the filters select it (and why not), its status, the
targets rule its desire comes from (`rule 2: ready`, or `default: deployed`; `api: ready` for
a desire an orchestrator stored over HTTP, read from the state file, which wins over the rules
and whose fields the line shows as `[api: ...]`), and the one action the daemon would take with
its parameters, or why it leaves the machine alone. An action backing off after failures (read
from the state file) is shown as held, with its failures and when it may be sent again. The
caller guarantees no write: the MAAS client is read-only, and this module never calls the
actuator, the provisioner or a script. The text plan shows MAAS's strings escaped
(`safe_text.escape`); the JSON plan is escaped by JSON itself.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TextIO

from maasflow.common.safe_text import escape
from maasflow.daemon.lifecycle import ActionKind, Phase
from maasflow.daemon.loop import Daemon
from maasflow.daemon.maas.listing import MachineData
from maasflow.daemon.setbacks import Setback
from maasflow.daemon.store import ProvisionRecord
from maasflow.daemon.stored_desire import summary

EXCLUDED = "excluded"  # the plan's phase for a machine the filters do not select


@dataclass(frozen=True)
class PlanItem:
    system_id: str
    hostname: str
    zone: str
    status: str
    selected: bool
    phase: Phase | str  # a Phase, or EXCLUDED when the filters leave the machine out
    action: ActionKind | None
    params: dict[str, str]
    reason: str
    held: str | None = None  # why the action waits: its backoff after failures
    rule: str = ""  # where its desire comes from: "rule 2", "default"; "" when excluded
    target: str = ""  # the target that desire names (deployed, ready, ...)
    desired: str | None = None  # a stored desire's fields (`stored_desire.summary`)


async def make_plan(daemon: Daemon) -> list[PlanItem]:
    """List machines once and decide each one, starting nothing."""
    machines = await daemon.client.list_machines()
    records = {r.system_id: r for r in daemon.actuator.store.all()}
    daemon.desired.reload()
    return [_item(daemon, m, records) for m in machines]


def _item(daemon: Daemon, machine: MachineData, records: dict[str, ProvisionRecord]) -> PlanItem:
    base = {
        "system_id": machine.system_id,
        "hostname": machine.hostname,
        "zone": machine.zone.name,
        "status": machine.status_name or str(machine.status),
    }
    why_not = daemon.filters.reason(machine)
    if why_not is not None:
        return PlanItem(
            **base, selected=False, phase=EXCLUDED, action=None, params={}, reason=why_not
        )
    chosen = daemon.desire_for(machine)
    decision = daemon.decide(machine, records)
    stored = daemon.desired.get(machine.system_id)
    action = decision.action
    setback = daemon.held(machine, action) if action else None
    return PlanItem(
        **base,
        selected=True,
        phase=decision.phase,
        action=action.kind if action else None,
        params=dict(action.params) if action else {},
        reason=action.reason if action else decision.reason,
        held=_held(setback, daemon.clock.time()) if setback else None,
        rule=chosen.label,
        target=str(chosen.desire.target),
        desired=summary(stored.desire) if stored else None,
    )


def _held(setback: Setback, now: float) -> str:
    wait = max(setback.retry_at - now, 0.0)
    plural = "s" if setback.failures != 1 else ""
    return (
        f"backing off: failed {setback.failures} time{plural}, next try in {wait:.0f}s"
        f" ({setback.last_error[:120]})"
    )


def print_plan(items: list[PlanItem], fmt: str, out: TextIO) -> None:
    """Text: one line per machine; json: one JSON document."""
    if fmt == "json":
        json.dump({"plan": [asdict(i) for i in items]}, out, indent=2)
        out.write("\n")
        return
    width = max([len(escape(i.hostname)) for i in items] + [8])
    for item in items:
        print(_line(item, width), file=out)
    acting = sum(1 for i in items if i.action and i.held is None)
    print(
        f"preview: {len(items)} machines, {acting} would get an action; nothing was sent", file=out
    )


def _line(item: PlanItem, width: int) -> str:
    """One machine of the text plan, every string from MAAS escaped."""
    what = item.action or "-"
    if item.params:
        what += " " + " ".join(f"{k}={v}" for k, v in sorted(item.params.items()))
    why = item.reason if item.held is None else f"{item.reason}; held, {item.held}"
    if item.desired is not None:
        why = f"[{item.rule}: {item.desired}] {why}"
    rule = f"{item.rule}: {item.target}" if item.rule else "-"
    host, sid, status, what, reason = map(
        escape, (item.hostname, item.system_id, item.status, what, why)
    )
    return f"{host:<{width}}  {sid:<8}  {status:<22}  {rule:<20}  {what:<32}  {reason}"
