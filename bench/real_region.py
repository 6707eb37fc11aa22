"""A simulated region of real-sized machines in its own process, for the listing benchmarks.

`python bench/real_region.py N` serves N real-sized machine objects (`SimConfig.real_sized`,
~8.5 KB each, as a real region's listing) on 127.0.0.1, all in states that need no action
from the daemon (Deployed by the admin with no provisioning configured, someone else's,
locked, failed, broken, another zone), prints one line "URL KEY" on its stdout (a pipe to
its parent; never on a command line), and serves until its stdin closes. `RealRegion(N)`
starts it as a child and reads that line; the benchmarks use it so the server never shares
a process (or a GIL) with what is measured.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import TracebackType

ADMIN = "admin"
# (share of the region, spec fields): every one needs no action from the daemon.
MIX: list[tuple[float, dict[str, object]]] = [
    (0.70, {"status": 6, "owner": ADMIN, "power_state": "on"}),
    (0.10, {"status": 6, "owner": "someone-else", "power_state": "on"}),
    (0.05, {"status": 4, "locked": True}),
    (0.05, {"status": 2}),
    (0.05, {"status": 8}),
    (0.05, {"zone": "lab-b"}),
]


def serve(count: int) -> None:
    from maasflow.common.logs import configure_logging
    from maasflow.sim import MachineSpec, SimConfig, SimulatorThread

    configure_logging("error", "text")
    specs: list[MachineSpec] = []
    for share, fields in MIX:
        for _ in range(round(count * share)):
            index = len(specs) + 1
            mac = f"52:54:00:{index >> 16 & 0xFF:02x}:{index >> 8 & 0xFF:02x}:{index & 0xFF:02x}"
            spec = MachineSpec(hostname=f"node-{index:05d}", macs=[mac])
            for name, value in fields.items():
                setattr(spec, name, value)
            specs.append(spec)
    config = SimConfig(seed=1, machines=specs[:count], zones=["default", "lab-b"], real_sized=True)
    with SimulatorThread(config, timeout=300) as sim:
        print(sim.url, sim.admin_key, flush=True)
        sys.stdin.read()


class RealRegion:
    """The region as a child process: `url` and `key` once it answers."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.url = self.key = ""
        self._child: subprocess.Popen[str] | None = None

    def __enter__(self) -> RealRegion:
        self._child = subprocess.Popen(
            [sys.executable, str(Path(__file__)), str(self.count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._child.stdout is not None
        self.url, self.key = self._child.stdout.readline().split()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._child is not None and self._child.stdin is not None
        self._child.stdin.close()
        try:
            self._child.wait(30)
        except subprocess.TimeoutExpired:
            self._child.kill()
            self._child.wait()


if __name__ == "__main__":
    serve(int(sys.argv[1]))
