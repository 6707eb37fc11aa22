"""A faithful MAAS 2.0 API simulator for tests, benchmarks, the demo and trying things out.

It shares no logic with the daemon: its status table, lifecycle rules and OAuth check are
its own, written from the MAAS facts. Typical use::

    from maasflow.sim import SimConfig, MachineSpec, serve_simulator

    cfg = SimConfig(seed=1, time_factor=0.01, machines=[MachineSpec("node-01")])
    async with serve_simulator(cfg) as sim:
        ...  # talk to sim.url with sim.admin_key; read sim.machines, sim.request_log

`SimulatorThread(cfg)` does the same from synchronous code; `maasflow sim` runs one from
the command line.
"""

from maasflow.sim.config import Durations, SimConfig
from maasflow.sim.faults import Faults
from maasflow.sim.machine import Machine
from maasflow.sim.requestlog import RequestLog, RequestRecord
from maasflow.sim.scenario import MachineSpec, demo_machines, generate_machines
from maasflow.sim.server import Simulator, SimulatorThread, serve_simulator
from maasflow.sim.statuses import STATUS_NAMES, Status

__all__ = [
    "STATUS_NAMES",
    "Durations",
    "Faults",
    "Machine",
    "MachineSpec",
    "RequestLog",
    "RequestRecord",
    "SimConfig",
    "Simulator",
    "SimulatorThread",
    "Status",
    "demo_machines",
    "generate_machines",
    "serve_simulator",
]
