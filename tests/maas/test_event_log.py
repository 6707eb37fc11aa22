"""The client reads MAAS's event log (`events/?op=query`) and machines by id, as facts §4 and
§2.4 say MAAS answers them; an event page it cannot use is an error, not a guess."""

from __future__ import annotations

from urllib.parse import parse_qs

import httpx
import pytest

from maasflow.common.errors import PermanentMaasError
from maasflow.daemon.maas.event_log import LoggedEvent


def _query(request: httpx.Request) -> dict[str, list[str]]:
    return parse_qs(request.url.query.decode())


def _event(event_id: int, node: str | None) -> dict[str, object]:
    return {"id": event_id, "node": node, "hostname": "h", "username": "unknown",
            "level": "DEBUG", "created": "Tue, 01 Dec. 2026 02:00:00",
            "type": "Node changed status", "description": "From 'Ready' to 'Deployed'"}  # fmt: skip


async def test_events_after_asks_for_debug_events_newer_than_the_cursor(client, router) -> None:
    """`events_after(7)` GETs events/?op=query&level=DEBUG&limit=1000&after=7 and gives the
    page oldest first (MAAS lists it newest first); an event without a node names none."""
    page = {"count": 3, "events": [_event(12, "b"), _event(10, None), _event(9, "a")]}
    route = router.get("events/").respond(json=page)
    answer = await client.events_after(7)
    assert _query(route.calls.last.request) == {
        "op": ["query"],
        "level": ["DEBUG"],
        "limit": ["1000"],
        "after": ["7"],
    }
    assert answer.events == (LoggedEvent(9, "a"), LoggedEvent(10, ""), LoggedEvent(12, "b"))
    assert answer.newest == 12 and answer.nodes == {"a", "b"}


async def test_events_without_a_cursor_ask_for_the_newest(client, router) -> None:
    """Without a cursor no `after` is sent: MAAS answers its newest events; none: no newest."""
    route = router.get("events/").respond(json={"count": 0, "events": []})
    answer = await client.events_after(None, 1)
    assert "after" not in _query(route.calls.last.request)
    assert _query(route.calls.last.request)["limit"] == ["1"]
    assert answer.newest is None and answer.nodes == set()


@pytest.mark.parametrize(
    "body",
    [{"count": 1}, {"events": [{"node": "a"}]}, {"events": [{"id": True, "node": "a"}]}, []],
)
async def test_an_event_page_without_usable_ids_is_refused(client, router, body) -> None:
    """A page without a list of events, or an event without an integer id, is a permanent
    error: the daemon falls back to full listings rather than guess a cursor."""
    router.get("events/").respond(json=body)
    with pytest.raises(PermanentMaasError):
        await client.events_after(3)


async def test_machines_by_id_are_one_get_with_repeated_ids(client, router, machine) -> None:
    """`list_machines_by_id` GETs machines/?id=a&id=b once and gives what MAAS still has."""
    route = router.get("machines/").respond(json=[machine("a")])
    listed = await client.list_machines_by_id(["a", "b"])
    assert _query(route.calls.last.request) == {"id": ["a", "b"]}
    assert [m.system_id for m in listed] == ["a"]


async def test_a_value_that_is_no_system_id_never_reaches_the_query(client, router) -> None:
    """An id that is not system_id-shaped is refused before anything is sent."""
    route = router.get("machines/").respond(json=[])
    with pytest.raises(PermanentMaasError):
        await client.list_machines_by_id(["a", "x&op=allocate"])
    assert not route.called
