"""Error bodies, content types, version endpoints and permissions answer as MAAS does."""

from __future__ import annotations

import httpx

from maasflow.sim import MachineSpec, Simulator


def sid(sim: Simulator, hostname: str) -> str:
    return sim.find(hostname).system_id


async def test_api_version_is_plain_2_0(anonymous: httpx.AsyncClient, sim: Simulator) -> None:
    """GET /MAAS/api/version/ answers the text 2.0 without a key."""
    response = await anonymous.get(sim.url + "/api/version/")
    assert response.status_code == 200
    assert response.text == "2.0"
    assert response.headers["content-type"].startswith("text/plain")


async def test_version_json_is_anonymous(anonymous: httpx.AsyncClient) -> None:
    """GET version/ answers capabilities, version and an empty subversion without a key."""
    response = await anonymous.get("version/")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"capabilities", "version", "subversion"}
    assert body["subversion"] == ""
    assert "authenticate-api" in body["capabilities"]


async def test_api_1_0_is_gone(anonymous: httpx.AsyncClient, sim: Simulator) -> None:
    """Any path under /MAAS/api/1.0/ answers 410 text/plain with MAAS's sentence."""
    response = await anonymous.get(sim.url + "/api/1.0/nodes/", params={"op": "list"})
    assert response.status_code == 410
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "The 1.0 API is no longer available. Please use API version 2.0."


async def test_unknown_machine_is_404_text(admin: httpx.AsyncClient) -> None:
    """An unknown system_id answers 404 "No Machine matches the given query."."""
    response = await admin.get("machines/nosuch/")
    assert response.status_code == 404
    assert response.text == "No Machine matches the given query."
    assert response.headers["content-type"].startswith("text/plain")


async def test_unknown_endpoint_is_404(admin: httpx.AsyncClient) -> None:
    """A path without trailing slash or an unknown resource is an unknown API endpoint."""
    response = await admin.get("machines")
    assert response.status_code == 404
    assert response.text == "Unknown API endpoint: /MAAS/api/2.0/machines."


async def test_unknown_op_is_400_unrecognised_signature(
    admin: httpx.AsyncClient, sim: Simulator
) -> None:
    """An op the machine handler does not have is 400 naming method and op."""
    response = await admin.post(f"machines/{sid(sim, 'node-01')}/", params={"op": "explode"})
    assert response.status_code == 400
    assert response.text == "Unrecognised signature: method=POST op=explode"


async def test_op_with_wrong_method_is_unrecognised(
    admin: httpx.AsyncClient, sim: Simulator
) -> None:
    """commission is a POST op: as a GET it is an unrecognised signature."""
    response = await admin.get(f"machines/{sid(sim, 'node-01')}/", params={"op": "commission"})
    assert response.status_code == 400
    assert response.text == "Unrecognised signature: method=GET op=commission"


async def test_op_may_come_from_the_body(admin: httpx.AsyncClient, sim: Simulator) -> None:
    """op in a form body works like op in the query string."""
    response = await admin.post(f"machines/{sid(sim, 'node-01')}/", data={"op": "commission"})
    assert response.status_code == 200
    assert response.json()["status_name"] == "Commissioning"


async def test_api_answers_carry_the_api_hash(admin: httpx.AsyncClient) -> None:
    """Every API answer, error or not, carries X-MAAS-API-Hash."""
    ok = await admin.get("machines/")
    missing = await admin.get("machines/nosuch/")
    assert ok.headers["x-maas-api-hash"] == missing.headers["x-maas-api-hash"]
    assert len(ok.headers["x-maas-api-hash"]) == 40


async def test_non_admin_commission_is_403(user: httpx.AsyncClient, sim: Simulator) -> None:
    """Commission needs the admin permission: a non-admin key gets 403 with an empty body."""
    response = await user.post(f"machines/{sid(sim, 'node-01')}/", params={"op": "commission"})
    assert response.status_code == 403
    assert response.text == ""
    assert sim.find("node-01").status == 0


async def test_admin_only_collection_op_keeps_maas_sentence(
    user: httpx.AsyncClient,
) -> None:
    """machines/?op=power_parameters is an @admin_method: 403 with "reserved for admin users"."""
    response = await user.get("machines/", params={"op": "power_parameters"})
    assert (response.status_code, response.text) == (
        403,
        "This method is reserved for admin users.",
    )


async def test_locked_machine_refuses_edit_ops_with_403(
    admin: httpx.AsyncClient, sim: Simulator
) -> None:
    """Deploy, release, power ops and abort ("edit" ops) on a locked machine answer 403."""
    locked = sid(sim, "node-09")
    for op in ("deploy", "release", "power_on", "power_off", "abort"):
        response = await admin.post(f"machines/{locked}/", params={"op": op})
        assert response.status_code == 403, op
        assert response.text == "", op
    assert sim.machines[locked].status == 6


async def test_commission_of_a_locked_machine_is_403(
    admin: httpx.AsyncClient, sim: Simulator
) -> None:
    """MAAS's admin permission includes "not locked": commission answers 403, empty body."""
    locked = sid(sim, "node-09")
    response = await admin.post(f"machines/{locked}/", params={"op": "commission"})
    assert (response.status_code, response.text) == (403, "")
    assert sim.machines[locked].status == 6


async def test_commission_out_of_its_statuses_is_the_form_error(
    admin: httpx.AsyncClient, sim: Simulator
) -> None:
    """Commissioning an Allocated machine is refused by the form: 400 JSON, as in MAAS."""
    response = await admin.post(f"machines/{sid(sim, 'node-11')}/", params={"op": "commission"})
    assert response.status_code == 400
    assert response.json() == {
        "__all__": ["Commission is not available because of the current state of the node."]
    }
    assert sim.find("node-11").status == 10


async def test_commission_without_a_power_type_is_500(
    admin: httpx.AsyncClient, sim: Simulator
) -> None:
    """No power type: MAAS's plain UnknownPowerType exception answers 500 with its text."""
    target = sim.add_machine(MachineSpec("dark", power_type=""))
    response = await admin.post(f"machines/{target}/", params={"op": "commission"})
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == (
        "Unconfigured power type. Please configure the power type and try again."
    )
    assert sim.machines[target].status == 0


async def test_lock_and_unlock_round_trip(admin: httpx.AsyncClient, sim: Simulator) -> None:
    """unlock clears locked, a second unlock is 409, lock sets it, a second lock is 409."""
    target = sid(sim, "node-09")
    unlocked = await admin.post(f"machines/{target}/", params={"op": "unlock"})
    assert unlocked.json()["locked"] is False
    again = await admin.post(f"machines/{target}/", params={"op": "unlock"})
    assert (again.status_code, again.text) == (409, "Machine is not locked")
    assert (await admin.post(f"machines/{target}/", params={"op": "lock"})).json()["locked"]
    again = await admin.post(f"machines/{target}/", params={"op": "lock"})
    assert (again.status_code, again.text) == (409, "Machine is already locked")


async def test_lock_is_refused_outside_deployed_and_deploying(
    admin: httpx.AsyncClient, sim: Simulator
) -> None:
    """Locking a Ready machine is 409, as MAAS's Node.lock allows only Deployed/Deploying."""
    target = sid(sim, "node-07")
    response = await admin.post(f"machines/{target}/", params={"op": "lock"})
    assert (response.status_code, response.text) == (
        409,
        "Can't lock, node is not deployed or deploying",
    )
    assert sim.machines[target].locked is False


async def test_non_admin_does_not_see_other_users_machines(
    user: httpx.AsyncClient, sim: Simulator
) -> None:
    """A non-admin lists unowned machines only; someone-else's machine is 403, empty body."""
    listed = {m["hostname"] for m in (await user.get("machines/")).json()}
    assert "node-11" not in listed
    assert "node-01" in listed
    response = await user.get(f"machines/{sid(sim, 'node-11')}/")
    assert (response.status_code, response.text) == (403, "")


async def test_admin_sees_every_machine(admin: httpx.AsyncClient, sim: Simulator) -> None:
    """The admin lists all twelve demo machines, in id order."""
    listed = [m["system_id"] for m in (await admin.get("machines/")).json()]
    assert listed == list(sim.machines)


async def test_non_admin_may_allocate_and_deploy(user: httpx.AsyncClient, sim: Simulator) -> None:
    """Allocate and deploy need only edit permission: the non-admin owns the machine."""
    target = sid(sim, "node-07")
    allocated = await user.post("machines/", data={"op": "allocate", "system_id": target})
    assert allocated.status_code == 200
    assert allocated.json()["owner"] == sim.user_username
    deployed = await user.post(f"machines/{target}/", params={"op": "deploy"})
    assert deployed.status_code == 200
    assert deployed.json()["status_name"] == "Deploying"


async def test_mark_broken_needs_the_owner(user: httpx.AsyncClient, sim: Simulator) -> None:
    """A non-admin cannot mark an unowned machine broken (403)."""
    response = await user.post(f"machines/{sid(sim, 'node-07')}/", params={"op": "mark_broken"})
    assert response.status_code == 403


async def test_power_parameters_are_admin_only(
    admin: httpx.AsyncClient, user: httpx.AsyncClient, sim: Simulator
) -> None:
    """GET op=power_parameters answers the parameters to admins and 403 to others."""
    target = sid(sim, "node-01")
    answer = await admin.get(f"machines/{target}/", params={"op": "power_parameters"})
    assert answer.json() == sim.machines[target].power_parameters
    assert set(answer.json()) == {"power_address"}
    refused = await user.get(f"machines/{target}/", params={"op": "power_parameters"})
    assert refused.status_code == 403


async def test_query_power_state_answers_state(admin: httpx.AsyncClient, sim: Simulator) -> None:
    """query_power_state answers {"state": ...} from the modelled BMC."""
    response = await admin.get(
        f"machines/{sid(sim, 'node-01')}/", params={"op": "query_power_state"}
    )
    assert response.json() == {"state": "on"}
