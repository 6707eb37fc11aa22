"""The DLI backend against a fake switch on loopback, in both dialects, directly and via MAAS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from maasflow.serve.backends import PowerError, Target
from maasflow.serve.backends.dli import DliBackend
from maasflow.serve.backends.dli_wire import NoSuchOutlet, legacy_outlets, missing_outlet
from maasflow.serve.power_config import DliMachine
from tests.service_power.fake_dli import FakeDli
from tests.service_power.helpers import power_service, serve
from tests.service_power.maas_replay import DriverError, MaasWebhookDriver

TARGET = Target("rack1", None, "rack1", "dli001")
SWITCH_PW = FakeDli().password
FAST = {"poll_interval": 0.01, "settle_timeout": 1.0, "cycle_delay": 0.0}


@pytest.fixture
async def switch() -> AsyncIterator[tuple[FakeDli, str]]:
    fake = FakeDli()
    async with serve(fake.app()) as base:
        yield fake, base


def backend(base: str, dialect: str = "auto", password: str = SWITCH_PW, **kw: Any) -> DliBackend:
    spec = DliMachine.model_validate(
        {
            "backend": "dli",
            "address": base.removeprefix("http://"),
            "outlet": 3,
            "dialect": dialect,
            "password": password,
            **FAST,
            **kw,
        }
    )
    return DliBackend(spec, spec.resolve_password())


@pytest.mark.parametrize("dialect", ["rest", "legacy", "auto"])
async def test_on_off_and_query_switch_outlet_three(
    switch: tuple[FakeDli, str], dialect: str
) -> None:
    """On, query and off drive 1-based outlet 3 of the switch in every dialect setting."""
    fake, base = switch
    dli = backend(base, dialect)
    assert await dli.power_on(TARGET) == "on"
    assert fake.state == 0b100
    assert await dli.query(TARGET) == "on"
    assert await dli.power_off(TARGET) == "off"
    assert fake.state == 0 and await dli.query(TARGET) == "off"
    await dli.aclose()


async def test_rest_uses_zero_based_ids_with_digest_and_csrf(switch: tuple[FakeDli, str]) -> None:
    """The REST dialect PUTs outlet 3 as id 2, authenticated by Digest, carrying X-CSRF."""
    fake, base = switch
    dli = backend(base, "rest")
    await dli.power_on(TARGET)
    await dli.aclose()
    assert "PUT /restapi/relay/outlets/2/state/" in fake.log
    assert not any(line.startswith("GET /outlet") for line in fake.log)


async def test_legacy_uses_outlet_links_and_the_state_comment(switch: tuple[FakeDli, str]) -> None:
    """The legacy dialect switches with /outlet?3=ON and reads /index.htm."""
    fake, base = switch
    dli = backend(base, "legacy")
    await dli.power_on(TARGET)
    await dli.power_off(TARGET)
    await dli.aclose()
    assert "GET /outlet?3=ON" in fake.log and "GET /outlet?3=OFF" in fake.log
    assert not any("/restapi/" in line for line in fake.log)


async def test_legacy_falls_back_to_challenge_login() -> None:
    """When Basic is not accepted, the legacy dialect logs in with the MD5 challenge form."""
    fake = FakeDli(allow_basic=False)
    async with serve(fake.app()) as base:
        dli = backend(base, "legacy")
        assert await dli.power_on(TARGET) == "on"
        await dli.aclose()
    assert fake.is_on(3)
    assert "POST /login.tgi" in fake.log


async def test_auto_picks_legacy_when_rest_is_disabled() -> None:
    """A unit without the REST API (404 on /restapi/) is driven through the legacy pages."""
    fake = FakeDli(rest_enabled=False)
    async with serve(fake.app()) as base:
        dli = backend(base, "auto")
        assert await dli.power_on(TARGET) == "on"
        await dli.aclose()
    assert "GET /outlet?3=ON" in fake.log


@pytest.mark.parametrize("dialect", ["rest", "legacy"])
async def test_cycle_on_turns_an_on_outlet_off_then_on(dialect: str) -> None:
    """With cycle_on, `on` of an outlet already on switches it off and back on, once."""
    fake = FakeDli(state=0b100)
    async with serve(fake.app()) as base:
        dli = backend(base, dialect, cycle_on=True)
        assert await dli.power_on(TARGET) == "on"
        assert await dli.power_on(TARGET) == "on"  # a MAAS re-POST inside the guard: no cycle
        await dli.aclose()
    switches = [line for line in fake.log if line.startswith(("GET /outlet", "PUT"))]
    assert len(switches) == 2
    assert fake.is_on(3)


async def test_without_cycle_on_an_on_outlet_is_left_alone(switch: tuple[FakeDli, str]) -> None:
    """Without cycle_on, `on` of an outlet already on sends nothing to the switch."""
    fake, base = switch
    fake.state = 0b100
    dli = backend(base, "legacy")
    assert await dli.power_on(TARGET) == "on"
    await dli.aclose()
    assert not any(line.startswith("GET /outlet") for line in fake.log)


@pytest.mark.parametrize("dialect", ["rest", "legacy"])
async def test_one_step_stale_state_is_polled_through(dialect: str) -> None:
    """A switch whose state lags one read still reports the new state once `on` returns."""
    fake = FakeDli(stale_reads=True)
    async with serve(fake.app()) as base:
        dli = backend(base, dialect)
        assert await dli.power_on(TARGET) == "on"
        assert await dli.query(TARGET) == "on"
        await dli.aclose()


async def test_wrong_password_is_a_power_error_without_the_password() -> None:
    """Refused credentials raise PowerError whose message does not contain the password."""
    fake = FakeDli(password="right")
    async with serve(fake.app()) as base:
        for dialect in ("rest", "legacy"):
            dli = backend(base, dialect, password="wr0ng-secret")
            with pytest.raises(PowerError) as caught:
                await dli.query(TARGET)
            await dli.aclose()
            assert "wr0ng-secret" not in str(caught.value)


async def test_fake_switch_refuses_rest_writes_without_csrf(switch: tuple[FakeDli, str]) -> None:
    """The fake answers 403 to a digest-authenticated PUT without X-CSRF, as units do."""
    fake, base = switch
    url = f"{base}/restapi/relay/outlets/0/state/"
    async with httpx.AsyncClient(auth=httpx.DigestAuth("admin", "4321")) as client:
        refused = await client.put(url, data={"value": "true"})
        accepted = await client.put(url, data={"value": "true"}, headers={"X-CSRF": "x"})
    async with httpx.AsyncClient() as anonymous:
        unauthenticated = await anonymous.get(url)
    assert (refused.status_code, accepted.status_code) == (403, 204)
    challenge = unauthenticated.headers["www-authenticate"]
    assert challenge.startswith('DIGEST realm="DLI ') and "qop" not in challenge
    assert fake.is_on(1)


@pytest.mark.parametrize("dialect", ["rest", "legacy"])
async def test_maas_drives_a_dli_outlet_through_the_webhook(dialect: str) -> None:
    """MAAS's webhook driver, replayed, powers a DLI outlet on and off through the service."""
    fake = FakeDli(stale_reads=True)
    async with serve(fake.app()) as dli_base:
        spec = {
            "backend": "dli",
            "address": dli_base,
            "outlet": 3,
            "dialect": dialect,
            "password": "4321",
            "system_id": "dli001",
            **FAST,
        }
        async with power_service({"machines": {"rack1": spec}}) as (base, _):
            driver = MaasWebhookDriver(
                f"{base}/power/rack1/on", f"{base}/power/rack1/off", f"{base}/power/rack1", "dli001"
            )
            await driver.perform("on")
            assert fake.is_on(3)
            await driver.perform("off")
            assert not fake.is_on(3)
            assert driver.posts() == 2  # each confirmed in MAAS's first round


async def test_unreachable_switch_answers_503() -> None:
    """A switch that refuses connections makes the power request answer 503 JSON."""
    fake = FakeDli()
    async with serve(fake.app()) as dli_base:
        pass  # the port is closed again now
    spec = {
        "backend": "dli",
        "address": dli_base,
        "outlet": 1,
        "dialect": "auto",
        "password": "x",
        "timeout": 2,
    }
    async with (
        power_service({"machines": {"rack1": spec}}) as (base, _),
        httpx.AsyncClient() as client,
    ):
        response = await client.get(f"{base}/power/rack1")
    assert response.status_code == 503
    assert "DLI switch" in response.json()["error"]


# --- the unit's own outlet table; what real units refuse ------------------------------------


@pytest.mark.parametrize("dialect", ["rest", "legacy"])
async def test_an_outlet_the_unit_lacks_is_refused_at_first_use(dialect: str) -> None:
    """Outlet 9 of an 8-outlet unit fails at once, naming the unit's outlets; nothing switched."""
    fake = FakeDli(outlets=8)
    async with serve(fake.app()) as base:
        dli = backend(base, dialect, outlet=9)
        for call in (dli.power_on, dli.query):
            with pytest.raises(NoSuchOutlet, match=r"has outlets 1-8; outlet 9 is not one"):
                await call(TARGET)
        await dli.aclose()
    assert fake.state == 0
    assert not any(line.startswith(("GET /outlet", "PUT")) for line in fake.log)


async def test_maas_sees_a_missing_outlet_as_an_error_not_as_off() -> None:
    """Through the service, MAAS's monitor records "error" and its power CLI fails on `on`."""
    fake = FakeDli(outlets=4, rest_enabled=False)
    async with serve(fake.app()) as dli_base:
        spec = {"backend": "dli", "address": dli_base, "outlet": 5, "password": "4321", **FAST}
        async with power_service({"machines": {"rack1": spec}}) as (base, _):
            uri = f"{base}/power/rack1"
            maas = MaasWebhookDriver(f"{uri}/on", f"{uri}/off", uri, "dli001", scale=0.001)
            assert await maas.monitor() == "error"
            with pytest.raises(DriverError, match="status code: 502"):
                await maas.cli("on")  # one of the agent's attempts
    assert fake.state == 0


def test_the_outlet_table_is_read_from_the_outlet_links() -> None:
    """The outlets of an index page are those its `outlet?<n>=` links name (not `a`, all)."""
    page = '<a href="outlet?a=OFF">x</a><a href=outlet?1=ON>y</a><!-- <a href="outlet?3=CCL"> -->'
    assert legacy_outlets(page) == {1, 3}
    assert missing_outlet(2, {1, 3}, "pdu") is not None
    assert missing_outlet(7, set(), "pdu") is None  # no table shown: nothing to check against


async def test_fake_switch_ignores_an_outlet_it_does_not_have() -> None:
    """The fake 8-outlet unit switches nothing for `/outlet?9=ON` and lists outlets 1-8 only."""
    fake = FakeDli(outlets=8, rest_enabled=False)
    async with serve(fake.app()) as base, httpx.AsyncClient(auth=("admin", "4321")) as client:
        await client.get(f"{base}/outlet?9=ON")
        await client.get(f"{base}/outlet?x=ON")
        page = (await client.get(f"{base}/index.htm")).text
    assert fake.state == 0 and "<!-- state=00 " in page
    assert legacy_outlets(page) == set(range(1, 9))


@pytest.mark.parametrize(
    ("kw", "takes_basic"),
    [({}, False), ({"allow_basic": True}, True), ({"rest_enabled": False}, True)],
    ids=["new-firmware", "plaintext-allowed", "legacy-only-unit"],
)
async def test_fake_switch_takes_basic_only_where_real_units_do(
    kw: dict[str, bool], takes_basic: bool
) -> None:
    """A REST-capable unit answers Basic with the login redirect unless plaintext logins are
    allowed; a legacy-only unit takes it."""
    fake = FakeDli(**kw)
    async with serve(fake.app()) as base, httpx.AsyncClient(auth=("admin", "4321")) as client:
        page = (await client.get(f"{base}/index.htm")).text
        await client.get(f"{base}/outlet?2=ON")
    assert ("<!-- state=" in page) is takes_basic
    assert fake.is_on(2) is takes_basic


async def test_legacy_dialect_logs_in_with_the_form_on_new_firmware(
    switch: tuple[FakeDli, str],
) -> None:
    """Against a unit that refuses Basic (the default new firmware), the legacy dialect logs
    in with the challenge form before its first switch and switches the outlet."""
    fake, base = switch
    dli = backend(base, "legacy")
    assert await dli.power_on(TARGET) == "on"
    await dli.aclose()
    assert fake.log.index("POST /login.tgi") < fake.log.index("GET /outlet?3=ON")
