"""HttpProvisioner's Bearer token: sent on every request, never shown in errors, repr or logs."""

from __future__ import annotations

import time
from typing import Any

import pytest
from structlog.testing import capture_logs

from maasflow.common.errors import ProvisionError
from maasflow.daemon.provisioning import HttpProvisioner, ScriptProvisioner, Target, provisioner_for

TARGET = Target("abc123", "node1", "node1.maas", "10.0.0.5", "52:54:00:aa:bb:cc", "z1", "p1")
TOKEN = "tok-9f8e7d6c5b4a"


async def test_every_request_carries_the_bearer_token(provisioner: Any) -> None:
    """POST, GET and DELETE each send Authorization: Bearer <token>."""
    provisioner.script("POST", "/provision", (202, ""))
    provisioner.script("GET", "/provision/abc123", (202, ""))
    client = HttpProvisioner(provisioner.url, ttl=60, token=TOKEN)
    await client.submit(TARGET)
    await client.poll(TARGET, time.time())
    await client.forget("abc123")
    await client.aclose()
    assert [r.method for r in provisioner.requests] == ["POST", "GET", "DELETE"]
    assert {r.headers.get("Authorization") for r in provisioner.requests} == {f"Bearer {TOKEN}"}


async def test_no_token_sends_no_authorization(provisioner: Any) -> None:
    """Without a token no Authorization header is sent."""
    provisioner.script("POST", "/provision", (202, ""))
    await HttpProvisioner(provisioner.url, ttl=60).submit(TARGET)
    assert "Authorization" not in provisioner.requests[0].headers


async def test_an_echoed_token_is_scrubbed_from_errors_and_logs(provisioner: Any) -> None:
    """A provisioner echoing the token in a 401 or a failure body never gets it into messages."""
    provisioner.script("POST", "/provision", (401, f'{{"error": "bad token {TOKEN}"}}'))
    provisioner.script("GET", "/provision/abc123", (200, f'{{"status": 3, "message": "{TOKEN}"}}'))
    provisioner.script("DELETE", "/provision/abc123", (500, TOKEN))
    client = HttpProvisioner(provisioner.url, ttl=60, token=TOKEN)
    with pytest.raises(ProvisionError) as refused:
        await client.submit(TARGET)
    with pytest.raises(ProvisionError) as failed:
        await client.poll(TARGET, time.time())
    with capture_logs() as logs:
        await client.forget("abc123")
    await client.aclose()
    assert "401" in str(refused.value) and "PROVISION_TOKEN" in str(refused.value)
    for text in (str(refused.value), str(failed.value), str(logs), repr(client)):
        assert TOKEN not in text


def test_provisioner_for_passes_the_token_to_http_only(tmp_path: Any) -> None:
    """provisioner_for hands the token to an HTTP provisioner; a script provisioner has none."""
    http = provisioner_for("http://127.0.0.1:1/p", 60, token=TOKEN)
    assert isinstance(http, HttpProvisioner) and http._headers == {
        "Authorization": f"Bearer {TOKEN}"
    }
    script = provisioner_for(str(tmp_path / "p.sh"), 60, token=TOKEN)
    assert isinstance(script, ScriptProvisioner) and TOKEN not in repr(vars(script))
