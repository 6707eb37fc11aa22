"""A rotated API key: after a 401 the client asks its key source once and, given a new key,
sends the request again signed with it; without a new key the 401 stands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
import respx
from structlog.testing import capture_logs

from maasflow.common.errors import ConfigError, Unauthorized
from maasflow.daemon.maas.client import MaasClient

NEW_KEY = "nEwConsumerKey1234:nEwTokenKey0123456:nEwSecretNewSecretNewSecret12345"


def _only(token: str, oauth_params: Callable[[str], dict[str, str]]) -> Any:
    """A MAAS that accepts only requests signed with the token key `token`."""

    def answer(request: httpx.Request) -> httpx.Response:
        signed = oauth_params(request.headers["authorization"])["oauth_token"]
        if signed != token:
            return httpx.Response(401, text="Authorization Error: 'Invalid access token'")
        return httpx.Response(200, json={"username": "admin", "is_superuser": True})

    return answer


async def test_a_401_reads_the_key_again_and_retries_with_the_new_one(
    router: respx.MockRouter, make_client: Callable[..., MaasClient], oauth_params: Any
) -> None:
    """MAAS rejects the old key; the source's new key signs the one repeated request."""
    route = router.get("users/").mock(side_effect=_only("nEwTokenKey0123456", oauth_params))
    reads: list[int] = []

    def source() -> str:
        reads.append(1)
        return NEW_KEY

    with capture_logs() as logs:
        async with make_client(key_source=source) as client:
            assert (await client.whoami()).username == "admin"
            assert (await client.whoami()).username == "admin"  # the new key stays
    assert route.call_count == 3 and len(reads) == 1
    (renewed,) = [e for e in logs if e["event"] == "maas.key_renewed"]
    assert renewed["key_shape"] == "<18:18:32 chars>"
    assert NEW_KEY.split(":")[2] not in repr(logs)


async def test_the_same_key_again_leaves_the_401_standing(
    router: respx.MockRouter,
    make_client: Callable[..., MaasClient],
    oauth_params: Any,
    key: Any,
) -> None:
    """A source still holding the rejected key: one request, Unauthorized raised."""
    route = router.get("users/").mock(side_effect=_only("nEwTokenKey0123456", oauth_params))
    async with make_client(key_source=lambda: key.full) as client:
        with pytest.raises(Unauthorized):
            await client.whoami()
    assert route.call_count == 1


async def test_an_unreadable_key_source_keeps_the_old_key_and_says_why(
    router: respx.MockRouter, make_client: Callable[..., MaasClient], oauth_params: Any
) -> None:
    """A key file gone bad (unreadable, malformed) is logged; the 401 is raised as before."""
    router.get("users/").mock(side_effect=_only("nEwTokenKey0123456", oauth_params))

    def broken() -> str:
        raise ConfigError("the MAAS API key file '/k': cannot read the MAAS API key")

    for source in (broken, lambda: "not-a-key"):
        with capture_logs() as logs:
            async with make_client(key_source=source) as client:
                with pytest.raises(Unauthorized):
                    await client.whoami()
        assert [e["event"] for e in logs if e["log_level"] == "warning"] == [
            "maas.key_reread_failed"
        ]


async def test_a_rejected_write_is_sent_again_once_with_the_new_key(
    router: respx.MockRouter, make_client: Callable[..., MaasClient], oauth_params: Any
) -> None:
    """A 401 means MAAS did nothing: the write is repeated once, signed with the new key."""

    def answer(request: httpx.Request) -> httpx.Response:
        signed = oauth_params(request.headers["authorization"])["oauth_token"]
        if signed != "nEwTokenKey0123456":
            return httpx.Response(401, text="Authorization Error")
        return httpx.Response(200, json={"system_id": "abc123", "hostname": "h", "status": 2})

    route = router.post("machines/abc123/").mock(side_effect=answer)
    async with make_client(key_source=lambda: NEW_KEY, write_attempts=1) as client:
        assert (await client.commission("abc123")).system_id == "abc123"
    assert route.call_count == 2
