"""What the daemon last knew of each selected machine: the rows of `/state` and `maasflow status`.

One `MachineView` per machine, updated from each pass's decision and from each action's
outcome. It is a read model only: nothing here decides or acts, and the daemon never reads
it back to make a decision (MAAS and the store are the truth).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from maasflow.daemon.lifecycle import ActionKind, Decision, Phase
from maasflow.daemon.maas.models import Machine
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
    phase: Phase
    reason: str = ""
    last_action: ActionKind | None = None
    last_action_at: float | None = None
    last_outcome: str | None = None
    attempts: int = 0
    last_error: str | None = None
    backoff_action: str | None = None  # the action backing off after failures, if any
    backoff_failures: int = 0  # its failures in a row
    backoff_until: float | None = None  # when it may be sent again (unix time)
    retries: int = 0  # -retry-failed retries spent on this machine


class MachineViews:
    """The views of all selected machines, keyed by system_id."""

    def __init__(self) -> None:
        self._views: dict[str, MachineView] = {}

    def __len__(self) -> int:
        return len(self._views)

    def get(self, system_id: str) -> MachineView | None:
        return self._views.get(system_id)

    def observed(
        self, machine: Machine, decision: Decision, record: ProvisionRecord | None
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

    def forget(self, system_id: str) -> None:
        self._views.pop(system_id, None)

    def phase_counts(self) -> dict[str, int]:
        return dict(Counter[str](v.phase for v in self._views.values()))

    def rows(self) -> list[dict[str, Any]]:
        """Every view as a JSON-ready dict, by hostname."""
        return [asdict(v) for v in sorted(self._views.values(), key=lambda v: v.hostname)]
