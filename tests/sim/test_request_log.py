"""The request log records every request and tells which ops took effect on a machine."""

from __future__ import annotations

import httpx

from maasflow.sim import Simulator
from maasflow.sim.requestlog import RequestLog, RequestRecord, redact


async def test_records_method_path_op_status_params(
    admin: httpx.AsyncClient, sim: Simulator
) -> None:
    """Each request becomes a record with method, path, op, status, time, params and user."""
    target = sim.find("node-01").system_id
    await admin.post(f"machines/{target}/", params={"op": "commission"}, data={"enable_ssh": "1"})
    record = sim.request_log[-1]
    assert (record.method, record.path, record.op, record.status) == (
        "POST",
        f"/MAAS/api/2.0/machines/{target}/",
        "commission",
        200,
    )
    assert record.params == {"op": ["commission"], "enable_ssh": ["1"]}
    assert (record.system_id, record.user, record.fault) == (target, "admin", None)
    assert record.time > 0


async def test_ops_for_lists_only_effective_ops(admin: httpx.AsyncClient, sim: Simulator) -> None:
    """Refused requests (here a second commission) do not count as done."""
    target = sim.find("node-01").system_id
    await admin.get(f"machines/{target}/")
    await admin.post(f"machines/{target}/", params={"op": "commission"})
    refused = await admin.post(f"machines/{target}/", params={"op": "commission"})
    assert refused.status_code == 400
    assert sim.ops_for(target) == ["read", "commission"]
    assert sim.request_log.ops_for(target, effective_only=False) == [
        "read",
        "commission",
        "commission",
    ]


async def test_allocate_is_attributed_to_the_allocated_machine(
    admin: httpx.AsyncClient, sim: Simulator
) -> None:
    """An allocate on machines/ counts for the machine it took."""
    target = sim.find("node-07").system_id
    await admin.post("machines/", data={"op": "allocate", "name": "node-07"})
    assert sim.ops_for(target) == ["allocate"]


async def test_dry_run_allocate_is_not_an_effective_op(
    admin: httpx.AsyncClient, sim: Simulator
) -> None:
    """An allocate with dry_run=true is logged but does not count as done."""
    target = sim.find("node-07").system_id
    answer = await admin.post(
        "machines/", data={"op": "allocate", "name": "node-07", "dry_run": "1"}
    )
    assert answer.status_code == 200
    record = sim.request_log[-1]
    assert (record.system_id, record.dry_run, record.effective) == (target, True, False)
    assert sim.ops_for(target) == []
    assert sim.request_log.ops_for(target, effective_only=False) == ["allocate"]


async def test_writes_lists_non_get_requests(admin: httpx.AsyncClient, sim: Simulator) -> None:
    """writes() keeps POST/PUT/DELETE and drops GETs."""
    await admin.get("machines/")
    await admin.put(f"machines/{sim.find('node-02').system_id}/", data={"description": "x"})
    assert [r.method for r in sim.request_log.writes()] == ["PUT"]


async def test_anonymous_and_refused_requests_are_logged(
    anonymous: httpx.AsyncClient, sim: Simulator
) -> None:
    """A 401 is logged too, with no user."""
    await anonymous.get("users/", params={"op": "whoami"})
    record = sim.request_log[-1]
    assert (record.status, record.user) == (401, None)


def test_secret_looking_params_are_redacted() -> None:
    """Passwords and tokens are stored as *** and oauth_* params are dropped."""
    cleaned = redact(
        {
            "power_parameters_power_pass": ["pw"],
            "power_parameters_power_token": ["t"],
            "oauth_nonce": ["n"],
            "hostname": ["h"],
        }
    )
    assert cleaned == {
        "power_parameters_power_pass": ["***"],
        "power_parameters_power_token": ["***"],
        "hostname": ["h"],
    }


def test_clear_and_faulted() -> None:
    """faulted() lists faulted records; clear() forgets everything."""
    log = RequestLog()
    log.append(RequestRecord("GET", "/x", None, 503, 1.0, fault="error_503"))
    log.append(RequestRecord("GET", "/x", None, 200, 2.0))
    assert [r.status for r in log.faulted()] == [503]
    log.clear()
    assert len(log) == 0
