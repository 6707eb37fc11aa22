"""HttpProvisioner against a real local HTTP provisioner: submit, poll, forget, TTL."""

from __future__ import annotations

import dataclasses
import json
import socket
import time
from typing import Any

import pytest
from structlog.testing import capture_logs

from maasflow.common.errors import ConfigError, ProvisionError
from maasflow.daemon.provisioning import (
    HttpProvisioner,
    PollResult,
    ProvisionerTrouble,
    ScriptProvisioner,
    Target,
    provisioner_for,
)

TARGET = Target("abc123", "node1", "node1.maas", "10.0.0.5", "52:54:00:aa:bb:cc", "z1", "p1")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_submit_posts_the_machine_as_json(provisioner: Any) -> None:
    """submit() POSTs {"id","name","ip","mac"} to the configured URL and accepts 202."""
    provisioner.script("POST", "/provision", (202, ""))
    client = HttpProvisioner(provisioner.url, ttl=60)
    await client.submit(TARGET)
    await client.aclose()
    (seen,) = provisioner.requests
    assert (seen.method, seen.path) == ("POST", "/provision")
    assert seen.json() == {"id": "abc123", "name": "node1", "ip": "10.0.0.5", "mac": TARGET.mac}


@pytest.mark.parametrize("status", [200, 201, 204])
async def test_submit_accepts_any_2xx(provisioner: Any, status: int) -> None:
    """Any 2xx answer to the POST counts as accepted."""
    provisioner.script("POST", "/provision", (status, ""))
    await HttpProvisioner(provisioner.url, ttl=60).submit(TARGET)
    assert len(provisioner.requests) == 1


async def test_submit_error_is_a_provision_error(provisioner: Any) -> None:
    """A non-2xx answer to the POST raises ProvisionError with the status and body."""
    provisioner.script("POST", "/provision", (500, "disk full"))
    with pytest.raises(ProvisionError, match=r"HTTP 500 to POST .*disk full"):
        await HttpProvisioner(provisioner.url, ttl=60).submit(TARGET)


async def test_poll_follows_202_202_200(provisioner: Any) -> None:
    """GET <url>/<id> answering 202, 202, 200 reads as running, running, done."""
    provisioner.script("GET", "/provision/abc123", (202, ""), (202, ""), (200, '{"status": 2}'))
    client = HttpProvisioner(provisioner.url, ttl=60)
    results = [await client.poll(TARGET, time.time()) for _ in range(3)]
    assert results == [PollResult.RUNNING, PollResult.RUNNING, PollResult.DONE]


async def test_poll_404_means_missing(provisioner: Any) -> None:
    """A 404 on the job URL means the provisioner has no record: MISSING (caller re-POSTs)."""
    client = HttpProvisioner(provisioner.url, ttl=60)
    assert await client.poll(TARGET, time.time()) is PollResult.MISSING


@pytest.mark.parametrize(
    "body",
    [
        {"status": 3, "message": "ansible failed on node1"},
        {"status": "FAILED", "message": "ansible failed on node1"},
        {"status_name": "failed", "error": "ansible failed on node1"},
    ],
)
async def test_poll_failed_body_is_a_provision_error(provisioner: Any, body: Any) -> None:
    """A 200 whose JSON says the job failed raises ProvisionError with the provisioner's message."""
    provisioner.script("GET", "/provision/abc123", (200, json.dumps(body)))
    with pytest.raises(ProvisionError, match="ansible failed on node1"):
        await HttpProvisioner(provisioner.url, ttl=60).poll(TARGET, time.time())


@pytest.mark.parametrize("text", ["", "not json", "[3]", '{"status": 2}', '{"status": true}'])
async def test_poll_200_without_failure_is_done(provisioner: Any, text: str) -> None:
    """A 200 whose body does not say FAILED (or is not JSON) means done."""
    provisioner.script("GET", "/provision/abc123", (200, text))
    result = await HttpProvisioner(provisioner.url, ttl=60).poll(TARGET, time.time())
    assert result is PollResult.DONE


async def test_poll_server_error_is_trouble_not_a_verdict(provisioner: Any) -> None:
    """Any other status (here 500) says nothing of the job: ProvisionerTrouble, ask again."""
    provisioner.script("GET", "/provision/abc123", (500, "oops"))
    with pytest.raises(ProvisionerTrouble, match="HTTP 500"):
        await HttpProvisioner(provisioner.url, ttl=60).poll(TARGET, time.time())


async def test_trouble_past_the_ttl_is_the_timeout(provisioner: Any) -> None:
    """A provisioner that stays broken cannot keep a job alive past PROVISION_TTL."""
    provisioner.script("GET", "/provision/abc123", (500, "oops"))
    with pytest.raises(ProvisionError, match="timed out after 60s") as caught:
        await HttpProvisioner(provisioner.url, ttl=60).poll(TARGET, time.time() - 61)
    assert not isinstance(caught.value, ProvisionerTrouble)


async def test_a_query_in_the_url_is_kept_and_never_shown(provisioner: Any) -> None:
    """A query in PROVISION_URL follows every job URL, and is hidden in errors."""
    provisioner.script("GET", "/provision/abc123?token=X7", (500, "oops"))
    client = HttpProvisioner(provisioner.url + "?token=X7", ttl=60)
    with pytest.raises(ProvisionerTrouble) as caught:
        await client.poll(TARGET, time.time())
    assert [(r.method, r.path) for r in provisioner.requests] == [
        ("GET", "/provision/abc123?token=X7")
    ]
    assert "X7" not in str(caught.value) and "?***" in str(caught.value)


async def test_poll_past_ttl_times_out_unless_done(provisioner: Any) -> None:
    """Still running past the TTL since started_at is a ProvisionError; a late 200 is still done."""
    provisioner.script("GET", "/provision/abc123", (202, ""), (200, ""))
    client = HttpProvisioner(provisioner.url, ttl=60)
    with pytest.raises(ProvisionError, match="timed out after 60s"):
        await client.poll(TARGET, time.time() - 61)
    assert await client.poll(TARGET, time.time() - 61) is PollResult.DONE


async def test_a_ttl_of_zero_never_times_a_job_out(provisioner: Any) -> None:
    """PROVISION_TTL=0 (maas-flow's "no limit"): a job running or silent for days is not late."""
    provisioner.script("GET", "/provision/abc123", (202, ""), (500, "oops"))
    client = HttpProvisioner(provisioner.url, ttl=0)
    days_ago = time.time() - 9 * 86400
    assert await client.poll(TARGET, days_ago) is PollResult.RUNNING
    with pytest.raises(ProvisionerTrouble):
        await client.poll(TARGET, days_ago)
    assert isinstance(provisioner_for(provisioner.url, 0), HttpProvisioner)


async def test_system_id_is_quoted_into_one_path_segment(provisioner: Any) -> None:
    """An odd system_id is URL-quoted, and a trailing slash in the URL does not double."""
    odd = Target("a/b c?d#e%", "n", "", "10.0.0.5", "", "", "")
    client = HttpProvisioner(provisioner.url + "/", ttl=60)
    await client.poll(odd, time.time())
    await client.forget(odd.system_id)
    assert [(r.method, r.path) for r in provisioner.requests] == [
        ("GET", "/provision/a%2Fb%20c%3Fd%23e%25"),
        ("DELETE", "/provision/a%2Fb%20c%3Fd%23e%25"),
    ]


async def test_forget_deletes_and_tolerates_404(provisioner: Any) -> None:
    """forget() sends DELETE <url>/<id>; a 404 is fine and logs nothing."""
    with capture_logs() as logs:
        await HttpProvisioner(provisioner.url, ttl=60).forget("abc123")
    assert [(r.method, r.path) for r in provisioner.requests] == [("DELETE", "/provision/abc123")]
    assert logs == []


async def test_forget_logs_errors_instead_of_raising(provisioner: Any) -> None:
    """A failed DELETE (500 or unreachable) is logged as a warning, never raised."""
    provisioner.script("DELETE", "/provision/abc123", (500, "nope"))
    unreachable = HttpProvisioner(f"http://127.0.0.1:{closed_port()}/p", ttl=60)
    with capture_logs() as logs:
        await HttpProvisioner(provisioner.url, ttl=60).forget("abc123")
        await unreachable.forget("abc123")
    assert [e["event"] for e in logs] == ["provision_forget_failed"] * 2
    assert "HTTP 500" in logs[0]["error"]


async def test_unreachable_provisioner_is_a_provision_error() -> None:
    """A connection error on submit or poll raises ProvisionError."""
    client = HttpProvisioner(f"http://127.0.0.1:{closed_port()}/p", ttl=60)
    with pytest.raises(ProvisionError, match="ConnectError"):
        await client.submit(TARGET)
    with pytest.raises(ProvisionError, match="ConnectError"):
        await client.poll(TARGET, time.time())
    await client.aclose()


async def test_url_credentials_never_appear_in_errors(provisioner: Any) -> None:
    """A password in PROVISION_URL is sent as Basic auth but redacted from errors and repr."""
    provisioner.script("POST", "/provision", (500, ""))
    url = provisioner.url.replace("http://", "http://bot:s3cr3t@")
    client = HttpProvisioner(url, ttl=60)
    with pytest.raises(ProvisionError) as caught:
        await client.submit(TARGET)
    assert "s3cr3t" not in str(caught.value) and "s3cr3t" not in repr(client)
    assert provisioner.requests[0].headers["Authorization"].startswith("Basic ")


def test_provisioner_for_picks_the_kind(tmp_path: Any) -> None:
    """An empty URL disables provisioning; a path is a script; http(s) is the HTTP client."""
    assert provisioner_for("", 60) is None
    assert provisioner_for("  ", 60) is None
    assert isinstance(provisioner_for(str(tmp_path / "p.sh"), 60), ScriptProvisioner)
    assert isinstance(provisioner_for("https://prov.example/p", 60), HttpProvisioner)
    assert isinstance(provisioner_for("HTTP://prov.example/p", 60), HttpProvisioner)


@pytest.mark.parametrize(
    ("url", "ttl", "message"),
    [
        ("ftp://host/x", 60, "unsupported scheme 'ftp'"),
        ("http://", 60, "PROVISION_URL"),
        ("/bin/true", -1, "PROVISION_TTL"),
    ],
)
def test_provisioner_for_rejects_bad_settings(url: str, ttl: float, message: str) -> None:
    """A bad scheme, a URL without host or a negative TTL is a ConfigError naming the input."""
    with pytest.raises(ConfigError, match=message):
        provisioner_for(url, ttl)


async def test_submit_sends_the_deploy_id_when_it_has_one(provisioner: Any) -> None:
    """With a deploy id the POST body carries it, so the provisioner can tell a repeat."""
    provisioner.script("POST", "/provision", (202, ""))
    client = HttpProvisioner(provisioner.url, ttl=60)
    await client.submit(TARGET, deploy_id="0123abcd")
    await client.aclose()
    (seen,) = provisioner.requests
    assert seen.json()["deploy_id"] == "0123abcd"


async def test_submit_sends_a_rules_role_and_no_role_without_one(provisioner: Any) -> None:
    """A targets rule's provisioning role travels as `role` in the POST; none, no key."""
    provisioner.script("POST", "/provision", (202, ""))
    provisioner.script("POST", "/provision", (202, ""))
    client = HttpProvisioner(provisioner.url, ttl=60)
    await client.submit(dataclasses.replace(TARGET, role="worker"))
    await client.submit(TARGET)
    await client.aclose()
    with_role, without = provisioner.requests
    assert with_role.json()["role"] == "worker"
    assert "role" not in without.json()
