"""The in-process servers the end-to-end tests stop and start behave as harnesses should.

A test that stops the simulator mid-way (to see the daemon's health turn) also leaves it to
its fixture's teardown, so stopping twice must be harmless, as it is for `ServiceThread`.
"""

from __future__ import annotations

import pytest

from maasflow.service import ServiceConfig, ServiceThread
from maasflow.sim import SimConfig, SimulatorThread


def test_service_thread_stop_is_idempotent() -> None:
    """Stopping `maasflow serve`'s thread twice raises nothing."""
    thread = ServiceThread(ServiceConfig())
    thread.start()
    thread.stop()
    thread.stop()
    assert thread.url.startswith("http://127.0.0.1:")


@pytest.mark.xfail(
    strict=True,
    reason="bug: SimulatorThread.stop() a second time raises RuntimeError('Event loop is "
    "closed') from call_soon_threadsafe (maasflow/sim/server.py, stop)",
)
def test_simulator_thread_stop_is_idempotent() -> None:
    """Stopping the simulator's thread twice raises nothing."""
    thread = SimulatorThread(SimConfig())
    sim = thread.start()
    thread.stop()
    thread.stop()
    assert sim.url.startswith("http://127.0.0.1:")
