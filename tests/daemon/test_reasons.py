"""Why each machine is or is not progressing: the reason every view carries, MAAS's own error
text, the debug line logged once per change, and each machine's recorded history."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from structlog.testing import capture_logs

from maasflow.common.clock import FakeClock
from maasflow.common.errors import StoreError, TemporaryMaasError
from maasflow.daemon.loop import Daemon
from maasflow.daemon.selection import FilterSpec
from maasflow.daemon.store import Store


async def settle(daemon: Daemon) -> None:
    """Let every action started by the last pass finish."""
    for _ in range(20):
        await asyncio.sleep(0)
    await daemon.executor.drain(2)
    daemon.executor = type(daemon.executor)(4)


def reasons(daemon: Daemon, left_out: bool = False) -> dict[str, str]:
    return {r["hostname"]: r["reason"] for r in daemon.snapshot(left_out)["machines"]}


async def test_machines_left_alone_say_why(mk: Any, Fake: Any, make_daemon: Any) -> None:
    """Locked, another user's and quarantined machines show why maasflow leaves them alone."""
    fake = Fake(
        [
            mk("a", 4, hostname="locked", locked=True),
            mk("b", 10, hostname="theirs", owner="alice"),
            mk("c", 2, hostname="tagged", tag_names=["maasflow-quarantine"]),
            mk("d", 1, hostname="busy"),
        ]
    )
    daemon = make_daemon(fake)
    await daemon.identify(retry=False)
    await daemon.run_pass()
    assert reasons(daemon) == {
        "locked": "locked",
        "theirs": "owned by alice",
        "tagged": "quarantine tag set: hands off until it is removed",
        "busy": "Commissioning: waiting for MAAS",
    }


async def test_filtered_out_machines_are_listed_only_when_asked(
    mk: Any, Fake: Any, make_daemon: Any
) -> None:
    """A machine the filters leave out is listed only when asked, naming the filter; no action."""
    fake = Fake([mk("a", 4, hostname="in"), mk("b", 4, hostname="out", zone="lab")])
    daemon = make_daemon(fake, filters=FilterSpec.default())
    await daemon.identify(retry=False)
    await daemon.run_pass()
    await settle(daemon)
    assert set(reasons(daemon)) == {"in"}
    assert reasons(daemon, left_out=True)["out"] == "filtered out: zone 'lab' not included"
    (row,) = [r for r in daemon.snapshot(True)["machines"] if r["hostname"] == "out"]
    assert (row["selected"], row["phase"]) == (False, None)
    assert fake.ops() == [("allocate", "a")]
    assert daemon.views.phase_counts() == {"ready": 1}


async def test_an_action_in_flight_and_a_backoff_are_reasons(
    mk: Any, Fake: Any, make_daemon: Any
) -> None:
    """While its action runs a machine says so; after MAAS refuses it, when it is tried again."""
    fake = Fake([mk("a", 4, hostname="node")])
    fake.hold = asyncio.Event()
    daemon = make_daemon(fake, clock=FakeClock(wall=1_800_000_000.0))
    await daemon.identify(retry=False)
    await daemon.run_pass()
    await daemon.run_pass()
    assert reasons(daemon)["node"] == "allocate in flight"
    fake.errors["allocate"] = TemporaryMaasError("POST", "machines/a/", 503, "busy")
    fake.hold.set()
    await settle(daemon)
    await daemon.run_pass()
    setback = daemon.setbacks.get("a")
    assert setback is not None
    assert re.fullmatch(
        r"allocate backing off until 2027-01-15T\d\d:\d\d:\d\dZ \(1 failure\)",
        reasons(daemon)["node"],
    )


async def test_a_failed_machine_shows_maas_own_error_text(
    mk: Any, Fake: Any, make_daemon: Any
) -> None:
    """For Failed commissioning the view carries MAAS's error_description, else status_message."""
    fake = Fake(
        [
            mk("a", 2, hostname="f1", error_description="BMC unreachable: timed out"),
            mk("b", 11, hostname="f2", status_message="Failed deployment - curtin failed"),
            mk("c", 4, hostname="fine", status_message="Ready"),
        ]
    )
    daemon = make_daemon(fake)
    await daemon.identify(retry=False)
    await daemon.run_pass()
    errors = {r["hostname"]: r["maas_error"] for r in daemon.snapshot()["machines"]}
    assert errors == {
        "f1": "BMC unreachable: timed out",
        "f2": "Failed deployment - curtin failed",
        "fine": None,
    }


async def test_a_machine_left_alone_is_logged_at_debug_once_per_reason(
    mk: Any, Fake: Any, make_daemon: Any
) -> None:
    """The same reason pass after pass is one debug line; a new reason is one more."""
    fake = Fake([mk("a", 4, hostname="node", locked=True)])
    daemon = make_daemon(fake)
    await daemon.identify(retry=False)
    with capture_logs() as logs:
        for _ in range(3):
            await daemon.run_pass()
        fake.move("a", owner="bob", locked=False, status=10)
        await daemon.run_pass()
        await daemon.run_pass()
    alone = [e for e in logs if e["event"] == "machine left alone"]
    assert [(e["log_level"], e["reason"]) for e in alone] == [
        ("debug", "locked"),
        ("debug", "owned by bob"),
    ]
    assert alone[0]["system_id"] == "a" and alone[0]["hostname"] == "node"


async def test_each_action_and_its_answer_go_into_the_machine_history(
    mk: Any, Fake: Any, make_daemon: Any
) -> None:
    """An accepted and a refused action are both recorded, with MAAS's answer as the detail,
    written in one batch at the next pass."""
    store = Store(":memory:")
    fake = Fake([mk("a", 0, hostname="node", power_state="off")])
    daemon = make_daemon(fake, store=store)
    await daemon.identify(retry=False)
    await daemon.run_pass()
    await settle(daemon)
    fake.move("a", status=4)
    fake.errors["allocate"] = TemporaryMaasError("POST", "machines/", 503, "region busy")
    await daemon.run_pass()
    await settle(daemon)
    # Written in one batch per pass: the allocate is noted, and written by the next flush.
    assert [e.action for e in store.events("a")] == ["commission"]
    daemon.flush_history()
    events = [(e.kind, e.action, e.outcome) for e in store.events("a")]
    assert events == [("action", "commission", "ok"), ("action", "allocate", "failed")]
    assert "region busy" in store.events("a")[-1].detail
    doc = daemon.history("node")
    assert doc is not None and doc["machine"]["system_id"] == "a"
    assert [e["action"] for e in doc["events"]] == ["commission", "allocate"]
    assert daemon.history("nobody") is None


class RefusingHistory(Store):
    """A state file that refuses history writes while `refuse` is set."""

    refuse = True

    def add_events(self, events: Any) -> None:
        if self.refuse:
            raise StoreError("state file x: database or disk is full")
        super().add_events(events)


async def test_a_refused_history_write_is_reported_and_kept_for_the_next_pass(
    mk: Any, Fake: Any, make_daemon: Any
) -> None:
    """The store refusing the batch makes health say so; the events are written once it heals."""
    store = RefusingHistory(":memory:")
    fake = Fake([mk("a", 4, hostname="node")])
    daemon = make_daemon(fake, store=store)
    await daemon.identify(retry=False)
    await daemon.run_pass()
    await settle(daemon)
    await daemon.run_pass()
    assert daemon.health.check()[1] == "state store: state file x: database or disk is full"
    store.refuse = False
    await daemon.run_pass()
    assert [e.action for e in store.events("a")] == ["allocate"]
    assert "history" not in daemon.health.store_errors
