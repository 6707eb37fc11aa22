"""What the daemon last knew of each machine: the rows of `/state` and `maasflow status`.

One `MachineView` per selected machine, updated from each pass's decision and from each
action's outcome, and one per machine the filters leave out, rebuilt every pass (`/state`
shows those only when asked: `?all=1`). Every view carries its `reason`: why maasflow acts on
the machine, or why it leaves it alone (waiting for MAAS, backing off, locked, filtered out,
paused, ...); `said` tells the daemon when that reason changed, so it logs each once. For a
machine MAAS lists as failed, `maas_error` is MAAS's own text (`error_description`, else
`status_message`). It is a read model only: nothing here decides or acts, and the daemon
never reads it back to make a decision (MAAS and the store are the truth).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from maasflow.daemon.lifecycle import ActionKind, Decision, Phase
from maasflow.daemon.maas.listing import MachineData
from maasflow.daemon.setbacks import Setback
from maasflow.daemon.store import ProvisionRecord


@dataclass
class MachineView:
    """One row: where a machine stands, and what maasflow last did to it."""

    system_id: str
    hostname: str
    zone: str
    pool: str
    status: int
    status_name: str
    phase: Phase | None  # None: the filters leave it out, so it has no flow
    reason: str = ""
    selected: bool = True  # False: the filters leave it out
    last_action: ActionKind | None = None
    last_action_at: float | None = None
    last_outcome: str | None = None
    attempts: int = 0
    last_error: str | None = None
    backoff_action: str | None = None  # the action backing off after failures, if any
    backoff_failures: int = 0  # its failures in a row
    backoff_until: float | None = None  # when it may be sent again (unix time)
    retries: int = 0  # -retry-failed retries spent on this machine
    maas_error: str | None = None  # MAAS's own error text, for a machine in trouble
    owner: str | None = None  # its MAAS owner, as listed
    locked: bool = False  # MAAS lists it locked


# Phases in which MAAS's own text says what went wrong.
_TROUBLE = frozenset({Phase.FAILED, Phase.RETRYING, Phase.QUARANTINED, Phase.UNKNOWN})


class MachineViews:
    """The views of all selected machines, keyed by system_id."""

    def __init__(self) -> None:
        self._views: dict[str, MachineView] = {}
        self._left_out: dict[str, MachineView] = {}  # rebuilt every pass
        self._said: dict[str, str] = {}  # system_id -> the reason last given for it

    def __len__(self) -> int:
        return len(self._views)

    def get(self, system_id: str) -> MachineView | None:
        return self._views.get(system_id)

    def observed(
        self, machine: MachineData, decision: Decision, record: ProvisionRecord | None
    ) -> None:
        """A pass saw `machine` and its flow decided `decision`."""
        view = self._views.get(machine.system_id)
        if view is None:
            view = self._views[machine.system_id] = MachineView(
                machine.system_id, "", "", "", machine.status, "", decision.phase
            )
        view.hostname, view.zone, view.pool = machine.hostname, machine.zone.name, machine.pool_name
        view.status, view.status_name = machine.status, machine.status_name
        view.phase, view.reason = decision.phase, decision.reason
        view.owner, view.locked = machine.owner, machine.locked
        view.maas_error = _maas_error(machine) if decision.phase in _TROUBLE else None
        if record is not None:
            view.attempts = record.attempts
            view.last_error = record.last_error or view.last_error

    def acted(self, system_id: str, kind: ActionKind, result: str, detail: str, now: float) -> None:
        """An action for the machine ended with `result`."""
        view = self._views.get(system_id)
        if view is None:
            return
        view.last_action, view.last_action_at, view.last_outcome = kind, now, result
        if result == "failed":
            view.last_error = detail

    def backoff(self, system_id: str, setback: Setback | None, retries: int) -> None:
        """The machine's setback (or none) and the failed-machine retries spent on it."""
        view = self._views.get(system_id)
        if view is None:
            return
        view.retries = retries
        view.backoff_action = setback.action if setback else None
        view.backoff_failures = setback.failures if setback else 0
        view.backoff_until = setback.retry_at if setback else None

    def explain(self, system_id: str, reason: str) -> None:
        """Why the pass left the machine alone, when its flow's decision is not the reason."""
        view = self._views.get(system_id)
        if view is not None:
            view.reason = reason

    def left_out(self, machine: MachineData, reason: str) -> MachineView:
        """A machine the filters leave out this pass, and why."""
        view = MachineView(
            machine.system_id, machine.hostname, machine.zone.name, machine.pool_name,
            machine.status, machine.status_name, None, reason, selected=False,
            owner=machine.owner, locked=machine.locked,
        )  # fmt: skip
        self._left_out[machine.system_id] = view
        return view

    def said(self, system_id: str, reason: str) -> bool:
        """Remember `reason` as the machine's; True when it differs from the last one."""
        changed = self._said.get(system_id) != reason
        self._said[system_id] = reason
        return changed

    def begin_pass(self) -> None:
        """A new listing: the machines left out are found again."""
        self._left_out.clear()

    def end_pass(self, listed: set[str]) -> None:
        """Forget the reasons of machines MAAS no longer lists."""
        for system_id in [s for s in self._said if s not in listed]:
            del self._said[system_id]

    def forget(self, system_id: str) -> None:
        self._views.pop(system_id, None)

    def find(self, key: str) -> MachineView | None:
        """The view of the machine whose system_id, else hostname, is `key` (left out too)."""
        for views in (self._views, self._left_out):
            if key in views:
                return views[key]
        every = (*self._views.values(), *self._left_out.values())
        return next((v for v in every if v.hostname == key), None)

    def phase_counts(self) -> dict[str, int]:
        return dict(Counter[str](v.phase for v in self._views.values() if v.phase is not None))

    def status_counts(self) -> dict[str, int]:
        """Selected machines by MAAS status name, as the last pass that read each saw it."""
        return dict(Counter(v.status_name or str(v.status) for v in self._views.values()))

    def rows(self, *, left_out: bool = False) -> list[dict[str, Any]]:
        """Every selected machine's view (and with `left_out` the others') as JSON, by hostname."""
        views = [*self._views.values(), *(self._left_out.values() if left_out else ())]
        return [asdict(v) for v in sorted(views, key=lambda v: v.hostname)]


def _maas_error(machine: MachineData) -> str | None:
    return machine.error_description or machine.status_message or None
