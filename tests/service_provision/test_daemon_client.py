"""The daemon's POST-plus-poll client (`maasflow.daemon.provisioning.HttpProvisioner`) provisions
through `maasflow serve`: the two halves agree on the contract."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from maasflow.common.errors import ProvisionError
from maasflow.daemon.provisioning import HttpProvisioner, PollResult, Target
from maasflow.serve import ServiceConfig, serve_service

TARGET = Target(
    system_id="4y3h7n",
    hostname="node-7",
    fqdn="node-7.maas",
    ip="10.0.0.7",
    mac="52:54:00:12:34:56",
    zone="default",
    pool="default",
)


async def poll_until_settled(provisioner: HttpProvisioner) -> PollResult:
    """Poll like the daemon does, pass after pass, until the job is no longer running."""
    for _ in range(1000):
        result = await provisioner.poll(TARGET, started_at=time.time())
        if result is not PollResult.RUNNING:
            return result
        await asyncio.sleep(0.02)
    pytest.fail("the job never settled")


async def test_daemon_client_provisions_through_the_service(kit: Any) -> None:
    """POST {id,name,ip,mac}, then GET /provision/<id> until 200: the machine is provisioned."""
    script = kit.gated_script("provision.sh")
    kit.release("provision.sh")
    async with serve_service(ServiceConfig(script=script)) as svc:
        provisioner = HttpProvisioner(f"{svc.url}/provision/", ttl=3600)
        try:
            await provisioner.submit(TARGET)
            result = await poll_until_settled(provisioner)
            await provisioner.forget(TARGET.system_id)
            async with httpx.AsyncClient(base_url=svc.url) as client:
                gone = (await client.get(f"/provision/{TARGET.system_id}")).status_code
        finally:
            await provisioner.aclose()
    assert result is PollResult.DONE
    assert kit.runs("provision.sh") == ["4y3h7n node-7 10.0.0.7 52:54:00:12:34:56 compute"]
    assert gone == 404


async def test_daemon_client_sees_a_failed_job_as_a_provision_error(kit: Any) -> None:
    """A failed job's 200 with status 3 reaches the daemon as a ProvisionError with the message."""
    script = kit.script("fail.sh", "echo 'no disk' >&2\nexit 4\n")
    async with serve_service(ServiceConfig(script=script)) as svc:
        provisioner = HttpProvisioner(f"{svc.url}/provision", ttl=3600)
        try:
            await provisioner.submit(TARGET)
            with pytest.raises(ProvisionError, match="exit status 4: no disk"):
                await poll_until_settled(provisioner)
        finally:
            await provisioner.aclose()


async def test_daemon_client_sees_an_unknown_job_as_missing(kit: Any) -> None:
    """A job the service does not know reads as MISSING, so the daemon POSTs again."""
    async with serve_service(ServiceConfig()) as svc:
        provisioner = HttpProvisioner(f"{svc.url}/provision/", ttl=3600)
        try:
            result = await provisioner.poll(TARGET, started_at=time.time())
        finally:
            await provisioner.aclose()
    assert result is PollResult.MISSING
