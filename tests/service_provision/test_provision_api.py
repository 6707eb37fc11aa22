"""The provisioning API's contract over real HTTP on 127.0.0.1, with real scripts."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import httpx
import pytest

from maasflow.serve import ServiceConfig

RUNNING, COMPLETE, FAILED = 1, 2, 3


async def test_post_then_202_while_running_then_200_complete(kit: Any) -> None:
    """A POST answers 202, GET answers 202 while the job runs and 200 once it completed."""
    script = kit.gated_script("ok.sh")
    async with kit.running(ServiceConfig(script=script)) as client:
        posted = await client.post("/provision/", json=kit.machine())
        assert posted.status_code == 202
        assert posted.json()["request"]["id"] == "abc123"
        running = await kit.wait_record(client, "abc123", RUNNING)
        assert (await client.get("/provision/abc123")).status_code == 202
        kit.release("ok.sh")
        done = await kit.wait_record(client, "abc123", COMPLETE)
        final = await client.get("/provision/abc123")
    assert final.status_code == 200
    assert done["status_name"] == "complete" and done["message"] == "completed"
    assert running["worker"] is not None and isinstance(done["timestamp"], int)
    assert done["role"] == "compute"


async def test_script_gets_id_name_ip_mac_role_as_argv(kit: Any) -> None:
    """The script is run as `<script> <id> <name> <ip> <mac> <role>`."""
    script = kit.gated_script("argv.sh")
    kit.release("argv.sh")
    async with kit.running(ServiceConfig(script=script)) as client:
        body = kit.machine(mac="52-54-00-AA-BB-CC", ip="fe80:0::1")
        await client.post("/provision/", json=body)
        await kit.wait_record(client, "abc123", COMPLETE)
    assert kit.runs("argv.sh") == ["abc123 node-1 fe80::1 52:54:00:aa:bb:cc compute"]


async def test_hostile_name_is_passed_literally_never_to_a_shell(kit: Any) -> None:
    """A name full of shell syntax reaches the script as one literal argument."""
    out = kit.tmp / "name.txt"
    script = kit.script("lit.sh", f'printf %s "$2" > {out}\n')
    hostile = "a;rm -rf x $(touch pwned) `id` | cat"
    async with kit.running(ServiceConfig(script=script)) as client:
        await client.post("/provision/", json=kit.machine(name=hostile))
        await kit.wait_record(client, "abc123", COMPLETE)
    assert out.read_text() == hostile
    assert not (kit.tmp / "pwned").exists() and not any(kit.tmp.glob("x"))


async def test_failing_script_gives_status_3_with_message(kit: Any) -> None:
    """A script exiting non-zero makes the record failed, with the exit status and last line."""
    script = kit.script("bad.sh", "echo starting\necho 'disk not found' >&2\nexit 3\n")
    async with kit.running(ServiceConfig(script=script)) as client:
        await client.post("/provision/", json=kit.machine())
        failed = await kit.wait_record(client, "abc123", FAILED)
        final = await client.get("/provision/abc123")
    assert final.status_code == 200
    assert failed["status_name"] == "failed"
    assert failed["message"] == "exit status 3: disk not found"


async def test_job_past_its_timeout_is_killed_and_failed(kit: Any) -> None:
    """A job running past --job-timeout is killed and recorded as timed out."""
    script = kit.gated_script("slow.sh")
    config = ServiceConfig(script=script, job_timeout=0.3)
    async with kit.running(config) as client:
        await client.post("/provision/", json=kit.machine())
        failed = await kit.wait_record(client, "abc123", FAILED)
    assert failed["message"] == "timed out after 0.3 s"
    pid = int((kit.tmp / "slow.sh.pid").read_text())
    await kit.wait_until(lambda: not kit.alive(pid), "the timed-out script to be gone")


async def test_duplicate_post_while_running_starts_no_second_run(kit: Any) -> None:
    """A POST for an id that is running answers 202 and runs nothing more."""
    script = kit.gated_script("once.sh")
    async with kit.running(ServiceConfig(script=script)) as client:
        await client.post("/provision/", json=kit.machine())
        await kit.wait_record(client, "abc123", RUNNING)
        again = await client.post("/provision/", json=kit.machine(name="other"))
        kit.release("once.sh")
        await kit.wait_record(client, "abc123", COMPLETE)
    assert again.status_code == 202
    assert again.json()["request"]["name"] == "node-1"
    assert len(kit.runs("once.sh")) == 1


async def test_duplicate_post_while_pending_starts_no_second_run(kit: Any) -> None:
    """A POST for an id still queued answers 202 with the pending record and queues nothing."""
    script = kit.gated_script("q.sh")
    async with kit.running(ServiceConfig(script=script, workers=1)) as client:
        await client.post("/provision/", json=kit.machine("first"))
        await kit.wait_record(client, "first", RUNNING)
        await client.post("/provision/", json=kit.machine("second"))
        again = await client.post("/provision/", json=kit.machine("second"))
        kit.release("q.sh")
        await kit.wait_record(client, "second", COMPLETE)
    assert again.status_code == 202 and again.json()["status"] == 0
    assert [line.split()[0] for line in kit.runs("q.sh")] == ["first", "second"]


async def test_post_for_finished_id_starts_a_new_run(kit: Any) -> None:
    """A POST for an id whose job finished starts a new run whose record replaces the old."""
    script = kit.gated_script("twice.sh")
    kit.release("twice.sh")
    async with kit.running(ServiceConfig(script=script)) as client:
        await client.post("/provision/", json=kit.machine())
        await kit.wait_record(client, "abc123", COMPLETE)
        again = await client.post("/provision/", json=kit.machine(name="renamed"))
        await kit.wait_until(lambda: len(kit.runs("twice.sh")) == 2, "the second run")
        done = await kit.wait_record(client, "abc123", COMPLETE)
        listing = (await client.get("/provision/")).json()
    assert again.status_code == 202 and again.json()["status"] == 0
    assert done["request"]["name"] == "renamed"
    assert [record["request"]["id"] for record in listing] == ["abc123"]


async def test_queue_limit_answers_429_with_retry_after(kit: Any) -> None:
    """Past --queue-limit pending jobs a POST answers 429 with Retry-After, and nothing runs."""
    script = kit.gated_script("busy.sh")
    config = ServiceConfig(script=script, workers=1, queue_limit=1)
    async with kit.running(config) as client:
        await client.post("/provision/", json=kit.machine("a"))
        await kit.wait_record(client, "a", RUNNING)
        queued = await client.post("/provision/", json=kit.machine("b"))
        refused = await client.post("/provision/", json=kit.machine("c"))
        missing = await client.get("/provision/c")
        health = (await client.get("/healthz")).json()
        kit.release("busy.sh")
    assert queued.status_code == 202
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
    assert "error" in refused.json() and missing.status_code == 404
    assert health == {"status": "ok", "workers": 1, "queue": 1, "running": 1}


async def test_list_returns_every_record(kit: Any) -> None:
    """GET /provision/ lists every record, finished or not."""
    script = kit.script("fast.sh", "exit 0\n")
    async with kit.running(ServiceConfig(script=script)) as client:
        for job_id in ("m1", "m2", "m3"):
            await client.post("/provision/", json=kit.machine(job_id))
        for job_id in ("m1", "m2", "m3"):
            await kit.wait_record(client, job_id, COMPLETE)
        listing = await client.get("/provision/")
    assert listing.status_code == 200
    assert sorted(record["request"]["id"] for record in listing.json()) == ["m1", "m2", "m3"]


async def test_log_returns_the_output_and_keeps_only_its_tail(kit: Any) -> None:
    """GET /provision/<id>/log is the job's output as text, bounded to its last 64 KiB."""
    script = kit.script("loud.sh", "head -c 200000 /dev/zero | tr '\\0' x\necho\necho THE END\n")
    async with kit.running(ServiceConfig(script=script)) as client:
        await client.post("/provision/", json=kit.machine())
        await kit.wait_record(client, "abc123", COMPLETE)
        log = await client.get("/provision/abc123/log")
        unknown = await client.get("/provision/nope/log")
    assert log.status_code == 200 and log.headers["content-type"].startswith("text/plain")
    assert log.text.endswith("THE END\n") and len(log.text) == 64 * 1024
    assert unknown.status_code == 404


async def test_log_of_a_running_job_shows_output_so_far(kit: Any) -> None:
    """The log of a running job already holds what it printed before waiting."""
    script = kit.gated_script("chatty.sh")
    kit.script("wrapper.sh", f'echo hello from $1\nexec {script} "$@"\n')
    async with kit.running(ServiceConfig(script=kit.tmp / "wrapper.sh")) as client:
        await client.post("/provision/", json=kit.machine())
        await kit.wait_record(client, "abc123", RUNNING)
        await kit.wait_until(lambda: kit.runs("chatty.sh"), "the script to start")
        log = await client.get("/provision/abc123/log")
        while not log.text:  # the output travels through the run's supervisor: a moment
            await asyncio.sleep(0.02)
            log = await client.get("/provision/abc123/log")
        kit.release("chatty.sh")
    assert log.text == "hello from abc123\n"


async def test_delete_of_running_job_kills_its_process_group(kit: Any) -> None:
    """DELETE stops a running job, its child processes included, and forgets the record."""
    child = kit.tmp / "child.pid"
    script = kit.script("tree.sh", f"sleep 300 &\necho $! > {child}\nwait\n")
    async with kit.running(ServiceConfig(script=script)) as client:
        await client.post("/provision/", json=kit.machine())
        await kit.wait_until(lambda: child.exists() and child.read_text().strip(), "the child")
        pid = int(child.read_text())
        assert kit.alive(pid)
        deleted = await client.delete("/provision/abc123")
        after = await client.get("/provision/abc123")
    assert deleted.status_code == 200 and deleted.json()["message"] == "deleted"
    assert after.status_code == 404
    await kit.wait_until(lambda: not kit.alive(pid), "the child process to be gone")


async def test_background_children_are_killed_when_the_script_exits(kit: Any) -> None:
    """A child the script left running in the background is killed once the script exits 0."""
    child = kit.tmp / "child.pid"
    script = kit.script("bg.sh", f"sleep 300 >/dev/null 2>&1 &\necho $! > {child}\nexit 0\n")
    async with kit.running(ServiceConfig(script=script)) as client:
        await client.post("/provision/", json=kit.machine())
        done = await kit.wait_record(client, "abc123", COMPLETE)
    pid = int(child.read_text())
    try:
        await kit.wait_until(lambda: not kit.alive(pid), "the background child to be gone")
    finally:
        if kit.alive(pid):
            os.kill(pid, signal.SIGKILL)
    assert done["message"] == "completed"


async def test_a_background_child_holding_the_output_does_not_hold_the_job(kit: Any) -> None:
    """A script that exits 0 leaving a child on its output completes, its output kept."""
    child = kit.tmp / "child.pid"
    script = kit.script("bg.sh", f"sleep 300 &\necho $! > {child}\necho provisioned\nexit 0\n")
    async with kit.running(ServiceConfig(script=script)) as client:
        await client.post("/provision/", json=kit.machine())
        done = await kit.wait_record(client, "abc123", COMPLETE)
        log = await client.get("/provision/abc123/log")
    assert done["message"] == "completed" and log.text == "provisioned\n"
    await kit.wait_until(lambda: not kit.alive(int(child.read_text())), "the child to be gone")


async def test_name_is_stripped_before_it_reaches_the_script(kit: Any) -> None:
    """Surrounding whitespace of `name` is dropped: the script and the record get it bare."""
    script = kit.gated_script("strip.sh")
    kit.release("strip.sh")
    async with kit.running(ServiceConfig(script=script)) as client:
        posted = await client.post("/provision/", json=kit.machine(name="  node-1  "))
        await kit.wait_record(client, "abc123", COMPLETE)
    assert posted.json()["request"]["name"] == "node-1"
    assert kit.runs("strip.sh") == ["abc123 node-1 10.0.0.7 52:54:00:aa:bb:cc compute"]


async def test_delete_of_pending_job_means_it_never_runs(kit: Any) -> None:
    """DELETE of a queued job removes it before any worker starts it."""
    script = kit.gated_script("one.sh")
    async with kit.running(ServiceConfig(script=script, workers=1)) as client:
        await client.post("/provision/", json=kit.machine("first"))
        await kit.wait_record(client, "first", RUNNING)
        await client.post("/provision/", json=kit.machine("second"))
        deleted = await client.delete("/provision/second")
        kit.release("one.sh")
        await kit.wait_record(client, "first", COMPLETE)
        after = await client.get("/provision/second")
    assert deleted.status_code == 200 and after.status_code == 404
    assert [line.split()[0] for line in kit.runs("one.sh")] == ["first"]


async def test_unknown_ids_answer_404(kit: Any) -> None:
    """GET and DELETE of an id with no record answer 404 with a JSON error."""
    async with kit.running(ServiceConfig()) as client:
        got = await client.get("/provision/ghost")
        deleted = await client.delete("/provision/ghost")
    assert got.status_code == deleted.status_code == 404
    assert "error" in got.json() and "error" in deleted.json()


async def test_post_without_trailing_slash_is_accepted(kit: Any) -> None:
    """POST /provision (no slash) is the same as POST /provision/, not a redirect."""
    script = kit.script("s.sh", "exit 0\n")
    async with kit.running(ServiceConfig(script=script)) as client:
        posted = await client.post("/provision", json=kit.machine())
        await kit.wait_record(client, "abc123", COMPLETE)
    assert posted.status_code == 202


async def test_no_script_configured_fails_the_job_with_a_reason(kit: Any) -> None:
    """Without any script for the role the job fails and says why."""
    async with kit.running(ServiceConfig()) as client:
        await client.post("/provision/", json=kit.machine())
        failed = await kit.wait_record(client, "abc123", FAILED)
    assert failed["message"] == "no script configured for role 'compute'"


async def test_missing_mac_is_allowed_and_passed_empty(kit: Any) -> None:
    """A request without a MAC (the daemon has none for some machines) runs with mac ''."""
    script = kit.gated_script("nomac.sh")
    kit.release("nomac.sh")
    body = kit.machine()
    del body["mac"]
    async with kit.running(ServiceConfig(script=script)) as client:
        posted = await client.post("/provision/", json=body)
        await kit.wait_record(client, "abc123", COMPLETE)
    assert posted.status_code == 202
    assert kit.runs("nomac.sh") == ["abc123 node-1 10.0.0.7  compute"]


BAD_BODIES: list[tuple[str, Any]] = [
    ("missing id", {"name": "n", "ip": "10.0.0.1", "mac": ""}),
    ("empty id", {"id": "", "name": "n", "ip": "10.0.0.1"}),
    ("missing name", {"id": "a", "ip": "10.0.0.1"}),
    ("empty name", {"id": "a", "name": "", "ip": "10.0.0.1"}),
    ("missing ip", {"id": "a", "name": "n"}),
    ("empty ip", {"id": "a", "name": "n", "ip": ""}),
    ("malformed ip", {"id": "a", "name": "n", "ip": "10.0.0.256"}),
    ("hostname as ip", {"id": "a", "name": "n", "ip": "example.com"}),
    ("malformed mac", {"id": "a", "name": "n", "ip": "10.0.0.1", "mac": "52:54:00:aa:bb"}),
    ("mixed mac", {"id": "a", "name": "n", "ip": "10.0.0.1", "mac": "52:54-00:aa:bb:cc"}),
    ("id of wrong type", {"id": 7, "name": "n", "ip": "10.0.0.1"}),
    ("name of wrong type", {"id": "a", "name": ["n"], "ip": "10.0.0.1"}),
    ("role of wrong type", {"id": "a", "name": "n", "ip": "10.0.0.1", "role": 3}),
    ("id with a slash", {"id": "a/b", "name": "n", "ip": "10.0.0.1"}),
    ("id with leading dash", {"id": "-rf", "name": "n", "ip": "10.0.0.1"}),
    ("whitespace-only name", {"id": "a", "name": "   ", "ip": "10.0.0.1"}),
    ("name with leading dash", {"id": "a", "name": "-rf", "ip": "10.0.0.1"}),
    ("padded name with leading dash", {"id": "a", "name": "  --help", "ip": "10.0.0.1"}),
    ("name with newline", {"id": "a", "name": "n\nx", "ip": "10.0.0.1"}),
    ("name with NUL", {"id": "a", "name": "n\u0000", "ip": "10.0.0.1"}),
    ("role with path", {"id": "a", "name": "n", "ip": "10.0.0.1", "role": "../x"}),
    ("script as a path", {"id": "a", "name": "n", "ip": "10.0.0.1", "script": "/bin/sh"}),
    ("unconfigured script", {"id": "a", "name": "n", "ip": "10.0.0.1", "script": "wipe"}),
    ("deploy_id with a slash", {"id": "a", "name": "n", "ip": "10.0.0.1", "deploy_id": "a/b"}),
    ("deploy_id of wrong type", {"id": "a", "name": "n", "ip": "10.0.0.1", "deploy_id": 5}),
    ("JSON array", [1, 2]),
    ("JSON string", "id"),
    ("JSON null", None),
]


@pytest.mark.parametrize(("case", "body"), BAD_BODIES, ids=[case for case, _ in BAD_BODIES])
async def test_invalid_requests_answer_400_with_a_reason(kit: Any, case: str, body: Any) -> None:
    """Each malformed request is refused with 400 and a JSON `error`, and nothing is queued."""
    script = kit.gated_script("never.sh")
    async with kit.running(ServiceConfig(script=script)) as client:
        response = await client.post("/provision/", json=body)
        listing = (await client.get("/provision/")).json()
    assert response.status_code == 400, case
    assert isinstance(response.json()["error"], str) and response.json()["error"]
    assert listing == []


RAW_BODIES = [
    ("not JSON", b"id=a&name=n", "application/json"),
    ("truncated JSON", b'{"id": "a", "name":', "application/json"),
    ("not UTF-8", b'{"id": "\xff\xfe", "name": "n", "ip": "10.0.0.1"}', "application/json"),
    ("empty body", b"", "application/json"),
    ("no content type", b"\xff\xfe\xfd", ""),
]


@pytest.mark.parametrize(("case", "raw", "kind"), RAW_BODIES, ids=[c for c, _, _ in RAW_BODIES])
async def test_undecodable_bodies_answer_400(kit: Any, case: str, raw: bytes, kind: str) -> None:
    """Bodies that are not JSON, or not UTF-8, are refused with 400 and a JSON error."""
    headers = {"content-type": kind} if kind else {}
    async with kit.running(ServiceConfig()) as client:
        response = await client.post("/provision/", content=raw, headers=headers)
    assert response.status_code == 400, case
    assert "error" in response.json()


async def test_unknown_fields_are_ignored(kit: Any) -> None:
    """Fields the API does not know are ignored, as the Go provisioner's decoder did."""
    script = kit.script("s.sh", "exit 0\n")
    async with kit.running(ServiceConfig(script=script)) as client:
        posted = await client.post("/provision/", json=kit.machine(extra={"x": [1]}, zone=3))
    assert posted.status_code == 202
    assert set(posted.json()["request"]) == {"id", "name", "ip", "mac", "role", "script"}


async def test_huge_body_answers_413(kit: Any) -> None:
    """A body over the 64 KiB cap is refused with 413 before any handler reads it."""
    async with kit.running(ServiceConfig()) as client:
        huge = kit.machine(name="n" * 100_000)
        response = await client.post("/provision/", json=huge)
        health = await client.get("/healthz")
    assert response.status_code == 413 and "error" in response.json()
    assert health.status_code == 200


async def test_script_environment_has_job_facts_but_no_secrets(
    kit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The script sees MAASFLOW_* facts about its job, never the service's credentials."""
    monkeypatch.setenv("MAASFLOW_POWER_TOKEN", "tok-secret")
    monkeypatch.setenv("MAASFLOW_POWER_PASS", "pass-secret")
    monkeypatch.setenv("MAAS_API_KEY", "a:b:c")
    monkeypatch.setenv("AUTOMATION_PROVISION_TOKEN", "daemon-token")
    out = kit.tmp / "env.txt"
    script = kit.script("env.sh", f"env > {out}\n")
    async with kit.running(ServiceConfig(script=script)) as client:
        await client.post("/provision/", json=kit.machine(role="gpu"))
        await kit.wait_record(client, "abc123", COMPLETE)
    env = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    assert env["MAASFLOW_SYSTEM_ID"] == "abc123" and env["MAASFLOW_ROLE"] == "gpu"
    assert env["MAASFLOW_IP"] == "10.0.0.7" and env["MAASFLOW_MAC"] == "52:54:00:aa:bb:cc"
    text = out.read_text()
    assert "tok-secret" not in text and "pass-secret" not in text and "MAAS_API_KEY" not in env
    assert "daemon-token" not in text


async def test_script_environment_lacks_the_power_configs_password_envs(
    kit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A provisioning script never sees a variable the power config names as a password_env."""
    from maasflow.serve import serve_service
    from maasflow.serve.power_api import build_power_component
    from maasflow.serve.power_config import PowerAuth, PowerConfig

    monkeypatch.setenv("DLI_OUTLET_SECRET", "outlet-pw")
    monkeypatch.setenv("HARMLESS", "kept")
    pdu = {
        "backend": "dli",
        "address": "127.0.0.1:1",
        "outlet": 1,
        "password_env": "DLI_OUTLET_SECRET",
    }
    power = build_power_component(
        PowerConfig.model_validate({"machines": {"pdu1": pdu}}), PowerAuth(), None
    )
    out = kit.tmp / "env.txt"
    script = kit.script("env.sh", f"env > {out}\n")
    async with (
        serve_service(ServiceConfig(script=script), power=power) as svc,
        httpx.AsyncClient(base_url=svc.url, timeout=10) as client,
    ):
        await client.post("/provision/", json=kit.machine())
        await kit.wait_record(client, "abc123", COMPLETE)
    env = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    assert env["HARMLESS"] == "kept" and "DLI_OUTLET_SECRET" not in env
