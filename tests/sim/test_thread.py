"""SimulatorThread serves the same simulator to synchronous code."""

from __future__ import annotations

import httpx

from maasflow.sim import MachineSpec, SimConfig, SimulatorThread, demo_machines
from tests.sim.helpers import FAST, OAuth


def test_thread_serves_and_stops() -> None:
    """A sync client lists the machines; add_machine works from this thread; stop frees the port."""
    config = SimConfig(seed=1, time_factor=FAST, machines=demo_machines(1))
    with SimulatorThread(config) as sim:
        with httpx.Client(base_url=sim.url + "/api/2.0/", auth=OAuth(sim.admin_key)) as client:
            assert len(client.get("machines/").json()) == 12
            system_id = sim.add_machine(MachineSpec("late"))
            assert client.get(f"machines/{system_id}/").json()["hostname"] == "late"
            client.post(f"machines/{system_id}/", params={"op": "commission"})
        url = sim.url
    assert sim.request_log.ops_for(system_id) == ["read", "commission"]
    try:
        httpx.get(url + "/api/version/", timeout=1.0)
        reachable = True
    except httpx.TransportError:
        reachable = False
    assert not reachable


def test_stop_twice_is_harmless() -> None:
    """Stopping an already stopped simulator thread raises nothing."""
    thread = SimulatorThread(SimConfig())
    thread.start()
    thread.stop()
    thread.stop()
    assert thread.sim is not None and thread.sim.url.startswith("http://127.0.0.1:")
