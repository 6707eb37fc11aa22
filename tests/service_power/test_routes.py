"""The webhook routes: auth as MAAS sends it, machine resolution, slashes, bodies, errors."""

from __future__ import annotations

import base64
import re
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from maasflow.serve.asgi import CONTROL_IN_PATH
from maasflow.serve.power_api import authorized, cross_site
from maasflow.serve.power_config import PowerAuth
from tests.service_power.helpers import PASSWORD, TOKEN, USER, power_service, wol_config
from tests.service_power.maas_replay import (
    MAAS_DEFAULT_OFF_REGEX,
    MAAS_DEFAULT_ON_REGEX,
    DriverError,
    MaasWebhookDriver,
)

BOTH = PowerAuth(token=TOKEN, user=USER, password=PASSWORD)
NO_ROUTE = "no such power route; see GET /power/ and /openapi.json"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def driver(base: str, path: str = "desk1", **kw: Any) -> MaasWebhookDriver:
    return MaasWebhookDriver(
        on_uri=f"{base}/power/{path}/on",
        off_uri=f"{base}/power/{path}/off",
        query_uri=f"{base}/power/{path}",
        system_id="abc123",
        **kw,
    )


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        (f"Bearer {TOKEN}", True),
        (f"bearer {TOKEN}", True),
        (basic(USER, PASSWORD), True),
        ("Bearer wrong", False),
        (f"Bearer {TOKEN}x", False),
        (basic(USER, "nope"), False),
        (basic("other", PASSWORD), False),
        ("Basic !!!notbase64", False),
        ("Digest something", False),
        (None, False),
        ("", False),
    ],
)
def test_authorized_accepts_only_the_configured_credentials(header: str | None, ok: bool) -> None:
    """Bearer and Basic with the configured secrets pass; anything else does not."""
    assert authorized(BOTH, header) is ok


def test_open_auth_lets_everything_through() -> None:
    """With no credentials configured, any request is authorized."""
    assert authorized(PowerAuth(), None) and authorized(PowerAuth(), "Bearer x")


def test_power_auth_repr_hides_secrets() -> None:
    """The repr of the credentials never shows the token or the password."""
    text = repr(BOTH)
    assert TOKEN not in text and PASSWORD not in text and USER in text


async def test_bearer_and_basic_drivers_both_work(udp_catcher: Any) -> None:
    """A MAAS driver with power_token, and one with power_user/power_pass, both succeed."""
    async with power_service(wol_config(udp_catcher.port), BOTH) as (base, _):
        await driver(base, token=TOKEN).perform("on")
        assert await driver(base, user=USER, password=PASSWORD).power_query() == "on"


@pytest.mark.parametrize(
    "kw",
    [{"token": "wrong"}, {"user": USER, "password": "wrong"}, {}],
    ids=["wrong-token", "wrong-password", "missing"],
)
async def test_bad_or_missing_credentials_get_401_with_challenges(
    udp_catcher: Any, kw: dict[str, str]
) -> None:
    """Wrong or missing credentials get 401 JSON with Bearer and Basic challenges."""
    async with power_service(wol_config(udp_catcher.port), BOTH) as (base, _):
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{base}/power/desk1", headers=driver(base, **kw).headers())
        assert response.status_code == 401
        challenges = response.headers.get_list("www-authenticate")
        assert challenges[0].startswith('Bearer realm="')
        assert challenges[1].startswith('Basic realm="')
        assert response.json() == {"error": "authentication required"}
        with pytest.raises(DriverError, match="401"):
            await driver(base, **kw).perform("on")
    assert udp_catcher.pending() is None  # nothing was switched


async def test_token_only_service_challenges_with_bearer_only(udp_catcher: Any) -> None:
    """A service with only a token configured offers only the Bearer scheme."""
    async with (
        power_service(wol_config(udp_catcher.port), PowerAuth(token=TOKEN)) as (base, _),
        httpx.AsyncClient() as client,
    ):
        response = await client.post(f"{base}/power/desk1/on")
    assert response.headers.get_list("www-authenticate") == ['Bearer realm="maasflow-power"']


async def test_missing_system_id_header_still_works(udp_catcher: Any) -> None:
    """Without the System_Id header (MAAS 3.6's on/off, or a proxy dropped it) the path alone
    resolves the machine."""
    async with power_service(wol_config(udp_catcher.port)) as (base, _):
        maas = driver(base)
        await maas.perform("on")
        assert {sent.system_id for sent in maas.sent} == {None}
    assert len(await udp_catcher.next()) == 102


@pytest.mark.parametrize(
    "key",
    [
        "desk1",
        "52:54:00:ab:cd:ef",
        "52-54-00-AB-CD-EF",
        "525400abcdef",
        "5254.00ab.cdef",
        "abc123",
        "ABC123",
    ],
)
async def test_machine_resolves_by_name_mac_or_system_id(udp_catcher: Any, key: str) -> None:
    """The path segment may be the name, the MAC in any notation, or the system_id."""
    async with power_service(wol_config(udp_catcher.port)) as (base, _):
        await driver(base, key).perform("on")
        assert await driver(base, key).power_query() == "on"


async def test_trailing_slashes_are_served_without_redirects(udp_catcher: Any) -> None:
    """Every route answers with and without a trailing slash, with no redirect."""
    async with (
        power_service(wol_config(udp_catcher.port)) as (base, _),
        httpx.AsyncClient(base_url=base) as client,
    ):
        for method, path in [
            ("POST", "/power/desk1/on"),
            ("GET", "/power/desk1"),
            ("GET", "/power"),
            ("GET", "/power/acks"),
        ]:
            for variant in (path, path + "/"):
                response = await client.request(method, variant)
                assert response.status_code == 200, variant


async def test_a_system_id_header_does_not_resolve_an_unknown_path(udp_catcher: Any) -> None:
    """A path that names nothing is 400 even with a configured System_id header: MAAS 3.6's
    on/off carry no header, so a header-resolved query would disagree with them."""
    async with power_service(wol_config(udp_catcher.port)) as (base, _):
        stray = driver(base, "whatever")
        assert await stray.monitor() == "error"
        with pytest.raises(DriverError, match="status code: 400"):
            await stray.power_on("abc123")
        assert {sent.status for sent in stray.sent} == {400}
    assert udp_catcher.pending() is None


async def test_a_monitor_header_naming_another_machine_reads_what_on_and_off_switch(
    udp_catcher: Any,
) -> None:
    """A System_id that differs from the configured one is answered, not refused with 409:
    MAAS's monitor reads the same machine its on/off switch, and the mismatch is logged once."""
    async with power_service(wol_config(udp_catcher.port)) as (base, _):
        other = MaasWebhookDriver(
            f"{base}/power/desk1/on", f"{base}/power/desk1/off", f"{base}/power/desk1", "zzz999"
        )
        with capture_logs() as logs:
            assert await other.agent("on") == "on"
            assert [await other.monitor(), await other.monitor()] == ["on", "on"]
        async with httpx.AsyncClient() as client:
            listing = (await client.get(f"{base}/power/")).json()
    assert listing[0]["maas_system_id"] == "zzz999"
    mismatches = [entry for entry in logs if entry["event"] == "power.system_id_mismatch"]
    assert len(mismatches) == 1 and mismatches[0]["log_level"] == "warning"
    assert (mismatches[0]["configured"], mismatches[0]["maas_system_id"]) == ("abc123", "zzz999")
    assert len(await udp_catcher.next()) == 102


async def test_unknown_machine_is_a_400_that_maas_reports(udp_catcher: Any) -> None:
    """An unknown machine is 400 JSON without the path, so a typo fails in MAAS, never passes."""
    async with power_service(wol_config(udp_catcher.port)) as (base, _):
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{base}/power/status%3Arunning")
        assert response.status_code == 400
        assert response.json() == {"error": "no such machine is configured"}
        assert not re.search(MAAS_DEFAULT_ON_REGEX, response.text)
        assert not re.search(MAAS_DEFAULT_OFF_REGEX, response.text)
        typo = driver(base, "desk-1")
        with pytest.raises(DriverError, match="status code: 400"):
            await typo.power_query()
        with pytest.raises(DriverError, match="status code: 400"):
            await typo.perform("on")
    assert udp_catcher.pending() is None


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/power/desk1/onn"),
        ("POST", "/power/desk1/of"),
        ("GET", "/power/desk1/status"),
        ("GET", "/power/desk1/on"),
        ("POST", "/power/desk1"),
        ("POST", "/power/desk1/on/again"),
        ("PUT", "/power/"),
        ("DELETE", "/power/desk1"),
        ("POST", "/power/acks"),
        ("GET", "/power/acks/x"),
        ("GET", "/power/a%0Ab/c"),  # a newline: Starlette's `path` parameter stops at it
        ("POST", "/power/x%0A/onn"),
    ],
)
async def test_every_path_under_power_that_names_nothing_is_400(
    udp_catcher: Any, method: str, path: str
) -> None:
    """An unknown sub-path or method under /power/ answers 400 JSON, never 404 or 405."""
    async with (
        power_service(wol_config(udp_catcher.port)) as (base, _),
        httpx.AsyncClient() as client,
    ):
        response = await client.request(method, base + path)
    # A path with a control character never reaches the router: serve's PlainPaths refuses
    # it first (build_app mounts it, and power_service as build_app does).
    expected = CONTROL_IN_PATH if "%0A" in path else NO_ROUTE
    assert response.status_code == 400
    assert response.json() == {"error": expected}
    assert udp_catcher.pending() is None


async def test_a_typo_in_a_power_uri_fails_in_maas_instead_of_passing(udp_catcher: Any) -> None:
    """MAAS 3.6 with a mistyped power_on_uri records a failure, and a mistyped query URI an
    error, where a 404 would have passed as success and as "unknown"."""
    async with power_service(wol_config(udp_catcher.port)) as (base, _):
        typo = MaasWebhookDriver(
            f"{base}/power/desk1/onn", f"{base}/power/desk1/off", f"{base}/power/desk1/", "abc123"
        )
        with pytest.raises(DriverError, match="status code: 400"):
            await typo.agent("on")
        assert typo.attempts == 3 and typo.posts() == 3 * 7
        typo.query_uri = f"{base}/power/desk1/stat"
        assert await typo.monitor() == "error"
    assert udp_catcher.pending() is None


async def test_query_body_is_exactly_the_status(udp_catcher: Any) -> None:
    """The query answers exactly {"status": ...}, so a name like 'running' cannot fool MAAS."""
    config = wol_config(udp_catcher.port)
    config["machines"]["running"] = config["machines"].pop("desk1")
    async with power_service(config) as (base, component):
        component.store.set("running", "off")
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{base}/power/running")
        assert response.text == '{"status": "stopped"}\n'
        assert response.headers["content-type"] == "application/json"
        assert await driver(base, "running").power_query() == "off"


async def test_unknown_state_reads_unknown(udp_catcher: Any) -> None:
    """A machine never switched answers {"status": "unknown"}, which MAAS keeps as unknown."""
    async with power_service(wol_config(udp_catcher.port)) as (base, _):
        assert await driver(base).power_query() == "unknown"


async def test_a_crashing_backend_answers_502_json_not_500(udp_catcher: Any) -> None:
    """An unexpected exception inside a backend becomes a 502 JSON error."""

    class Broken:
        async def query(self, target: object) -> str:
            raise RuntimeError("boom")

        async def aclose(self) -> None:
            return None

    async with power_service(wol_config(udp_catcher.port)) as (base, component):
        component.backends["desk1"] = Broken()  # type: ignore[assignment]
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{base}/power/desk1")
    assert response.status_code == 502
    assert response.json() == {"error": "the query backend failed (RuntimeError)"}


async def test_unreachable_broadcast_address_is_503(udp_catcher: Any) -> None:
    """A broadcast address that cannot be resolved gives 503, not a crash."""
    config = wol_config(udp_catcher.port, broadcast="no-such-host.invalid")
    async with power_service(config) as (base, _), httpx.AsyncClient() as client:
        response = await client.post(f"{base}/power/desk1/on")
    assert response.status_code == 503
    assert "magic packet" in response.json()["error"]


async def test_open_service_warns_and_logs_no_secrets(udp_catcher: Any) -> None:
    """An open service logs a warning; request logs never carry the Authorization value."""
    service = power_service(wol_config(udp_catcher.port))
    with capture_logs() as logs:
        async with service as (base, _), httpx.AsyncClient() as client:
            await client.post(f"{base}/power/desk1/on", headers={"Authorization": "Bearer x1y2"})
    assert any(e["event"] == "power.open" and e["log_level"] == "warning" for e in logs)
    requests = [e for e in logs if e["event"] == "power.request"]
    assert requests and requests[0]["status"] == 200 and requests[0]["machine"] == "desk1"
    assert "x1y2" not in repr(logs)


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "http://127.0.0.1:1", "Sec-Fetch-Site": "cross-site"},
    ],
    ids=["foreign-origin", "null-origin", "sec-fetch-cross-site", "other-port"],
)
@pytest.mark.parametrize("action", ["on", "off", "ack"])
async def test_cross_site_posts_are_refused_with_403(
    udp_catcher: Any, headers: dict[str, str], action: str
) -> None:
    """A browser POST from another site, even with remembered Basic creds, gets 403 JSON."""
    auth = {"Authorization": basic(USER, PASSWORD), **headers}
    async with (
        power_service(wol_config(udp_catcher.port), BOTH) as (base, component),
        httpx.AsyncClient() as client,
    ):
        response = await client.post(f"{base}/power/desk1/{action}", headers=auth)
        assert response.status_code == 403
        assert response.json() == {"error": "cross-site request refused"}
        assert component.store.get("desk1") == "unknown"
    assert udp_catcher.pending() is None


async def test_same_origin_and_maas_style_posts_are_accepted(udp_catcher: Any) -> None:
    """A POST from the service's own page, or without Origin (as MAAS sends), is served."""
    async with power_service(wol_config(udp_catcher.port), BOTH) as (base, _):
        own = {
            "Origin": base,
            "Sec-Fetch-Site": "same-origin",
            "Authorization": basic(USER, PASSWORD),
        }
        async with httpx.AsyncClient() as client:
            response = await client.post(f"{base}/power/desk1/on", headers=own)
        assert response.status_code == 200
        await driver(base, token=TOKEN).perform("on")


@pytest.mark.parametrize(
    ("origin", "host", "fetch_site", "refused"),
    [
        (None, "h:8080", None, False),
        ("http://h:8080", "h:8080", "same-origin", False),
        ("http://H", "h:80", None, False),
        ("https://h", "h", None, False),
        ("https://h:8443", "h:9443", None, True),
        ("http://h:x", "h", None, True),
        ("null", "h", None, True),
        (None, "h", "cross-site", True),
        (None, "h", "same-site", False),
    ],
)
def test_cross_site_compares_origin_with_host(
    origin: str | None, host: str, fetch_site: str | None, refused: bool
) -> None:
    """Origin and Host match on host and port (default ports filled in); cross-site refuses."""
    assert cross_site(origin, host, fetch_site) is refused
