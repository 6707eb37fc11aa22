"""A POST carrying a `deploy_id` is idempotent: one run per deploy, a redeploy runs again.

The daemon sends the id of the deploy it provisions (new at each redeploy); a POST repeated
for that deploy (its answer was lost, a retry) must answer the record it made, never start
a second run of a job that completed. Clients that send no id keep the old rules. Each test
runs on both record stores: one service on SQLite, and a replica on PostgreSQL, where the
rule is one SQL statement.
"""

from __future__ import annotations

from typing import Any

from maasflow.serve import ServiceConfig

RUNNING, COMPLETE, FAILED = 1, 2, 3


async def test_a_repeated_post_for_a_completed_deploy_answers_its_record_and_runs_nothing(
    kit: Any, records_db: dict[str, Any]
) -> None:
    """The same deploy POSTed again after it completed gets 200 and the record; no new run."""
    script = kit.gated_script("once.sh")
    kit.release("once.sh")
    async with kit.running(ServiceConfig(script=script, **records_db)) as client:
        first = await client.post("/provision/", json=kit.machine(deploy_id="deploy-1"))
        done = await kit.wait_record(client, "abc123", COMPLETE)
        again = await client.post("/provision/", json=kit.machine(deploy_id="deploy-1"))
    assert first.status_code == 202
    assert again.status_code == 200 and again.json() == done
    assert done["request"]["deploy_id"] == "deploy-1"
    assert len(kit.runs("once.sh")) == 1


async def test_a_repeated_post_while_the_deploy_runs_starts_nothing(
    kit: Any, records_db: dict[str, Any]
) -> None:
    """The same deploy POSTed again while its job runs gets 202 and the running record."""
    script = kit.gated_script("held.sh")
    async with kit.running(ServiceConfig(script=script, **records_db)) as client:
        await client.post("/provision/", json=kit.machine(deploy_id="deploy-1"))
        await kit.wait_until(lambda: kit.runs("held.sh"), "the job to start")
        again = await client.post("/provision/", json=kit.machine(deploy_id="deploy-1"))
        kit.release("held.sh")
        await kit.wait_record(client, "abc123", COMPLETE)
    assert again.status_code == 202 and again.json()["status"] == RUNNING
    assert len(kit.runs("held.sh")) == 1


async def test_a_redeploy_is_provisioned_again(kit: Any, records_db: dict[str, Any]) -> None:
    """A POST naming another deploy of the same machine starts a new run."""
    script = kit.gated_script("twice.sh")
    kit.release("twice.sh")
    async with kit.running(ServiceConfig(script=script, **records_db)) as client:
        await client.post("/provision/", json=kit.machine(deploy_id="deploy-1"))
        await kit.wait_record(client, "abc123", COMPLETE)
        again = await client.post("/provision/", json=kit.machine(deploy_id="deploy-2"))
        await kit.wait_until(lambda: len(kit.runs("twice.sh")) == 2, "the second run")
        done = await kit.wait_record(client, "abc123", COMPLETE)
    assert again.status_code == 202
    assert done["request"]["deploy_id"] == "deploy-2"


async def test_a_failed_deploy_posted_again_is_retried(
    kit: Any, records_db: dict[str, Any]
) -> None:
    """The same deploy POSTed after its job failed runs again: that is the daemon's retry."""
    script = kit.script("flaky.sh", f"echo run >> {kit.tmp}/flaky.runs\nexit 1\n")
    async with kit.running(ServiceConfig(script=script, **records_db)) as client:
        await client.post("/provision/", json=kit.machine(deploy_id="deploy-1"))
        await kit.wait_record(client, "abc123", FAILED)
        again = await client.post("/provision/", json=kit.machine(deploy_id="deploy-1"))
        await kit.wait_until(
            lambda: (kit.tmp / "flaky.runs").read_text().count("run") == 2, "the retry"
        )
    assert again.status_code == 202


async def test_a_request_without_a_deploy_id_shows_none(
    kit: Any, records_db: dict[str, Any]
) -> None:
    """An opencord-style body (no deploy_id) keeps its record's request free of one."""
    script = kit.gated_script("plain.sh")
    kit.release("plain.sh")
    async with kit.running(ServiceConfig(script=script, **records_db)) as client:
        posted = await client.post("/provision/", json=kit.machine())
        done = await kit.wait_record(client, "abc123", COMPLETE)
    assert posted.status_code == 202 and "deploy_id" not in done["request"]
