"""Fixtures for daemon unit tests: a fake MAAS client with machines in memory, calls recorded.

It answers like the real client's interface, not like MAAS's HTTP (the simulator does
that in the end-to-end tests), so a unit test can set a machine's state, run one pass and
read which op the daemon called. `make_daemon` builds a daemon on it whose time is a
`FakeClock`, so no test waits for, or races, the wall clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from maasflow.common.clock import FakeClock
from maasflow.common.errors import MaasError
from maasflow.daemon.actions import Actuator
from maasflow.daemon.loop import Daemon
from maasflow.daemon.maas.event_log import EventPage, LoggedEvent
from maasflow.daemon.maas.models import Machine, User
from maasflow.daemon.mappings import Mappings
from maasflow.daemon.selection import FilterSpec
from maasflow.daemon.store import Store


def machine(system_id: str, status: int, **fields: Any) -> Machine:
    data: dict[str, Any] = {
        "system_id": system_id,
        "hostname": fields.pop("hostname", f"host-{system_id}"),
        "status": status,
        "status_name": fields.pop("status_name", ""),
        "zone": {"name": fields.pop("zone", "default")},
        "power_state": fields.pop("power_state", "off"),
        "power_type": fields.pop("power_type", "ipmi"),
        "ip_addresses": fields.pop("ip_addresses", ["192.0.2.10"]),
        "interface_set": [{"name": "eth0", "mac_address": fields.pop("mac", "52:54:00:00:00:01")}],
    }
    data.update(fields)
    return Machine.model_validate(data)


class FakeMaas:
    def __init__(self, machines: list[Machine], username: str = "maasflow") -> None:
        self.machines = {m.system_id: m for m in machines}
        self.username = username
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.base_url = "http://fake/MAAS"
        self.fail_listing: MaasError | None = None
        self.hold: asyncio.Event | None = None  # when set, ops wait for it
        self.listing_gate: asyncio.Event | None = None  # when set, listings wait for it
        self.fail_update: MaasError | None = None  # raised by update() after recording it
        self.whoami_errors: list[MaasError] = []  # whoami() raises these, one per call
        self.errors: dict[str, MaasError] = {}  # op -> raised by every call (after recording)
        self.log: list[tuple[int, str]] = []  # the event log: (id, system_id), oldest first

    async def whoami(self) -> User:
        self.calls.append(("GET", "whoami", {}))
        if self.whoami_errors:
            raise self.whoami_errors.pop(0)
        return User(username=self.username, is_superuser=True)

    async def list_machines(self, **_filters: Any) -> list[Machine]:
        self.calls.append(("GET", "list", {}))
        if self.fail_listing is not None:
            raise self.fail_listing
        if self.listing_gate is not None:
            await self.listing_gate.wait()
        return list(self.machines.values())

    async def _op(self, op: str, system_id: str, **params: Any) -> None:
        self.calls.append(("POST", op, {"system_id": system_id, **params}))
        if self.hold is not None:
            await self.hold.wait()
        if op in self.errors:
            raise self.errors[op]

    async def commission(self, system_id: str, **params: Any) -> None:
        await self._op("commission", system_id, **params)

    async def allocate(self, system_id: str) -> None:
        await self._op("allocate", system_id)

    async def deploy(self, system_id: str, distro_series: str | None = None) -> None:
        await self._op("deploy", system_id, distro_series=distro_series)

    async def deploy_with(self, system_id: str, form: dict[str, str]) -> None:
        """The deploy form as sent; recorded like deploy() (distro_series always named)."""
        rest = {k: v for k, v in form.items() if k != "distro_series"}
        await self._op("deploy", system_id, distro_series=form.get("distro_series"), **rest)

    async def power_off(self, system_id: str, stop_mode: str = "soft") -> None:
        await self._op("power_off", system_id, stop_mode=stop_mode)

    async def power_on(self, system_id: str) -> None:
        await self._op("power_on", system_id)

    async def release(self, system_id: str, **params: Any) -> None:
        await self._op("release", system_id, **params)

    async def tag_machine(self, tag: str, system_id: str, comment: str = "") -> int:
        await self._op("tag", system_id, tag=tag)
        return 1

    def move(self, system_id: str, **fields: Any) -> None:
        """MAAS changed the machine: the next listing shows `fields` updated, and its event
        log names the machine."""
        self.machines[system_id] = self.machines[system_id].model_copy(update=fields)
        self.log.append((len(self.log) + 1, system_id))

    async def events_after(self, after: int | None, limit: int) -> EventPage:
        """MAAS's event log (facts §4): the oldest `limit` after the cursor, else the newest."""
        self.calls.append(("GET", "events", {"after": after}))
        chosen = self.log[-limit:] if after is None else [e for e in self.log if e[0] > after]
        return EventPage(tuple(LoggedEvent(i, node) for i, node in chosen[:limit]))

    async def list_machines_by_id(self, system_ids: list[str]) -> list[Machine]:
        self.calls.append(("GET", "list", {"id": list(system_ids)}))
        return [self.machines[s] for s in system_ids if s in self.machines]

    async def update(self, system_id: str, **fields: str) -> None:
        await self._op("update", system_id, **fields)
        if self.fail_update is not None:
            raise self.fail_update

    async def aclose(self) -> None:
        return None

    def ops(self) -> list[tuple[str, str]]:
        return [(op, p.get("system_id", "")) for method, op, p in self.calls if method == "POST"]


@pytest.fixture
def mk() -> Callable[..., Machine]:
    """Build a Machine from a few fields (pytest's importlib mode forbids importing helpers)."""
    return machine


@pytest.fixture
def Fake() -> type[FakeMaas]:
    return FakeMaas


def daemon_on(fake: FakeMaas, **kw: Any) -> Daemon:
    """A daemon driving `fake`, with an in-memory store and a fake clock unless given."""
    actuator = Actuator(fake, kw.pop("store", None) or Store(":memory:"), None)  # type: ignore[arg-type]
    return Daemon(
        fake,  # type: ignore[arg-type]
        actuator,
        filters=kw.pop("filters", FilterSpec.load("{}", "test")),
        mappings=kw.pop("mappings", Mappings.load("{}", "test")),
        period=kw.pop("period", 1.0),
        clock=kw.pop("clock", None) or FakeClock(),
        **{"provision_existing": True, **kw},  # provision machines first seen Deployed
    )


@pytest.fixture
def make_daemon() -> Callable[..., Daemon]:
    """Build a Daemon on a FakeMaas (see `daemon_on`)."""
    return daemon_on
