"""The acknowledgement page with power auth on: its own Basic credentials, for a browser."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from maasflow.common.errors import ConfigError
from maasflow.serve.power_config import PowerAuth, load_power_auth
from tests.service_power.helpers import TOKEN, USER, power_service, wol_config
from tests.service_power.maas_replay import MaasWebhookDriver

ACK_PASSWORD = "ack-pa:ss"
TOKEN_AND_PAGE = PowerAuth(token=TOKEN, ack_user="ack", ack_password=ACK_PASSWORD)


def basic(user: str, password: str) -> dict[str, str]:
    pair = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


PAGE = basic("ack", ACK_PASSWORD)


def maas(base: str) -> MaasWebhookDriver:
    """MAAS 3.6 with power_token set, as `maasflow power-config` tells it."""
    uri = f"{base}/power/desk1"
    return MaasWebhookDriver(f"{uri}/on", f"{uri}/off", uri, "abc123", token=TOKEN)


async def pending(component: Any) -> None:
    while not component.acks.is_pending("desk1"):
        await asyncio.sleep(0.005)


async def test_a_person_acks_in_a_browser_while_maas_uses_a_token(udp_catcher: Any) -> None:
    """With token-only power auth, the page asks for Basic, takes the page's credentials, and
    its same-origin form completes MAAS's power-off."""
    async with power_service(wol_config(udp_catcher.port), TOKEN_AND_PAGE) as (base, component):
        component.store.set("desk1", "on")
        off = asyncio.create_task(maas(base).agent("off"))
        await pending(component)
        async with httpx.AsyncClient(base_url=base) as browser:
            challenge = await browser.get("/power/acks")
            page = await browser.get("/power/acks", headers=PAGE)
            form = await browser.post(
                "/power/desk1/ack", data={"ack": "1"}, headers={**PAGE, "Origin": base}
            )
        assert challenge.status_code == 401
        assert challenge.headers.get_list("www-authenticate") == [
            'Basic realm="maasflow-power-acks", charset="UTF-8"'
        ]
        assert page.status_code == 200 and 'action="/power/desk1/ack"' in page.text
        assert form.status_code == 303
        assert await off == "off"


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/power/desk1/on"), ("POST", "/power/desk1/off"), ("GET", "/power/desk1")],
)
async def test_the_page_credentials_switch_and_read_nothing(
    udp_catcher: Any, method: str, path: str
) -> None:
    """The page's own user and password get 401 on the routes MAAS uses."""
    async with (
        power_service(wol_config(udp_catcher.port), TOKEN_AND_PAGE) as (base, component),
        httpx.AsyncClient(base_url=base) as client,
    ):
        response = await client.request(method, path, headers=PAGE)
        assert response.status_code == 401
        assert component.store.get("desk1") == "unknown"
    assert udp_catcher.pending() is None


async def test_a_cross_site_ack_with_the_page_credentials_is_refused(udp_catcher: Any) -> None:
    """A browser that remembers the page's credentials cannot be made to ack from another site."""
    async with power_service(wol_config(udp_catcher.port), TOKEN_AND_PAGE) as (base, component):
        component.store.set("desk1", "on")
        off = asyncio.create_task(maas(base).power_off())
        await pending(component)
        async with httpx.AsyncClient(base_url=base) as browser:
            evil = {**PAGE, "Origin": "http://evil.example"}
            response = await browser.post("/power/desk1/ack", data={"ack": "1"}, headers=evil)
        assert response.status_code == 403
        assert component.acks.is_pending("desk1")
        component.acks.ack("desk1")
        await off


async def test_token_only_without_page_credentials_warns_and_says_what_to_set(
    udp_catcher: Any,
) -> None:
    """Token-only auth with WoL machines logs a warning at start, and the page's 401 names
    --power-ack-pass-file."""
    with capture_logs() as logs:
        async with (
            power_service(wol_config(udp_catcher.port), PowerAuth(token=TOKEN)) as (base, _),
            httpx.AsyncClient() as client,
        ):
            response = await client.get(f"{base}/power/acks")
    assert response.status_code == 401
    assert "--power-ack-pass-file" in response.json()["error"]
    assert [e["log_level"] for e in logs if e["event"] == "power.acks_unusable"] == ["warning"]


def test_page_credentials_load_from_a_file_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page's password comes from --power-ack-pass-file or MAASFLOW_POWER_ACK_PASS, its
    user defaults to `ack`, and neither shows in the repr."""
    secret = tmp_path / "ack.pass"
    secret.write_text("from-file\n")
    auth = load_power_auth(None, None, None, ack_pass_file=secret)
    assert (auth.ack_user, auth.ack_password) == ("ack", "from-file")
    monkeypatch.setenv("MAASFLOW_POWER_ACK_PASS", "from-env")
    auth = load_power_auth(None, None, None, ack_user="person")
    assert (auth.ack_user, auth.ack_password) == ("person", "from-env")
    assert "from-env" not in repr(auth) and auth.browser_can_ack


@pytest.mark.parametrize(
    ("ack_user", "message"),
    [("person", "needs a password"), ("a:b", "without ':'"), (USER, "differs from --power-user")],
)
def test_bad_page_credentials_are_one_line_config_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ack_user: str, message: str
) -> None:
    """A page user without a password, with a colon, or equal to the power user is refused."""
    monkeypatch.delenv("MAASFLOW_POWER_ACK_PASS", raising=False)
    monkeypatch.setenv("MAASFLOW_POWER_PASS", "power-pass")
    secret = tmp_path / "ack.pass"
    secret.write_text("pw\n")
    pass_file = None if message == "needs a password" else secret
    with pytest.raises(ConfigError, match=message) as caught:
        load_power_auth(None, USER, None, ack_user=ack_user, ack_pass_file=pass_file)
    assert "\n" not in str(caught.value)
