"""Wake-on-LAN through the webhook power target, driven the way MAAS drives it."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from maasflow.serve.backends import AckTimeout, Target
from maasflow.serve.backends.acks import AckBoard
from maasflow.serve.backends.wol import magic_packet
from tests.service_power.helpers import TOKEN, power_service, wol_config
from tests.service_power.maas_replay import DriverError, MaasWebhookDriver

MAC_BYTES = bytes.fromhex("525400abcdef")


def driver_for(base: str, name: str = "desk1", **kw: Any) -> MaasWebhookDriver:
    return MaasWebhookDriver(
        on_uri=f"{base}/power/{name}/on",
        off_uri=f"{base}/power/{name}/off",
        query_uri=f"{base}/power/{name}",
        system_id="abc123",
        **kw,
    )


async def ack_when_pending(base: str, name: str = "desk1") -> int:
    """Like a person watching the page: acknowledge as soon as the off is waiting."""
    async with httpx.AsyncClient(base_url=base) as client:
        for _ in range(500):
            listing = (await client.get("/power/")).json()
            if any(m["name"] == name and m["off_waiting_for_ack"] for m in listing):
                return (await client.post(f"/power/{name}/ack")).status_code
            await asyncio.sleep(0.01)
    raise AssertionError("the power-off never became pending")


def test_magic_packet_is_six_ff_then_the_mac_sixteen_times() -> None:
    """The magic packet is 102 bytes: 6 x 0xFF followed by the MAC repeated 16 times."""
    packet = magic_packet("52:54:00:ab:cd:ef")
    assert len(packet) == 102
    assert packet == b"\xff\xff\xff\xff\xff\xff" + MAC_BYTES * 16


async def test_maas_powers_on_and_the_packet_is_caught(udp_catcher: Any) -> None:
    """MAAS's power-on sends a magic packet to the configured port and then reads 'on'."""
    async with power_service(wol_config(udp_catcher.port)) as (base, _):
        driver = driver_for(base)
        await driver.perform("on")
        assert await driver.power_query() == "on"
    packet = await udp_catcher.next()
    assert packet == b"\xff" * 6 + MAC_BYTES * 16


async def test_maas_power_off_waits_for_an_ack_then_reads_off(udp_catcher: Any) -> None:
    """A power-off waits until someone acknowledges it; MAAS then reads the machine as off."""
    async with power_service(wol_config(udp_catcher.port)) as (base, _):
        driver = driver_for(base)
        await driver.perform("on")
        off = asyncio.create_task(driver.perform("off"))
        assert await ack_when_pending(base) == 200
        await off
        assert await driver.power_query() == "off"
        assert driver.posts() == 2  # one on, one off: the ack answered the first off POST


async def test_unacknowledged_off_times_out_as_an_error_for_maas(udp_catcher: Any) -> None:
    """With nobody acknowledging, each off POST gets 504 and MAAS reports the error."""
    config = wol_config(udp_catcher.port, off_ack_timeout=0.05)
    async with power_service(config) as (base, _):
        driver = driver_for(base)
        await driver.perform("on")
        with pytest.raises(DriverError, match="status code: 504"):
            await driver.perform("off")
        assert await driver.power_query() == "on"
        assert driver.posts() == 1 + 7


async def test_concurrent_offs_join_one_pending_ack(udp_catcher: Any) -> None:
    """Two off requests while one is pending both finish on a single acknowledgement."""
    async with power_service(wol_config(udp_catcher.port)) as (base, component):
        component.store.set("desk1", "on")
        async with httpx.AsyncClient(base_url=base) as client:
            first = asyncio.create_task(client.post("/power/desk1/off"))
            second = asyncio.create_task(client.post("/power/desk1/off/"))
            assert await ack_when_pending(base) == 200
            responses = await asyncio.gather(first, second)
            assert [r.status_code for r in responses] == [200, 200]
            assert component.acks.pending() == []


async def test_off_of_a_machine_known_off_needs_no_ack(udp_catcher: Any) -> None:
    """An off for a machine already recorded off answers at once (MAAS re-POSTs are cheap)."""
    async with power_service(wol_config(udp_catcher.port)) as (base, component):
        component.store.set("desk1", "off")
        async with httpx.AsyncClient(base_url=base) as client:
            response = await client.post("/power/desk1/off")
        assert response.status_code == 200
        assert response.json()["state"] == "off"


async def test_on_while_an_off_waits_supersedes_it(udp_catcher: Any) -> None:
    """A power-on while an off waits for its ack ends that off with 409, and the state is on."""
    async with power_service(wol_config(udp_catcher.port)) as (base, component):
        component.store.set("desk1", "on")
        async with httpx.AsyncClient(base_url=base) as client:
            off = asyncio.create_task(client.post("/power/desk1/off"))
            while not component.acks.is_pending("desk1"):
                await asyncio.sleep(0.005)
            assert (await client.post("/power/desk1/on")).status_code == 200
            assert (await off).status_code == 409
            assert (await client.get("/power/desk1")).json() == {"status": "running"}


async def test_ack_with_nothing_pending_is_a_conflict(udp_catcher: Any) -> None:
    """Acknowledging a machine with no waiting power-off answers 409 JSON."""
    async with power_service(wol_config(udp_catcher.port)) as (base, _):
        async with httpx.AsyncClient(base_url=base) as client:
            response = await client.post("/power/desk1/ack")
        assert response.status_code == 409
        assert "error" in response.json()


async def test_acks_page_lists_pending_offs_and_its_form_acknowledges(udp_catcher: Any) -> None:
    """The HTML page lists a waiting off with a form; posting that form acknowledges it."""
    config = wol_config(udp_catcher.port, hostname="<b>desk</b>")
    async with power_service(config) as (base, component):
        component.store.set("desk1", "on")
        async with httpx.AsyncClient(base_url=base) as client:
            off = asyncio.create_task(client.post("/power/desk1/off"))
            while not component.acks.is_pending("desk1"):
                await asyncio.sleep(0.005)
            page = await client.get("/power/acks")
            assert page.headers["content-type"].startswith("text/html")
            assert '<form method="post" action="/power/desk1/ack">' in page.text
            assert "&lt;b&gt;desk&lt;/b&gt;" in page.text and "<b>desk</b>" not in page.text
            form = await client.post("/power/desk1/ack", data={"ack": "1"})
            assert form.status_code == 303 and form.headers["location"] == "/power/acks"
            assert (await off).status_code == 200
            empty = await client.get("/power/acks/")
            assert "Nothing is waiting" in empty.text


async def test_probe_decides_the_state_and_ends_a_waiting_off(udp_catcher: Any) -> None:
    """With a TCP probe, the query follows the port, and a closed port counts as the ack."""
    listener = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    probe = {"host": "127.0.0.1", "port": port, "timeout": 1, "interval": 0.02}
    async with power_service(wol_config(udp_catcher.port, probe=probe)) as (base, _):
        driver = driver_for(base)
        assert await driver.power_query() == "on"
        off = asyncio.create_task(driver.perform("off"))
        await asyncio.sleep(0.05)
        assert not off.done()
        listener.close()
        await listener.wait_closed()
        await off
        assert await driver.power_query() == "off"


async def test_bearer_driver_round_trip(udp_catcher: Any) -> None:
    """MAAS configured with power_token powers a WoL machine on through a token-protected API."""
    from maasflow.serve.power_config import PowerAuth

    async with power_service(wol_config(udp_catcher.port), PowerAuth(token=TOKEN)) as (base, _):
        await driver_for(base, token=TOKEN).perform("on")
        with pytest.raises(DriverError, match="401"):
            await driver_for(base).power_query()
    assert len(await udp_catcher.next()) == 102


class FakeProbe:
    """Stands in for the TCP probe: answers `state` and counts how often it was asked."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.state = "off"
        self.calls = 0
        monkeypatch.setattr("maasflow.serve.backends.wol.probe_state", self.answer)

    async def answer(self, probe: object) -> str:
        self.calls += 1
        return self.state

    async def asked(self, times: int) -> None:
        """Return once the probe has been asked `times` more times."""
        target = self.calls + times
        for _ in range(1000):
            if self.calls >= target:
                return
            await asyncio.sleep(0.005)
        raise AssertionError("the probe was not asked again")


PROBE = {"host": "127.0.0.1", "port": 9, "timeout": 0.1, "interval": 0.01}


async def test_booting_machine_reads_on_until_the_probe_first_sees_it_up(
    udp_catcher: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a packet, a probe still closed (PXE boot) reads on; once seen up, the probe rules."""
    fake = FakeProbe(monkeypatch)
    async with power_service(wol_config(udp_catcher.port, probe=PROBE)) as (base, _):
        driver = driver_for(base)
        await driver.perform("on")
        assert driver.posts() == 1 and fake.calls >= 1
        fake.state = "on"
        assert await driver.power_query() == "on"
        fake.state = "off"
        assert await driver.power_query() == "off"


async def test_zero_boot_grace_trusts_the_probe_at_once(
    udp_catcher: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With boot_grace 0 a closed probe port reads off right after the packet."""
    FakeProbe(monkeypatch)
    config = wol_config(udp_catcher.port, probe={**PROBE, "boot_grace": 0})
    async with power_service(config) as (base, _):
        driver = driver_for(base)
        await driver.power_on()
        assert await driver.power_query() == "off"


async def test_off_during_the_boot_grace_waits_for_a_person(
    udp_catcher: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A power-off while booting is not acknowledged by the closed probe port, only by a person."""
    fake = FakeProbe(monkeypatch)
    async with power_service(wol_config(udp_catcher.port, probe=PROBE)) as (base, component):
        driver = driver_for(base)
        await driver.power_on()
        off = asyncio.create_task(driver.power_off())
        for _ in range(1000):
            if component.acks.is_pending("desk1") or off.done():
                break
            await asyncio.sleep(0.005)
        assert component.acks.is_pending("desk1")
        await fake.asked(3)
        assert not off.done()
        assert await ack_when_pending(base) == 200
        await off
        assert await driver.power_query() == "off"


# --- MAAS 3.5/3.6: the agent's attempts, the CLI's final query ------------------------------


async def test_an_acknowledged_off_stands_while_the_machine_shuts_down(
    udp_catcher: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After an ack the machine reads off although the probe still answers (it is shutting
    down), so MAAS 3.6's final query accepts the off and nothing waits on the page again."""
    fake = FakeProbe(monkeypatch)
    fake.state = "on"
    async with power_service(wol_config(udp_catcher.port, probe=PROBE)) as (base, component):
        maas = driver_for(base)
        off = asyncio.create_task(maas.agent("off"))
        assert await ack_when_pending(base) == 200
        assert await off == "off"
        assert (maas.attempts, maas.posts()) == (1, 1)
        assert await maas.monitor() == "off" and component.acks.pending() == []
        fake.state = "off"  # seen down: from now on the probe rules again
        assert await maas.monitor() == "off"
        fake.state = "on"
        assert await maas.monitor() == "on"


async def test_the_shutdown_grace_is_bounded(
    udp_catcher: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ack stands for `shutdown_grace` only: a machine still up after it reads on again."""
    fake = FakeProbe(monkeypatch)
    fake.state = "on"
    config = wol_config(udp_catcher.port, probe={**PROBE, "shutdown_grace": 0.2})
    async with power_service(config) as (base, _):
        maas = driver_for(base)
        off = asyncio.create_task(maas.agent("off"))
        assert await ack_when_pending(base) == 200
        assert await off == "off"
        await asyncio.sleep(0.25)
        assert await maas.monitor() == "on"


async def test_nobody_acking_fails_in_maas_soon_after_the_timeout_and_leaves_the_page(
    udp_catcher: Any,
) -> None:
    """With nobody acking, MAAS 3.6's retries after the timeout are refused at once: all 3
    attempts fail within their confirm loops, and the machine is listed only until then."""
    async with power_service(wol_config(udp_catcher.port, off_ack_timeout=0.3)) as (base, comp):
        comp.store.set("desk1", "on")
        # An attempt is killed after 1.2 s: seven 0.3 s waits would not fit in it, so a 504
        # (not the kill) ending the last attempt shows the retries were refused at once.
        maas = driver_for(base, scale=0.004)
        with pytest.raises(DriverError, match="status code: 504"):
            await maas.agent("off")
        assert (maas.attempts, maas.posts()) == (3, 3 * 7)
        assert [sent.status for sent in maas.sent if sent.method == "POST"] == [504] * 21
        assert comp.acks.pending() == []
        assert await maas.monitor() == "on"
        async with httpx.AsyncClient(base_url=base) as client:  # a power-on starts afresh
            assert (await client.post("/power/desk1/on")).status_code == 200
            off = asyncio.create_task(client.post("/power/desk1/off"))
            assert await ack_when_pending(base) == 200
            assert (await off).status_code == 200


async def test_an_ack_during_maas_second_attempt_completes_its_power_off(
    udp_catcher: Any,
) -> None:
    """A wait spans MAAS's attempts: the second attempt's POST joins the first one's wait, so
    the machine is listed once, and an ack then completes MAAS's power-off."""
    config = wol_config(udp_catcher.port)
    del config["machines"]["desk1"]["off_ack_timeout"]  # the default: all of MAAS's attempts
    async with power_service(config) as (base, component):
        component.store.set("desk1", "on")
        # attempt 1 is killed after 0.3 s (no ack comes before attempt 2 starts); attempt 2
        # has 30 s, so the ack lands in it however busy the machine is
        maas = driver_for(base, scale=0.001, attempt_timeouts=(0.3, 30.0))
        off = asyncio.create_task(maas.agent("off"))
        while not component.acks.is_pending("desk1"):
            await asyncio.sleep(0.005)
        (first,) = component.acks.pending()
        while maas.attempts < 2:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        assert component.acks.pending() == [first]
        assert await ack_when_pending(base) == 200
        assert await off == "off"
        assert (maas.attempts, maas.posts()) == (2, 1)  # attempt 1's POST died unanswered
        assert await maas.monitor() == "off"


async def test_a_timed_out_wait_refuses_retries_only_for_maas_window() -> None:
    """After a timeout, power-offs of that machine fail at once until the window since the
    wait opened has passed; then, as after a power-on, a new power-off waits afresh."""
    board = AckBoard(window=0.3)
    target = Target("desk1", None, "desk1", "abc123")
    with pytest.raises(AckTimeout, match=r"not acknowledged in time$"):
        await board.wait(target, 0.05)
    with pytest.raises(AckTimeout, match="refused until its power action ends"):
        await board.wait(target, 5)
    assert board.pending() == []
    await asyncio.sleep(0.3)
    fresh = asyncio.create_task(board.wait(target, 5))
    await asyncio.sleep(0.01)
    assert board.ack("desk1") and await fresh is None
    with pytest.raises(AckTimeout):
        await board.wait(target, 0.01)
    board.cancel("desk1", AckTimeout("unused"))  # what a power-on does
    again = asyncio.create_task(board.wait(target, 5))
    await asyncio.sleep(0.01)
    assert board.ack("desk1") and await again is None
