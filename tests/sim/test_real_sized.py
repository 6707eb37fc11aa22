"""On request the simulator serves machine objects the size of a real region's (~8.7 KB)."""

from __future__ import annotations

import json

from maasflow.sim import generate_machines
from maasflow.sim.events import EventLog
from maasflow.sim.world import World


def _machines(real_sized: bool) -> list[dict[str, object]]:
    world = World(1, EventLog(), real_sized=real_sized)
    return [json.loads(world.add(spec).to_json()) for spec in generate_machines(20, seed=1)]


def test_real_sized_machines_weigh_what_a_real_regions_do() -> None:
    """Default objects are ~6.5 KB; real-sized ones 8-9.5 KB, with a partitioned disk."""
    lean = [len(json.dumps(m, separators=(",", ":"))) for m in _machines(False)]
    real = _machines(True)
    sizes = [len(json.dumps(m, separators=(",", ":"))) for m in real]
    assert all(6_000 < size < 7_000 for size in lean)
    assert all(8_000 < size < 9_500 for size in sizes)
    disk = real[0]["blockdevice_set"][0]  # type: ignore[index]
    assert [p["filesystem"]["mount_point"] for p in disk["partitions"]] == ["/boot/efi", "/"]


def test_real_sized_changes_nothing_the_daemon_reads() -> None:
    """The fields a client reads are the same in both sizes; only the extras differ."""
    read = ("system_id", "hostname", "status", "zone", "pool", "interface_set", "boot_interface")
    lean, real = _machines(False), _machines(True)
    assert [[m[k] for k in read] for m in lean] == [[m[k] for k in read] for m in real]
