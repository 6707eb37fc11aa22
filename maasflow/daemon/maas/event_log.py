"""MAAS's event log as the daemon reads it: one page of `events/?op=query`, decoded.

Facts §4 (checked against MAAS 3.6's `src/maasserver/api/events.py`, `EventsHandler.query`):
with `after=<id>` MAAS answers the `limit` OLDEST events whose id is greater (`id__gt`,
`order_by("id")[:limit]`), listed newest first; without `after` the newest `limit`. `limit`
is at most 1000. `level=DEBUG` is every event except audit ones. An `after` past the newest
id is not an error: the page is simply empty, forever. Events of deleted machines lose their
node (`models/signals/nodes.py`, `pre_delete_update_events`) and are never listed again.
MAAS 3.6 never prunes its event table (no code deletes events), so ids only grow unless its
database is replaced (a restore, a reinstall).

`EventPage` keeps what the daemon needs of a page: each event's id and the machine it names
(`node`, a system_id, or null), oldest first. This module does no HTTP (the client hands it
the answer) and knows nothing of the lifecycle.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from maasflow.common.errors import PermanentMaasError
from maasflow.daemon.maas.decoding import decode_object

EVENTS_LIMIT = 1000  # MAAS's MAX_EVENT_LOG_COUNT: a larger limit is a 400
EVENTS_LEVEL = "DEBUG"  # status changes and power events are DEBUG (facts §4)


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """One event: its id and the system_id of the machine it names ("" when none)."""

    id: int
    node: str


@dataclass(frozen=True, slots=True)
class EventPage:
    """One page of the event log, oldest first."""

    events: tuple[LoggedEvent, ...]

    @property
    def newest(self) -> int | None:
        """The highest id in the page; None when it is empty."""
        return self.events[-1].id if self.events else None

    @property
    def nodes(self) -> set[str]:
        """The system_ids the page's events name."""
        return {event.node for event in self.events if event.node}


def decode_event_page(response: httpx.Response, method: str, shown: str) -> EventPage:
    """An `events/?op=query` answer as an `EventPage`; PermanentMaasError when unfit."""
    data = decode_object(response, method, shown)
    raw = data.get("events")
    if not isinstance(raw, list):
        raise _unfit(response, method, shown, "no list of events")
    events = [_event(item) for item in raw]
    if None in events:
        raise _unfit(response, method, shown, "an event without an integer id")
    ordered = sorted((e for e in events if e is not None), key=lambda e: e.id)
    return EventPage(tuple(ordered))


def _event(item: object) -> LoggedEvent | None:
    if not isinstance(item, dict):
        return None
    event_id, node = item.get("id"), item.get("node")
    if not isinstance(event_id, int) or isinstance(event_id, bool):
        return None
    return LoggedEvent(event_id, node if isinstance(node, str) else "")


def _unfit(response: httpx.Response, method: str, shown: str, what: str) -> PermanentMaasError:
    return PermanentMaasError(method, shown, response.status_code, f"event page has {what}")
