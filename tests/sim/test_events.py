"""`events/?op=query`: formats, levels and paging as MAAS answers them (facts §4)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from maasflow.sim import MachineSpec, SimConfig, Simulator
from maasflow.sim.events import EventLog, parse_page
from maasflow.sim.http import ApiError
from tests.sim.helpers import FAST

Wait = Callable[..., Awaitable[None]]
CREATED = re.compile(r"^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2}\. \d{4} \d{2}:\d{2}:\d{2}$")


@pytest.fixture
def config() -> SimConfig:
    machines = [
        MachineSpec("one"),
        MachineSpec("two"),
        MachineSpec("theirs", status=10, owner="someone-else"),
    ]
    return SimConfig(seed=6, time_factor=FAST, machines=machines)


async def query(client: httpx.AsyncClient, **params: str) -> dict[str, Any]:
    response = await client.get("events/", params={"op": "query", **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def commission_both(admin: httpx.AsyncClient, sim: Simulator, wait_until: Wait) -> None:
    for hostname in ("one", "two"):
        await admin.post(f"machines/{sim.find(hostname).system_id}/", params={"op": "commission"})
    await wait_until(
        lambda: all(
            sim.find(h).status == 4 and sim.find(h).power_state == "off" for h in ("one", "two")
        )
    )


async def test_status_changes_write_debug_events(
    admin: httpx.AsyncClient, sim: Simulator, wait_until: Wait
) -> None:
    """Every status change is a DEBUG "Node changed status" event; INFO hides them."""
    await commission_both(admin, sim, wait_until)
    debug = await query(admin, level="DEBUG", hostname="one", limit="1000")
    changes = [e["description"] for e in debug["events"] if e["type"] == "Node changed status"]
    assert changes == [
        "From 'Testing' to 'Ready'",
        "From 'Commissioning' to 'Testing'",
        "From 'New' to 'Commissioning'",
    ]
    info = await query(admin, hostname="one", limit="1000")
    assert {e["level"] for e in info["events"]} <= {"INFO", "WARNING", "ERROR", "CRITICAL"}
    assert "Ready" in [e["type"] for e in info["events"]]


async def test_event_shape(admin: httpx.AsyncClient, sim: Simulator, wait_until: Wait) -> None:
    """Events carry id, node, hostname, username, level, created, type, description."""
    await commission_both(admin, sim, wait_until)
    event = (await query(admin, level="DEBUG", limit="1"))["events"][0]
    assert set(event) == {
        "id",
        "node",
        "hostname",
        "username",
        "level",
        "created",
        "type",
        "description",
    }
    assert CREATED.match(event["created"])
    request = [
        e
        for e in (await query(admin, level="DEBUG", limit="1000"))["events"]
        if e["type"] == "User starting node commissioning"
    ]
    assert request and request[0]["username"] == "admin"


async def test_pages_are_newest_first_and_link_to_each_other(
    admin: httpx.AsyncClient, sim: Simulator, wait_until: Wait
) -> None:
    """A page is newest first; next_uri/prev_uri carry after/before cursors."""
    await commission_both(admin, sim, wait_until)
    page = await query(admin, level="DEBUG", limit="5")
    ids = [e["id"] for e in page["events"]]
    assert page["count"] == 5
    assert ids == sorted(ids, reverse=True)
    prev = parse_qs(urlsplit(page["prev_uri"]).query)
    assert (
        prev["before"] == [str(ids[-1])] and prev["limit"] == ["5"] and prev["level"] == ["DEBUG"]
    )
    older = (await admin.get(sim.url.removesuffix("/MAAS") + page["prev_uri"])).json()
    assert max(e["id"] for e in older["events"]) < ids[-1]
    nxt = parse_qs(urlsplit(page["next_uri"]).query)
    assert nxt["after"] == [str(ids[0])]


async def test_after_gives_the_oldest_newer_events(
    admin: httpx.AsyncClient, sim: Simulator, wait_until: Wait
) -> None:
    """after=<id> returns the `limit` oldest events newer than id, shown newest first."""
    await commission_both(admin, sim, wait_until)
    everything = sorted(
        e["id"] for e in (await query(admin, level="DEBUG", limit="1000"))["events"]
    )
    page = await query(admin, level="DEBUG", limit="3", after=str(everything[0]))
    assert [e["id"] for e in page["events"]] == list(reversed(everything[1:4]))


async def test_empty_page_next_uri_repeats_the_query(admin: httpx.AsyncClient) -> None:
    """Polling past the newest event gives an empty page whose next_uri keeps the cursor."""
    page = await query(admin, level="DEBUG", after="100000")
    assert (page["count"], page["events"]) == (0, [])
    assert "after=100000" in page["next_uri"]


async def test_non_admin_does_not_see_invisible_machines_events(user: httpx.AsyncClient) -> None:
    """Events of someone else's machine are not shown to a non-admin."""
    page = await query(user, level="DEBUG", limit="1000")
    assert "theirs" not in {e["hostname"] for e in page["events"]}
    assert {"one", "two"} <= {e["hostname"] for e in page["events"]}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"level": "LOUD"}, "Unrecognised log level: LOUD"),
        ({"limit": "1001"}, "Requested number of events 1001 is greater than limit: 1000"),
        (
            {"after": "1", "before": "5"},
            "There is undetermined behaviour when both `after` and `before` are specified.",
        ),
    ],
)
async def test_bad_query_is_400(
    admin: httpx.AsyncClient, params: dict[str, str], message: str
) -> None:
    """Bad level, too large a limit, or both cursors answer 400 text/plain."""
    response = await admin.get("events/", params={"op": "query", **params})
    assert (response.status_code, response.text) == (400, message)


def test_limit_below_one_becomes_one() -> None:
    """limit=0 is treated as 1, like MAAS."""
    assert parse_page({"limit": ["0"]}).limit == 1


def test_non_numeric_cursor_is_refused() -> None:
    """after=abc is a 400, not a crash."""
    with pytest.raises(ApiError) as caught:
        parse_page({"after": ["abc"]})
    assert caught.value.response.status == 400


def test_audit_level_shows_only_audit_events() -> None:
    """level=AUDIT selects audit events only; DEBUG selects everything else."""
    log = EventLog(clock=lambda: 0.0)
    log.add("a", "host", "NODE_CHANGED_STATUS", "From 'New' to 'Ready'")
    assert log.query({"level": ["AUDIT"]}, {"a"})["count"] == 0
    assert log.query({"level": ["DEBUG"]}, {"a"})["count"] == 1


async def test_creating_a_machine_writes_no_event_unless_it_commissions(
    admin: httpx.AsyncClient, sim: Simulator
) -> None:
    """As in MAAS 3.6 (a status change event needs a saved status that differs from the
    built one): creating with commission=false logs nothing; commissioning logs the change."""
    before = len(sim.events)
    quiet = await admin.post(
        "machines/",
        data={"architecture": "amd64", "mac_addresses": "52:54:00:aa:bb:03",
              "commission": "false", "power_type": "manual"},
    )  # fmt: skip
    assert quiet.status_code == 200 and len(sim.events) == before
    loud = await admin.post(
        "machines/", data={"architecture": "amd64/generic", "mac_addresses": "52:54:00:aa:bb:04"}
    )
    page = await query(admin, level="DEBUG", after=str(before), id=loud.json()["system_id"])
    assert "From 'New' to 'Commissioning'" in [e["description"] for e in page["events"]]


async def test_a_deleted_machines_events_are_no_longer_listed(
    admin: httpx.AsyncClient, sim: Simulator, wait_until: Wait
) -> None:
    """MAAS unlinks a deleted node's events (`pre_delete_update_events`), and the query lists
    only events of existing nodes, so a poller hears nothing of a deletion."""
    await commission_both(admin, sim, wait_until)
    gone = sim.find("one")
    assert (await admin.delete(f"machines/{gone.system_id}/")).status_code == 204
    page = await query(admin, level="DEBUG", limit="1000")
    assert page["events"] and gone.system_id not in {e["node"] for e in page["events"]}


async def test_allocating_names_the_new_owner_in_the_status_change(
    admin: httpx.AsyncClient, sim: Simulator, wait_until: Wait
) -> None:
    """Allocation's status change says "(to <user>)", as MAAS's emit_state_transition_event."""
    await commission_both(admin, sim, wait_until)
    one = sim.find("one").system_id
    answer = await admin.post("machines/", params={"op": "allocate"}, data={"system_id": one})
    assert answer.status_code == 200
    page = await query(admin, level="DEBUG", limit="1", id=one)
    assert page["events"][0]["description"] == "From 'Ready' to 'Allocated' (to admin)"
