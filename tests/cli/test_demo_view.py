"""The demo's live view shows what MAAS and the daemon say escaped, on a terminal or not."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import pytest

from maasflow.daemon.lifecycle import Decision
from maasflow.daemon.maas.models import Machine
from maasflow.daemon.views import MachineViews
from maasflow.demo import LiveView
from maasflow.sim import MachineSpec, SimConfig, Simulator

HOSTILE = "web\x1b]0;owned\x07\u202e1"
RAW = ("\x1b]", "\x07", "\u202e", "\x00", "\u2028")
CLEAR = "\x1b[H\x1b[2J"  # the view's own screen refresh, the one escape it may write


@dataclass
class _Daemon:
    """The part of a daemon the view reads: its machine views."""

    views: MachineViews = field(default_factory=MachineViews)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("out", [io.StringIO(), _Terminal()], ids=["lines", "terminal"])
async def test_hostile_names_and_reasons_reach_the_demo_view_escaped(out: io.StringIO) -> None:
    """A hostname with an OSC sequence and a bidi override, and a NUL in a reason, show inert."""
    spec = MachineSpec(hostname=HOSTILE)
    sim = Simulator(SimConfig(seed=1, machines=[spec]))
    (sid,) = sim.machines
    daemon = _Daemon()
    seen = Machine(system_id=sid, hostname=HOSTILE, status=0)
    daemon.views.observed(seen, Decision(None, "waiting", "x\x00y\u2028z", entered=True), None)
    view = LiveView(sim, daemon, [spec], out, "maasflow status")  # type: ignore[arg-type]
    code, reason = await view.watch(timeout=0)
    shown = out.getvalue().replace(CLEAR, "") + reason
    assert code == 1
    assert not any(raw in shown for raw in RAW)
    assert "web\\x1b]0;owned\\x07\\u202e1" in shown
    assert "x\\x00y\\u2028z" in shown
