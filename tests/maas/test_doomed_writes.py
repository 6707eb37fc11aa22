"""Writes that cannot heal by waiting: one attempt each, and MAAS's address exhaustion is final."""

from __future__ import annotations

import httpx
import pytest

from maasflow.common.errors import NotLeader, PermanentMaasError, TemporaryMaasError

EXHAUSTED = "abc123: Unable to allocate static IP due to address exhaustion."


async def test_a_write_with_one_attempt_never_waits_in_place(router, make_client, recorder) -> None:
    """write_attempts=1: a 503 with Retry-After on deploy raises at once, with no sleep."""
    route = router.post("machines/abc123/").mock(
        return_value=httpx.Response(503, text="No rack.", headers={"Retry-After": "10"})
    )
    async with make_client(write_attempts=1) as maas:
        with pytest.raises(TemporaryMaasError) as caught:
            await maas.deploy("abc123")
    assert caught.value.status == 503
    assert route.call_count == 1
    assert recorder.sleeps == []


async def test_reads_keep_their_retries_when_writes_have_one_attempt(
    router, make_client, recorder, machine
) -> None:
    """The listing is still retried after a 503 (the pass may wait; an action may not)."""
    router.get("machines/").mock(
        side_effect=[
            httpx.Response(503, text="busy", headers={"Retry-After": "2"}),
            httpx.Response(200, json=[machine("a")]),
        ]
    )
    async with make_client(write_attempts=1) as maas:
        assert len(await maas.list_machines()) == 1
    assert recorder.sleeps == [2.0]


async def test_the_reread_after_a_garbled_write_answer_has_the_writes_attempts(
    router, make_client, recorder
) -> None:
    """A deploy's garbled 200 is read back by GET once; a 503 on that GET is not waited out."""
    router.post("machines/abc123/").mock(return_value=httpx.Response(200, text="{trunc"))
    reread = router.get("machines/abc123/").mock(
        return_value=httpx.Response(503, text="busy", headers={"Retry-After": "5"})
    )
    async with make_client(write_attempts=1) as maas:
        with pytest.raises(TemporaryMaasError):
            await maas.deploy("abc123")
    assert reread.call_count == 1
    assert recorder.sleeps == []


async def test_address_exhaustion_503_is_permanent_even_with_retries(
    router, make_client, recorder
) -> None:
    """MAAS's StaticIPAddressExhaustion 503 is not retried at all: waiting cannot free an IP."""
    route = router.post("machines/abc123/").mock(return_value=httpx.Response(503, text=EXHAUSTED))
    async with make_client(max_attempts=5) as maas:
        with pytest.raises(PermanentMaasError) as caught:
            await maas.deploy("abc123")
    assert not isinstance(caught.value, TemporaryMaasError)
    assert caught.value.status == 503
    assert "address exhaustion" in caught.value.message and "retrying cannot help" in str(
        caught.value
    )
    assert route.call_count == 1
    assert recorder.sleeps == []


def test_write_attempts_below_one_are_refused(make_client) -> None:
    """A client that could never send a write is a programming error, caught at construction."""
    with pytest.raises(ValueError, match="attempts"):
        make_client(write_attempts=0)


async def test_a_fenced_client_sends_no_write_but_still_reads(router, make_client, machine) -> None:
    """before_write raising (the leadership fence) stops a write unsent; reads go on."""

    def fence() -> None:
        raise NotLeader("not the leader")

    deploy = router.post("machines/abc123/").mock(return_value=httpx.Response(200, json={}))
    router.get("machines/").mock(return_value=httpx.Response(200, json=[machine("a")]))
    async with make_client(before_write=fence) as maas:
        with pytest.raises(NotLeader):
            await maas.deploy("abc123")
        assert len(await maas.list_machines()) == 1
    assert deploy.call_count == 0
