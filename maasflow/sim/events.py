"""The simulator's event log and the `events/?op=query` paging rules.

Event types (description + level) are the simulator's own copy of MAAS's catalogue in
`src/provisioningserver/events.py` (EVENT_DETAILS): status changes are DEBUG "Node changed
status" with "From 'X' to 'Y'", user requests are DEBUG "User ...", status events such as
"Commissioning" or "Deployed" are INFO, power failures ERROR/WARNING. Paging follows facts
§4: `after` gives the oldest `limit` events newer than an id, `before` the newest older
than one, neither the newest; a page is always newest first, with `next_uri`/`prev_uri`.
Which machines a caller may see is decided by the API layer, which passes their ids in.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

from maasflow.sim.http import Params, fail

AUDIT, DEBUG, INFO, WARNING, ERROR, CRITICAL = 0, 10, 20, 30, 40, 50
LEVELS = {"AUDIT": AUDIT, "DEBUG": DEBUG, "INFO": INFO, "WARNING": WARNING, "ERROR": ERROR}
LEVELS["CRITICAL"] = CRITICAL
LEVEL_NAMES = {number: name for name, number in LEVELS.items()}
MAX_LIMIT = 1000
EVENTS_PATH = "/MAAS/api/2.0/events/"

EVENT_TYPES: dict[str, tuple[str, int]] = {
    "NODE_POWER_ON_STARTING": ("Powering on", INFO),
    "NODE_POWER_OFF_STARTING": ("Powering off", INFO),
    "NODE_POWERED_ON": ("Node powered on", DEBUG),
    "NODE_POWERED_OFF": ("Node powered off", DEBUG),
    "NODE_POWER_ON_FAILED": ("Failed to power on node", ERROR),
    "NODE_POWER_OFF_FAILED": ("Failed to power off node", ERROR),
    "NODE_POWER_QUERY_FAILED": ("Failed to query node's BMC", WARNING),
    "NODE_CHANGED_STATUS": ("Node changed status", DEBUG),
    "NODE_COMMISSIONING_EVENT_FAILED": ("Node commissioning failure", ERROR),
    "NODE_INSTALL_EVENT_FAILED": ("Node installation failure", ERROR),
    "REQUEST_NODE_START_COMMISSIONING": ("User starting node commissioning", DEBUG),
    "REQUEST_NODE_ABORT_COMMISSIONING": ("User aborting node commissioning", DEBUG),
    "REQUEST_NODE_ABORT_TESTING": ("User aborting node testing", DEBUG),
    "REQUEST_NODE_ABORT_DEPLOYMENT": ("User aborting deployment", DEBUG),
    "REQUEST_NODE_ABORT_ERASE_DISK": ("User aborting disk erase", DEBUG),
    "REQUEST_NODE_ACQUIRE": ("User acquiring node", DEBUG),
    "REQUEST_NODE_ERASE_DISK": ("User erasing disk", DEBUG),
    "REQUEST_NODE_RELEASE": ("User releasing node", DEBUG),
    "REQUEST_NODE_MARK_BROKEN": ("User marking node broken", DEBUG),
    "REQUEST_NODE_MARK_FIXED": ("User marking node fixed", DEBUG),
    "REQUEST_NODE_LOCK": ("User locking node", DEBUG),
    "REQUEST_NODE_UNLOCK": ("User unlocking node", DEBUG),
    "REQUEST_NODE_START_DEPLOYMENT": ("User starting deployment", DEBUG),
    "REQUEST_NODE_START": ("User powering up node", DEBUG),
    "REQUEST_NODE_STOP": ("User powering down node", DEBUG),
    "NEW": ("New", INFO),
    "COMMISSIONING": ("Commissioning", INFO),
    "FAILED_COMMISSIONING": ("Failed commissioning", INFO),
    "TESTING": ("Testing", INFO),
    "FAILED_TESTING": ("Failed testing", INFO),
    "READY": ("Ready", INFO),
    "DEPLOYING": ("Deploying", INFO),
    "DEPLOYED": ("Deployed", INFO),
    "RELEASING": ("Releasing", INFO),
    "RELEASED": ("Released", INFO),
    "ABORTED_COMMISSIONING": ("Aborted commissioning", INFO),
    "ABORTED_TESTING": ("Aborted testing", INFO),
    "ABORTED_DEPLOYMENT": ("Aborted deployment", INFO),
    "ABORTED_DISK_ERASING": ("Aborted disk erasing", INFO),
}


@dataclass(frozen=True)
class Event:
    """One stored event."""

    id: int
    system_id: str
    hostname: str
    username: str | None
    level: int
    type: str
    description: str
    created: float

    @property
    def message(self) -> str:
        """How MAAS shows it as a `status_message`: "<type> - <description>" or the type."""
        return f"{self.type} - {self.description}" if self.description else self.type

    def to_json(self) -> dict[str, object]:
        """The shape `events/?op=query` lists."""
        return {
            "id": self.id,
            "node": self.system_id,
            "hostname": self.hostname or "unknown",
            "username": self.username or "unknown",
            "level": LEVEL_NAMES[self.level],
            "created": time.strftime("%a, %d %b. %Y %H:%M:%S", time.gmtime(self.created)),
            "type": self.type,
            "description": self.description,
        }


@dataclass(frozen=True)
class Page:
    """What one query asks for, once validated."""

    level: int
    limit: int
    after: int | None
    before: int | None
    owner: str | None


class EventLog:
    """Append-only list of events with increasing ids."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._events: list[Event] = []
        self._clock = clock

    def __len__(self) -> int:
        return len(self._events)

    def all(self) -> list[Event]:
        """A copy of every event, oldest first."""
        return list(self._events)

    def add(
        self,
        system_id: str,
        hostname: str,
        kind: str,
        description: str = "",
        user: str | None = None,
    ) -> Event:
        """Record one event of a catalogued `kind` and return it."""
        type_text, level = EVENT_TYPES[kind]
        event = Event(
            len(self._events) + 1,
            system_id,
            hostname,
            user,
            level,
            type_text,
            description,
            self._clock(),
        )
        self._events.append(event)
        return event

    def for_node(self, system_id: str) -> list[Event]:
        """Every event of one machine, oldest first."""
        return [event for event in self._events if event.system_id == system_id]

    def query(self, params: Params, nodes: set[str]) -> dict[str, object]:
        """Answer `events/?op=query` for events of `nodes`; raise ApiError on bad params."""
        page = parse_page(params)
        chosen = _select(self._events, page, nodes)
        newest_first = list(reversed(chosen))
        return {
            "count": len(newest_first),
            "events": [event.to_json() for event in newest_first],
            "next_uri": _next_uri(params, page, newest_first),
            "prev_uri": _prev_uri(params, page, newest_first),
        }


def parse_page(params: Params) -> Page:
    """Validate level/limit/after/before/owner the way MAAS's events handler does."""
    level_name = _first(params, "level") or "INFO"
    if level_name not in LEVELS:
        raise fail(400, f"Unrecognised log level: {level_name[:64]}")
    limit = _int_param(params, "limit")
    limit = 100 if limit is None else max(limit, 1)
    if limit > MAX_LIMIT:
        raise fail(400, f"Requested number of events {limit} is greater than limit: {MAX_LIMIT}")
    after, before = _int_param(params, "after"), _int_param(params, "before")
    if after is not None and before is not None:
        raise fail(
            400, "There is undetermined behaviour when both `after` and `before` are specified."
        )
    return Page(LEVELS[level_name], limit, after, before, _first(params, "owner"))


def _select(events: list[Event], page: Page, nodes: set[str]) -> list[Event]:
    wanted = [event for event in events if event.system_id in nodes and _level_ok(event, page)]
    if page.owner is not None:
        wanted = [event for event in wanted if event.username == page.owner]
    if page.after is not None:
        return [event for event in wanted if event.id > page.after][: page.limit]
    if page.before is not None:
        wanted = [event for event in wanted if event.id < page.before]
    return wanted[-page.limit :]


def _level_ok(event: Event, page: Page) -> bool:
    if page.level == AUDIT:
        return event.level == AUDIT
    return event.level != AUDIT and event.level >= page.level


def _next_uri(params: Params, page: Page, events: list[Event]) -> str:
    if events:
        return _uri(params, "after", events[0].id)
    if page.after is not None:
        return _uri(params, "after", page.after)
    if page.before is not None:
        return _uri(params, "after", page.before - 1)
    return _uri(params, None, None)


def _prev_uri(params: Params, page: Page, events: list[Event]) -> str | None:
    if events:
        return _uri(params, "before", events[-1].id)
    if page.after is not None:
        return _uri(params, "before", page.after + 1)
    return None


def _uri(params: Params, cursor: str | None, value: int | None) -> str:
    pairs: list[tuple[str, str]] = [("op", "query")]
    for key, values in params.items():
        if key in ("op", "after", "before") or key.startswith("oauth_"):
            continue
        pairs.extend((key, item) for item in values)
    if cursor is not None:
        pairs.append((cursor, str(value)))
    return f"{EVENTS_PATH}?{urlencode(pairs)}"


def _first(params: Params, name: str) -> str | None:
    values = params.get(name)
    return values[0] if values else None


def _int_param(params: Params, name: str) -> int | None:
    raw = _first(params, name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise fail(400, f"Invalid {name}: Please enter an integer value") from None
