"""Assembling a simulator and serving it with uvicorn on a socket we bind ourselves.

`Simulator` wires the parts (world, events, power, the power monitor, lifecycle, OAuth,
API, faults, request log) from a `SimConfig` and a `SimClock` (the one that times every
wait and timeout; tests may pass a fake one) and exposes what tests, benchmarks and the
demo read in-process: `url`, the three users' keys, `machines`, `request_log`, `events`,
`add_machine()`. `serve_simulator()` is an async context manager running it on an event
loop we already have (and starting the power monitor, if configured); `SimulatorThread`
runs the same thing on its own loop in a background thread for synchronous callers (e.g.
tests that start the `maasflow` CLI as a subprocess). Binding port 0 gives a free port;
uvicorn's signal handlers and access log stay off, so Ctrl-C belongs to whoever embeds the
simulator.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import TracebackType

import uvicorn

from maasflow.common.errors import ConfigError
from maasflow.common.webserver import LoopThread, bind, serving
from maasflow.sim.api import Api
from maasflow.sim.asgi import SimApp
from maasflow.sim.auth import ApiKey, Authenticator, User, generate_key
from maasflow.sim.clock import ScaledClock, SimClock
from maasflow.sim.config import SimConfig
from maasflow.sim.events import EventLog
from maasflow.sim.faults import FaultInjector
from maasflow.sim.machine import Machine
from maasflow.sim.monitor import PowerMonitor
from maasflow.sim.power import PowerControl
from maasflow.sim.progression import Lifecycle
from maasflow.sim.requestlog import RequestLog
from maasflow.sim.scenario import MachineSpec
from maasflow.sim.world import World


class Simulator:
    """One simulated MAAS region and everything a test may want to look at."""

    def __init__(self, config: SimConfig, clock: SimClock | None = None) -> None:
        self.config = config
        self.clock = clock or ScaledClock(config.time_factor)
        self.users = _users(config)
        self.events = EventLog()
        zones = [*config.zones, *(spec.zone for spec in config.machines)]
        pools = [*config.pools, *(spec.pool for spec in config.machines)]
        domains = [*config.domains, *(spec.domain for spec in config.machines)]
        self.world = World(
            config.seed, self.events, zones, pools, domains, config.subnets, config.real_sized
        )
        self.world.add_tags(config.tags)
        self.power = PowerControl(self.world, config, self.clock)
        self.monitor = PowerMonitor(self.world, self.power, config, self.clock)
        self.lifecycle = Lifecycle(self.world, self.power, config, self.clock)
        auth = Authenticator(self.users)
        api = Api(self.world, self.lifecycle, self.power, auth, config, self.clock)
        self.request_log = RequestLog()
        self.injector = FaultInjector(config.faults, config.seed)
        self.app = SimApp(api, self.injector, self.request_log)
        for spec in config.machines:
            self.world.add(spec)
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def machines(self) -> dict[str, Machine]:
        """Live machine state by system_id (read it; change it through the API)."""
        return self.world.machines

    @property
    def admin_key(self) -> str:
        return str(self.users[0].key)

    @property
    def user_key(self) -> str:
        return str(self.users[1].key)

    @property
    def other_key(self) -> str:
        return str(self.users[2].key)

    @property
    def admin_username(self) -> str:
        return self.users[0].username

    @property
    def user_username(self) -> str:
        return self.users[1].username

    @property
    def other_username(self) -> str:
        return self.users[2].username

    def find(self, hostname: str) -> Machine:
        """The machine called `hostname`; KeyError if there is none."""
        machine = self.world.by_hostname(hostname)
        if machine is None:
            raise KeyError(hostname)
        return machine

    def ops_for(self, system_id: str) -> list[str]:
        """The ops that took effect on one machine, in order (see RequestLog.ops_for)."""
        return self.request_log.ops_for(system_id)

    def add_machine(self, spec: MachineSpec) -> str:
        """Add a machine (from any thread) and return its system_id."""
        loop = self._loop
        if loop is None or not loop.is_running() or _running_loop() is loop:
            return self.world.add(spec).system_id
        future = asyncio.run_coroutine_threadsafe(self._add(spec), loop)
        return future.result(timeout=10)

    async def _add(self, spec: MachineSpec) -> str:
        return self.world.add(spec).system_id

    async def aclose(self) -> None:
        """Stop background flows and the power monitor; close the webhook HTTP clients."""
        await self.monitor.aclose()
        await self.lifecycle.aclose()
        await self.power.aclose()


def _users(config: SimConfig) -> list[User]:
    rng = random.Random(f"keys:{config.seed}")
    admin_key = generate_key(rng)
    if config.admin_key:
        try:
            admin_key = ApiKey.parse(config.admin_key)
        except ValueError as exc:
            raise ConfigError(f"admin key: {exc}; pass consumer:token:secret") from None
    return [
        User(config.admin_username, True, admin_key),
        User(config.user_username, False, generate_key(rng)),
        User(config.other_username, False, generate_key(rng)),
    ]


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/MAAS"


@asynccontextmanager
async def serve_simulator(
    config: SimConfig, host: str = "127.0.0.1", port: int = 0, clock: SimClock | None = None
) -> AsyncIterator[Simulator]:
    """Serve a new simulator on host:port for the duration of the `async with` block;
    `clock` (default: real time scaled by the config's time factor) times everything."""
    sim = Simulator(config, clock)
    sock = bind(host, port)
    uv = uvicorn.Config(
        sim.app,
        log_config=None,
        log_level="warning",
        access_log=False,
        lifespan="off",
        proxy_headers=False,
        http="h11",
        ws="none",
        server_header=False,
        timeout_graceful_shutdown=1,
    )
    try:
        async with serving(uv, sock):
            sim.url = _url(host, sock.getsockname()[1])
            sim._loop = asyncio.get_running_loop()
            sim.monitor.start()
            yield sim
    finally:
        await sim.aclose()


class SimulatorThread:
    """`serve_simulator` on its own event loop in a daemon thread, for synchronous code."""

    def __init__(
        self, config: SimConfig, host: str = "127.0.0.1", port: int = 0, timeout: float = 15.0
    ) -> None:
        self._thread = LoopThread(
            lambda: serve_simulator(config, host, port), "maasflow-sim", timeout
        )
        self.sim: Simulator | None = None

    def start(self) -> Simulator:
        """Start serving and return the simulator once it answers."""
        self.sim = self._thread.start()
        return self.sim

    def stop(self) -> None:
        """Stop serving and wait for the thread to end; calling it again does nothing."""
        self._thread.stop()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
