"""Which op is allowed from which status, and MAAS's exact refusals (facts §3.11).

One simulator serves the whole module; each case adds a fresh machine sitting in the
status under test (machines created in a transitional status stay there until an op moves
them).
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
import pytest_asyncio

from maasflow.sim import MachineSpec, SimConfig, Simulator, serve_simulator
from maasflow.sim.statuses import STATUS_NAMES
from tests.sim.helpers import FAST, api_client

ALL = sorted(STATUS_NAMES)
COMMISSION_OK = {0, 2, 4, 8}
DEPLOY_OK = {4, 10}
RELEASABLE = {5, 6, 8, 9, 10, 11, 13, 15}
RELEASE_NOOP = {4, 12}
ABORT_OK = {1, 9, 14, 21}


pytestmark = pytest.mark.asyncio(loop_scope="module")
_names = itertools.count(1)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def shared() -> AsyncIterator[tuple[Simulator, httpx.AsyncClient]]:
    config = SimConfig(seed=1, time_factor=FAST)
    async with serve_simulator(config) as sim, api_client(sim, sim.admin_key) as client:
        yield sim, client


@pytest.fixture
def one_machine(
    shared: tuple[Simulator, httpx.AsyncClient],
) -> Callable[[int], tuple[Simulator, httpx.AsyncClient, str]]:
    """Add a machine in `status` (owned by admin unless Ready) to the shared simulator."""

    def add(status: int) -> tuple[Simulator, httpx.AsyncClient, str]:
        sim, client = shared
        owner = None if status == 4 else "admin"
        spec = MachineSpec(f"box-{next(_names)}", status=status, owner=owner)
        return sim, client, sim.add_machine(spec)

    return add


OneMachine = Callable[[int], tuple[Simulator, httpx.AsyncClient, str]]


@pytest.fixture
def post_op(one_machine: OneMachine) -> Callable[..., Awaitable[tuple[httpx.Response, int]]]:
    """Run an op on a fresh machine in a status; give the answer and the status right after."""

    async def run(status: int, op: str, **data: str) -> tuple[httpx.Response, int]:
        sim, client, system_id = one_machine(status)
        response = await client.post(f"machines/{system_id}/", params={"op": op}, data=data)
        return response, sim.machines[system_id].status

    return run


PostOp = Callable[..., Awaitable[tuple[httpx.Response, int]]]


@pytest.mark.parametrize("status", ALL)
async def test_commission_allowed_only_from_new_failed_ready_broken(
    status: int, post_op: PostOp
) -> None:
    """Commission works from 0, 2, 4, 8 and is otherwise a 400 JSON __all__ error."""
    response, after = await post_op(status, "commission")
    if status in COMMISSION_OK:
        assert response.status_code == 200
        assert response.json()["status"] == 1
        assert response.json()["status_name"] == "Commissioning"
    else:
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {
            "__all__": ["Commission is not available because of the current state of the node."]
        }
        assert after == status


@pytest.mark.parametrize("status", ALL)
async def test_deploy_allowed_only_from_ready_or_allocated(status: int, post_op: PostOp) -> None:
    """Deploy works from 4 (auto-allocating) and 10; otherwise 409 with the status label."""
    response, after = await post_op(status, "deploy", distro_series="jammy")
    if status in DEPLOY_OK:
        assert response.status_code == 200
        assert response.json()["status_name"] == "Deploying"
        assert response.json()["owner"] == "admin"
    else:
        assert response.status_code == 409
        assert response.headers["content-type"].startswith("text/plain")
        expected = f"Can't deploy a machine that is in the '{STATUS_NAMES[status]}' state"
        assert response.text == expected
        assert after == status


@pytest.mark.parametrize("status", ALL)
async def test_release_from_releasable_noop_or_409(status: int, post_op: PostOp) -> None:
    """Release starts Releasing from the releasable set, is a no-op from 4/12, else 409."""
    response, after = await post_op(status, "release")
    if status in RELEASABLE:
        assert response.status_code == 200
        assert response.json()["status_name"] == "Releasing"
    elif status in RELEASE_NOOP:
        assert response.status_code == 200
        assert response.json()["status"] == status
    else:
        assert response.status_code == 409
        expected = f"Machine cannot be released in its current state ('{STATUS_NAMES[status]}')."
        assert response.text == expected
        assert after == status


@pytest.mark.parametrize("status", ALL)
async def test_abort_only_from_busy_statuses(status: int, one_machine: OneMachine) -> None:
    """Abort works from 1, 9, 14, 21 and is otherwise a 409 naming the state."""
    _, client, system_id = one_machine(status)
    response = await client.post(f"machines/{system_id}/", params={"op": "abort"})
    if status in ABORT_OK:
        assert response.status_code == 200
        assert response.json()["status"] != status
    else:
        assert response.status_code == 409
        assert response.text == (
            f"Cannot abort in current state: node {system_id} is in state {STATUS_NAMES[status]}."
        )


@pytest.mark.parametrize("status", ALL)
async def test_mark_fixed_only_from_broken(status: int, post_op: PostOp) -> None:
    """mark_fixed turns Broken into Ready and refuses every other status with 409."""
    response, _ = await post_op(status, "mark_fixed")
    if status == 8:
        assert response.status_code == 200
        assert response.json()["status_name"] == "Ready"
    else:
        assert response.status_code == 409


@pytest.mark.parametrize(("status", "expected"), [(1, 0), (21, 0), (9, 10), (14, 15)])
async def test_abort_lands_where_maas_puts_it(status: int, expected: int, post_op: PostOp) -> None:
    """Aborting commissioning/testing goes back, deploying → Allocated, erasing → Failed."""
    _, after = await post_op(status, "abort")
    assert after == expected


async def test_allocate_only_takes_ready_machines(one_machine: OneMachine) -> None:
    """Allocate skips a New machine and answers 409 naming the system id asked for."""
    _, client, system_id = one_machine(0)
    response = await client.post("machines/", data={"op": "allocate", "system_id": system_id})
    assert response.status_code == 409
    assert response.text == f"No machine with system ID {system_id} available."


async def test_power_on_unowned_machine_is_409(post_op: PostOp) -> None:
    """power_on needs an owner: a Ready machine answers MAAS's 409 sentence."""
    response, _ = await post_op(4, "power_on")
    assert response.status_code == 409
    assert response.text == "Can't start node: it hasn't been allocated."


async def test_power_off_has_no_status_check(post_op: PostOp) -> None:
    """power_off is accepted from any status (here New) and answers the machine."""
    response, _ = await post_op(0, "power_off", stop_mode="soft")
    assert response.status_code == 200
    assert response.json()["status"] == 0
