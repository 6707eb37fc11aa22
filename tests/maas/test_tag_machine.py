"""`MaasClient.tag_machine`: MAAS's update_nodes op, creating the tag when it is missing."""

from __future__ import annotations

from urllib.parse import parse_qs

import httpx
import pytest

from maasflow.common.errors import Forbidden, PermanentMaasError

NO_TAG = httpx.Response(404, text="No Tag matches the given query.")


def _form(request: httpx.Request) -> dict[str, list[str]]:
    return parse_qs(request.content.decode())


async def test_an_existing_tag_costs_one_update_nodes_request(client, router) -> None:
    """POST tags/<name>/?op=update_nodes add=<system_id>; its "added" count is returned."""
    route = router.post("tags/maasflow-quarantine/", params={"op": "update_nodes"}).mock(
        return_value=httpx.Response(200, json={"added": 1, "removed": 0})
    )
    assert await client.tag_machine("maasflow-quarantine", "abc123") == 1
    assert route.call_count == 1
    assert _form(route.calls[0].request) == {"add": ["abc123"]}


async def test_a_missing_tag_is_created_then_the_update_is_sent_again(client, router) -> None:
    """On update_nodes' 404 the tag is created (POST tags/ name= comment=), then updated."""
    update = router.post("tags/q/", params={"op": "update_nodes"}).mock(
        side_effect=[NO_TAG, httpx.Response(200, json={"added": 1, "removed": 0})]
    )
    create = router.post("tags/").mock(
        return_value=httpx.Response(200, json={"name": "q", "comment": "why"})
    )
    assert await client.tag_machine("q", "abc123", comment="why") == 1
    assert update.call_count == 2
    assert _form(create.calls[0].request) == {"name": ["q"], "comment": ["why"]}
    assert "op" not in str(create.calls[0].request.url.query)


async def test_a_create_lost_to_a_race_still_tags_the_machine(client, router) -> None:
    """A 400 "already exists" from the create (another daemon made it) is not an error."""
    router.post("tags/q/", params={"op": "update_nodes"}).mock(
        side_effect=[NO_TAG, httpx.Response(200, json={"added": 1, "removed": 0})]
    )
    router.post("tags/").mock(
        return_value=httpx.Response(400, json={"name": ["Tag with this Name already exists."]})
    )
    assert await client.tag_machine("q", "abc123") == 1


async def test_a_non_admin_key_gets_the_403(client, router) -> None:
    """update_nodes is admin-only in MAAS: the 403 reaches the caller typed."""
    router.post("tags/q/", params={"op": "update_nodes"}).mock(return_value=httpx.Response(403))
    with pytest.raises(Forbidden):
        await client.tag_machine("q", "abc123")


@pytest.mark.parametrize("tag", ["", "bad tag", "../machines", "x" * 257])
async def test_a_tag_name_maas_would_refuse_is_never_put_in_a_url(client, router, tag) -> None:
    """Only MAAS's own tag-name characters reach the path; anything else fails before sending."""
    with pytest.raises(PermanentMaasError, match="refusing tag name"):
        await client.tag_machine(tag, "abc123")
    assert router.calls.call_count == 0
