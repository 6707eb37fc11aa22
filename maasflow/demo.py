"""`maasflow demo`: the simulator, `maasflow serve` and the daemon, together on loopback.

The first thing a new user runs. One process starts a simulated MAAS region with a dozen
machines in mixed states, the provisioning service (with a small provisioning script), and
the daemon pointed at both, then shows a live table (or plain progress lines when stdout is
not a terminal). It exits 0 once every machine reached what it should: Provisioned for the
machines the filter selects, Failed for the one built to fail commissioning, and no write
request at all for the ones the daemon must leave alone (another zone, locked, another
user's). Otherwise it exits 1 at `--timeout` saying which machine is where. The provisioning
API requires a random Bearer token, which the daemon sends (as `PROVISION_TOKEN` would).
Its live view escapes what it shows (`safe_text.escape`). This module only assembles and
watches; every behaviour it shows lives in the real parts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import stat
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from maasflow.common.command_parser import CommandParser
from maasflow.common.errors import ConfigError
from maasflow.common.logs import configure_logging
from maasflow.common.options import Bound, duration_type
from maasflow.common.safe_text import escape
from maasflow.daemon.actions import Actuator
from maasflow.daemon.loop import Daemon
from maasflow.daemon.maas.client import MaasClient
from maasflow.daemon.mappings import Mappings
from maasflow.daemon.provisioning import HttpProvisioner, ScriptProvisioner
from maasflow.daemon.report import render_table
from maasflow.daemon.selection import FilterSpec
from maasflow.daemon.store import Store
from maasflow.daemon.telemetry import build_telemetry_app, serve_telemetry
from maasflow.serve import ServiceConfig, serve_service
from maasflow.serve.power_api import build_power_component
from maasflow.serve.power_config import PowerAuth, PowerConfig
from maasflow.sim import STATUS_NAMES as SIM_STATUS_NAMES
from maasflow.sim import (
    MachineSpec,
    SimConfig,
    Simulator,
    demo_machines,
    generate_machines,
    serve_simulator,
)

PROVISION_SCRIPT = """#!/bin/sh
# maasflow demo provisioning: what a real script would do with ssh or ansible.
echo "provisioning $2 ($1) at $3"
sleep 0.3
echo "done"
"""

RENAMED = ("node-05", "rack1-node05")  # the demo's one MAC mapping: shows a rename
NO_BMC = "node-04"  # powered by MAAS's webhook driver through `maasflow serve`
NOTE = f"({NO_BMC} has no BMC: MAAS powers it through maasflow serve's webhook power target)"

# The "power switch" of the machine without a BMC: `maasflow serve`'s command backend runs
# it as argv (never a shell) to switch and read a state file, as a real relay script would.
SWITCH = """
import pathlib, sys
action, state = sys.argv[1], pathlib.Path(sys.argv[2])
if action == "status":
    print(state.read_text() if state.exists() else "off")
else:
    state.write_text(action)
"""


@dataclass(frozen=True)
class Expectation:
    """What should become of one machine, and why."""

    outcome: str  # "provisioned" | "failed" | "untouched"
    why: str


def expectation(spec: MachineSpec, admin: str) -> Expectation:
    """Derived from the scenario, not from the daemon: the demo's own oracle."""
    if spec.zone != "default":
        return Expectation("untouched", f"zone {spec.zone}")
    if spec.locked:
        return Expectation("untouched", "locked")
    if spec.owner not in (None, admin):
        return Expectation("untouched", f"owned by {spec.owner}")
    if spec.commission_outcome in ("fail", "fail_testing"):
        return Expectation("failed", "commissioning fails by design")
    return Expectation("provisioned", "selected")


def machine_specs(count: int, seed: int) -> list[MachineSpec]:
    """The demo dozen, cut short or topped up with plain New machines."""
    if count < 1:
        raise ConfigError(f"--machines {count}: give at least 1")
    specs = demo_machines(seed)[:count]
    if count > len(specs):
        specs += generate_machines(count - len(specs), seed, start=100)
    return specs


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = CommandParser(prog="maasflow demo", description=__doc__.split("\n")[0])
    parser.add_argument("--machines", type=int, default=12, help="how many machines (12)")
    parser.add_argument("--seed", type=int, default=1, help="simulator seed (1)")
    parser.add_argument(
        "--time-factor",
        type=float,
        default=0.1,
        help="simulator speed: 1 = a small real lab, 0.1 = ten times faster (0.1)",
    )
    parser.add_argument(
        "--timeout", type=duration_type(Bound.POSITIVE), default=55.0, help="give up after (55s)"
    )
    parser.add_argument(
        "--provision",
        choices=("url", "script"),
        default="url",
        help="provision through `maasflow serve` (url, the default) or by running a script",
    )
    parser.add_argument(
        "--period", type=duration_type(Bound.POSITIVE), default=0.5, help="daemon period (500ms)"
    )
    parser.add_argument("--log", type=Path, help="write the daemon's log here")
    parser.add_argument(
        "--listen",
        default="127.0.0.1:0",
        help="the daemon's /healthz, /metrics and /state (default: a free loopback port)",
    )
    args = parser.parse_args(argv)
    if not args.time_factor > 0 or not args.timeout > 0 or not args.period > 0:
        raise ConfigError("--time-factor, --timeout and --period must be more than 0")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    return asyncio.run(run(args, sys.stdout))


async def run(args: argparse.Namespace, out: TextIO) -> int:
    with tempfile.TemporaryDirectory(prefix="maasflow-demo-") as tmp:
        work = Path(tmp)
        log_path = args.log or work / "daemon.log"
        with log_path.open("w") as log_file:
            configure_logging("info", "text", stream=log_file)
            code, reason = await _run_in(work, args, out)
        if code != 0:
            print(f"demo failed: {reason}", file=out)
            print("last lines of the daemon's log:", file=out)
            for line in log_path.read_text().splitlines()[-15:]:
                print(f"  {line}", file=out)
        return code


async def _run_in(work: Path, args: argparse.Namespace, out: TextIO) -> tuple[int, str]:
    script = _write_script(work / "provision.sh")
    specs = machine_specs(args.machines, args.seed)
    cfg = SimConfig(
        seed=args.seed, time_factor=args.time_factor, machines=specs, zones=["default", "lab-b"]
    )
    bearer = secrets.token_urlsafe(24)  # the provisioning API's token, on both sides
    async with _world(cfg, script, work, bearer) as (sim, service_url):
        daemon = _daemon(sim, args, script, (service_url, bearer), work)
        try:
            app = build_telemetry_app(daemon.health, daemon.metrics, daemon.snapshot)
            async with serve_telemetry(app, args.listen) as url:
                view = LiveView(sim, daemon, specs, out, f"maasflow status --url {url}")
                code, reason = await _drive(daemon, view, args.timeout)
            print(render_table(daemon.snapshot()), file=out)
        finally:
            await daemon.client.aclose()
            daemon.actuator.store.close()
    return code, reason


async def _drive(daemon: Daemon, view: LiveView, timeout: float) -> tuple[int, str]:
    await daemon.identify(retry=False)
    stop = asyncio.Event()
    loop = asyncio.create_task(daemon.run(stop))
    code, reason = await view.watch(timeout)
    stop.set()
    await loop
    await daemon.shutdown(5)
    return code, reason


@contextlib.asynccontextmanager
async def _world(
    cfg: SimConfig, script: Path, work: Path, bearer: str
) -> AsyncIterator[tuple[Simulator, str]]:
    """`maasflow serve` (provisioning + power target) first, then MAAS, whose NO_BMC
    machine it powers through serve's webhook target."""
    token = secrets.token_urlsafe(24)
    power = build_power_component(
        _power_config(work / "switch"), PowerAuth(token=token), work / "power-state.json"
    )
    service = ServiceConfig(
        script=script, workers=8, db=work / "serve.sqlite", provision_token=bearer
    )
    async with serve_service(service, power=power) as svc:
        _use_webhook(cfg.machines, svc.url, token)
        async with serve_simulator(cfg) as sim:
            yield sim, f"{svc.url}/provision/"


def _power_config(state: Path) -> PowerConfig:
    def argv(action: str) -> list[str]:
        return [sys.executable, "-c", SWITCH, action, str(state)]

    switch = {"backend": "command", "on": argv("on"), "off": argv("off"), "status": argv("status")}
    return PowerConfig.model_validate({"machines": {NO_BMC: {**switch, "on_regex": "^on"}}})


def _use_webhook(specs: list[MachineSpec], service_url: str, token: str) -> None:
    """Give NO_BMC MAAS's webhook power settings, as `maasflow power-config` prints them."""
    for spec in specs:
        if spec.hostname == NO_BMC:
            base = f"{service_url}/power/{NO_BMC}"
            spec.power_type = "webhook"
            spec.power_parameters = {
                "power_on_uri": f"{base}/on",
                "power_off_uri": f"{base}/off",
                "power_query_uri": base,
                "power_token": token,
            }


def _daemon(
    sim: Simulator,
    args: argparse.Namespace,
    script: Path,
    service: tuple[str, str],
    work: Path,
) -> Daemon:
    """The daemon; `service` is the provisioning URL and its Bearer token."""
    client = MaasClient(sim.url, sim.admin_key, write_attempts=1)  # as the daemon's (cli.py)
    provisioner: ScriptProvisioner | HttpProvisioner
    if args.provision == "url":
        url, bearer = service
        provisioner = HttpProvisioner(url, ttl=120, token=bearer)
    else:
        provisioner = ScriptProvisioner(str(script), ttl=120, runs_dir=work / "runs")
    actuator = Actuator(client, Store(work / "maasflow.sqlite"), provisioner)
    return Daemon(
        client,
        actuator,
        filters=FilterSpec.default(),
        mappings=_mappings(sim),
        period=args.period,
    )


def _mappings(sim: Simulator) -> Mappings:
    old, new = RENAMED
    try:
        machine = sim.find(old)
    except KeyError:
        return Mappings.empty()
    return Mappings.load(f'{{"{machine.nics[0].mac}": "{new}"}}', "demo")


def _write_script(path: Path) -> Path:
    path.write_text(PROVISION_SCRIPT)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _phase_text(phase: str, reason: str) -> str:
    text = f"{phase} ({reason})" if phase in ("hands-off", "waiting") and reason else phase
    return text[:34]


def _excluded(exp: Expectation | None) -> str:
    """For a machine the daemon holds no view of: left alone on purpose, or not seen yet."""
    if exp is None or exp.outcome != "untouched":
        return "not seen yet"
    return f"excluded ({exp.why})"[:34]


class LiveView:
    """Watches simulator and daemon; draws the table; decides when the demo is done."""

    def __init__(
        self, sim: Simulator, daemon: Daemon, specs: list[MachineSpec], out: TextIO, hint: str
    ) -> None:
        self.sim = sim
        self.hint = hint
        self.daemon = daemon
        self.out = out
        self.tty = out.isatty()
        self.started = time.monotonic()
        self.expect = self._expectations(specs)
        self.finished: dict[str, float] = {}
        self.last_line: dict[str, str] = {}

    def _expectations(self, specs: list[MachineSpec]) -> dict[str, Expectation]:
        by_host = {m.hostname: sid for sid, m in self.sim.machines.items()}
        admin = self.sim.admin_username
        return {by_host[s.hostname]: expectation(s, admin) for s in specs}

    async def watch(self, timeout: float) -> tuple[int, str]:
        while True:
            elapsed = time.monotonic() - self.started
            pending = self._pending()
            self._draw(elapsed, pending)
            if not pending:
                return 0, ""
            if elapsed > timeout:
                return 1, f"timed out after {timeout:g}s; " + "; ".join(pending[:5])
            await asyncio.sleep(0.25)

    def _pending(self) -> list[str]:
        """Machines not (yet) where they should be, each with what is wrong."""
        problems = []
        for sid, exp in self.expect.items():
            ok, why = self._check(sid, exp)
            if ok:
                self.finished.setdefault(sid, time.monotonic() - self.started)
            else:
                self.finished.pop(sid, None)
                problems.append(f"{escape(self.sim.machines[sid].hostname)}: {why}")
        return problems

    def _check(self, sid: str, exp: Expectation) -> tuple[bool, str]:
        if exp.outcome == "untouched":
            writes = [r for r in self.sim.request_log.for_machine(sid) if r.method != "GET"]
            if writes:
                return False, f"was sent {writes[0].method} {writes[0].action}"
            return True, ""
        phase = self._phase(sid)
        if phase == exp.outcome:
            return True, ""
        return False, f"is {phase}, expected {exp.outcome}"

    def _phase(self, sid: str) -> str:
        view = self.daemon.views.get(sid)
        return (view.phase or "left out") if view else "not seen"

    def _rows(self, elapsed: float) -> list[str]:
        rows = []
        for sid, machine in sorted(self.sim.machines.items(), key=lambda kv: kv[1].hostname):
            exp = self.expect.get(sid)
            view = self.daemon.views.get(sid)
            phase = _phase_text(view.phase or "-", view.reason) if view else _excluded(exp)
            action = view.last_action or "-" if view else "-"
            took = self.finished.get(sid, elapsed)
            mark = "ok" if sid in self.finished else ".."
            status = SIM_STATUS_NAMES.get(machine.status, str(machine.status))
            host, phase, action = map(escape, (machine.hostname, phase, action))
            rows.append(f"{mark:2} {host:<14} {status:<21} {phase:<34} {action:<16} {took:5.1f}s")
        return rows

    def _draw(self, elapsed: float, pending: list[str]) -> None:
        done = len(self.expect) - len(pending)
        summary = f"{done}/{len(self.expect)} machines where they should be, {elapsed:.1f}s"
        if self.tty:
            header = (
                f"   {'hostname':<14} {'MAAS status':<21} {'maasflow phase':<34} "
                f"{'last action':<16} elapsed"
            )
            title = f"maasflow demo   (in another terminal: {self.hint})"
            screen = "\n".join([title, NOTE, header, *self._rows(elapsed), "", summary])
            self.out.write("\x1b[H\x1b[2J" + screen + "\n")
            self.out.flush()
            return
        if not self.last_line:
            print(f"maasflow demo: watch it with `{self.hint}`", file=self.out)
            print(NOTE, file=self.out)
        self._progress_lines(elapsed, summary, final=not pending)

    def _progress_lines(self, elapsed: float, summary: str, final: bool) -> None:
        for row in self._rows(elapsed):
            key = row.split()[1]
            state = " ".join(row.split()[:-1])
            if self.last_line.get(key) != state:
                self.last_line[key] = state
                print(f"[{elapsed:5.1f}s] {row[:-8].rstrip()}", file=self.out)
        if final:
            print(summary, file=self.out)
        self.out.flush()
