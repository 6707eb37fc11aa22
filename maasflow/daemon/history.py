"""Each machine's recent history: the actions maasflow sent and MAAS's answers, provisioning
attempts and how they ended, and what an operator asked for (`maasflow retry`).

An `Event` is one line of that history; the daemon notes one per action outcome and per
operator request and writes them in one batch per pass (one transaction, not one fsync per
action) through a `HistoryStore` (the daemon's state file), which keeps only the newest
`HISTORY_LIMIT` per machine, so the history stays bounded however long a machine fails.
`maasflow status <machine>` shows it. This module names the shape and the contract; it
writes nothing itself and decides nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from maasflow.daemon.lifecycle import ActionKind

HISTORY_LIMIT = 50  # events kept per machine, newest first
DETAIL_LIMIT = 500  # characters of an event's detail kept (its end, where errors explain)


class EventKind(StrEnum):
    """What an event records."""

    ACTION = "action"  # a MAAS write (or a helper) sent, and its answer
    PROVISIONING = "provisioning"  # a provisioning attempt or poll, and how it went
    OPERATOR = "operator"  # an operator's request (retry) over the control endpoint


@dataclass(frozen=True)
class Event:
    """One line of a machine's history; `at` is wall-clock seconds."""

    system_id: str
    hostname: str
    at: float
    kind: str  # an EventKind
    action: str  # the ActionKind, or the operator's request ("retry")
    outcome: str  # "ok", "failed", "started", ...; what came of it
    detail: str = ""


def event_kind(action: str) -> EventKind:
    """The kind of event an action's outcome makes."""
    if action in (ActionKind.PROVISION, ActionKind.PROVISION_POLL):
        return EventKind.PROVISIONING
    return EventKind.ACTION


def clip(detail: str) -> str:
    """The end of `detail`, at most DETAIL_LIMIT characters."""
    return detail[-DETAIL_LIMIT:]


class HistoryStore(Protocol):
    """Where machines' histories outlive the process (the daemon's state file)."""

    def add_events(self, events: Sequence[Event]) -> None:
        """Append `events` in order, at once (details clipped); keep only each machine's
        newest HISTORY_LIMIT."""
        ...

    def events(self, system_id: str, limit: int = HISTORY_LIMIT) -> list[Event]:
        """The machine's newest `limit` events, oldest first."""
        ...

    def histories(self) -> list[Event]:
        """Every machine's kept events: by system_id, oldest first within each."""
        ...
