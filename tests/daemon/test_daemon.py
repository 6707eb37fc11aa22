"""The pass loop: one listing, one action per machine, single flight, backoff, restarts."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from maasflow.common.clock import FakeClock
from maasflow.common.errors import BadRequest, TemporaryMaasError
from maasflow.daemon.actions import Actuator
from maasflow.daemon.lifecycle import Action, ActionKind
from maasflow.daemon.loop import BACKOFF_CAP_S, Daemon
from maasflow.daemon.mappings import Mappings
from maasflow.daemon.provisioning import HttpProvisioner, ScriptProvisioner
from maasflow.daemon.selection import FilterSpec
from maasflow.daemon.store import Store
from maasflow.daemon.unseen_writes import LAG_S


def build(
    fake: Any,
    store: Store | None = None,
    provisioner: ScriptProvisioner | HttpProvisioner | None = None,
    **kw: Any,
) -> Daemon:
    actuator = Actuator(fake, store or Store(":memory:"), provisioner)  # type: ignore[arg-type]
    return Daemon(
        fake,  # type: ignore[arg-type]
        actuator,
        filters=kw.pop("filters", FilterSpec.load("{}", "test")),
        mappings=kw.pop("mappings", Mappings.load("{}", "test")),
        period=kw.pop("period", 1.0),
        **{"provision_existing": True, **kw},  # provision machines first seen Deployed
    )


async def settle(daemon: Daemon) -> None:
    for _ in range(20):
        await asyncio.sleep(0)
    await daemon.executor.drain(2)
    daemon.executor = type(daemon.executor)(4)


async def test_one_pass_lists_once_and_starts_one_action_per_machine(mk: Any, Fake: Any) -> None:
    """New+off is commissioned, New+on powered off, Ready allocated: one listing in all."""
    fake = Fake(
        [
            mk("a", 0, power_state="off"),
            mk("b", 0, power_state="on"),
            mk("c", 4),
            mk("d", 10, owner="maasflow"),
        ]
    )
    daemon = build(fake)
    await daemon.identify(retry=False)
    summary = await daemon.run_pass()
    await settle(daemon)
    assert [c for c in fake.calls if c[1] == "list"] == [("GET", "list", {})]
    assert sorted(fake.ops()) == [
        ("allocate", "c"),
        ("commission", "a"),
        ("deploy", "d"),
        ("power_off", "b"),
    ]
    assert summary.started == 4


async def test_a_machine_with_an_action_in_flight_is_skipped(mk: Any, Fake: Any) -> None:
    """While commissioning is still being sent, the next pass does not send it again."""
    fake = Fake([mk("a", 0)])
    fake.hold = asyncio.Event()
    daemon = build(fake)
    await daemon.identify(retry=False)
    await daemon.run_pass()
    await asyncio.sleep(0)
    second = await daemon.run_pass()
    assert second.started == 0
    fake.hold.set()
    await daemon.executor.drain(1)
    assert fake.ops() == [("commission", "a")]


async def test_an_action_that_ends_during_a_listing_is_not_repeated_from_it(
    mk: Any, Fake: Any
) -> None:
    """A listing asked for before the commission landed is stale for that machine: skip it.

    A listing asked for afterwards that still shows the machine unchanged is held back too
    until the settle bound runs out (see test_unseen_writes.py); then it is trusted again.
    """
    fake = Fake([mk("a", 0)])
    fake.hold = asyncio.Event()
    clock = FakeClock()
    daemon = build(fake, clock=clock)
    await daemon.identify(retry=False)
    await daemon.run_pass()
    await asyncio.sleep(0)
    fake.listing_gate = asyncio.Event()
    second = asyncio.create_task(daemon.run_pass())
    await asyncio.sleep(0)
    clock.advance(0.5)
    fake.hold.set()  # the commission ends while the second listing is on its way
    for _ in range(5):
        await asyncio.sleep(0)
    assert not daemon.executor.busy("a")
    fake.listing_gate.set()  # MAAS answers with the machine still New
    assert (await second).started == 0
    fake.listing_gate = None
    clock.advance(LAG_S)  # MAAS never showed the commission: it did not take
    await daemon.run_pass()  # a listing asked for afterwards is trusted again
    await daemon.executor.drain(1)
    assert fake.ops() == [("commission", "a"), ("commission", "a")]


async def test_machines_the_filter_rejects_are_never_touched(mk: Any, Fake: Any) -> None:
    """Out-of-zone machines produce no op and no flow."""
    fake = Fake([mk("a", 0, zone="lab-b"), mk("b", 0)])
    daemon = build(fake, filters=FilterSpec.load('{"zones": {"include": ["^default$"]}}', "t"))
    await daemon.identify(retry=False)
    summary = await daemon.run_pass()
    await settle(daemon)
    assert fake.ops() == [("commission", "b")]
    assert (summary.seen, summary.selected) == (2, 1)
    assert set(daemon.flows) == {"b"}


async def test_a_mapped_mac_renames_the_machine(mk: Any, Fake: Any) -> None:
    """A MAC in the mappings with another hostname leads to a PUT hostname=."""
    fake = Fake([mk("a", 0, hostname="rough-cat", mac="52:54:00:AA:BB:CC")])
    daemon = build(fake, mappings=Mappings.load('{"52-54-00-aa-bb-cc": "rack1-n1"}', "t"))
    await daemon.identify(retry=False)
    await daemon.run_pass()
    await settle(daemon)
    assert fake.calls[-1] == ("POST", "update", {"system_id": "a", "hostname": "rack1-n1"})


async def test_a_dotted_mapping_is_an_fqdn_and_already_matches(mk: Any, Fake: Any) -> None:
    """`node1.maas` maps to hostname node1 in domain maas: nothing to rename, commission."""
    fake = Fake([mk("a", 0, hostname="node1", fqdn="node1.maas", mac="52:54:00:aa:bb:cc")])
    daemon = build(fake, mappings=Mappings.load('{"52:54:00:aa:bb:cc": "node1.maas"}', "t"))
    await daemon.identify(retry=False)
    await daemon.run_pass()
    await settle(daemon)
    assert fake.ops() == [("commission", "a")]


async def test_a_name_maas_refuses_is_not_asked_again_and_blocks_nothing(
    mk: Any, Fake: Any
) -> None:
    """A 400 on the rename: the next pass commissions instead of PUTting the name again."""
    fake = Fake([mk("a", 0, hostname="rough-cat", mac="52:54:00:aa:bb:cc")])
    fake.fail_update = BadRequest("PUT", "machines/a/", 400, "hostname taken")
    clock = FakeClock()
    mappings = Mappings.load('{"52:54:00:aa:bb:cc": "node1"}', "t")
    daemon = build(fake, mappings=mappings, clock=clock)
    await daemon.identify(retry=False)
    for _ in range(3):  # this fake MAAS never moves: each commission "did not take"
        await passes(daemon, 1)
        clock.advance(LAG_S)
    assert fake.ops() == [("update", "a"), ("commission", "a"), ("commission", "a")]


async def test_a_failed_listing_backs_off_and_a_good_one_resets_it(mk: Any, Fake: Any) -> None:
    """Each failed pass doubles the wait (capped); health reports the reason."""
    fake = Fake([mk("a", 4)])
    daemon = build(fake, period=10.0, rand=lambda: 1.0)  # the top of the jitter: nominal
    fake.fail_listing = TemporaryMaasError("GET", "/machines/", None, "connection refused")
    for expected in (10.0, 20.0, 40.0):
        with pytest.raises(Exception, match="connection refused"):
            await daemon.run_pass()
        assert daemon.next_delay() == expected
    ok, reason = daemon.health.check(daemon.clock.time())
    assert not ok and "MAAS unreachable" in reason
    fake.fail_listing = None
    await daemon.identify(retry=False)
    await daemon.run_pass()
    assert daemon.next_delay() == 10.0
    assert daemon.health.check(daemon.clock.time())[0] is True
    await settle(daemon)


@pytest.mark.parametrize(("period", "cap"), [(10.0, BACKOFF_CAP_S), (900.0, 900.0)])
async def test_the_pass_backoff_is_jittered_down_to_half_and_capped(
    mk: Any, Fake: Any, period: float, cap: float
) -> None:
    """At the bottom of its jitter the wait is half the nominal one; it never passes the cap."""
    fake = Fake([mk("a", 4)])
    daemon = build(fake, period=period, rand=lambda: 0.0)
    fake.fail_listing = TemporaryMaasError("GET", "/machines/", None, "connection refused")
    waits = []
    for _ in range(12):
        with pytest.raises(TemporaryMaasError):
            await daemon.run_pass()
        waits.append(daemon.next_delay())
    assert waits[0] == period / 2
    assert waits == sorted(waits) and waits[-1] == cap / 2
    assert daemon.next_delay() == daemon.next_delay()  # drawn once per failure, not per call


def _script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "provision.sh"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


async def test_a_deployed_machine_is_provisioned_once_even_across_a_restart(
    tmp_path: Path, mk: Any, Fake: Any
) -> None:
    """The script runs once; a new daemon on the same store sees it Provisioned."""
    runs = tmp_path / "runs"
    script = _script(tmp_path, f'echo "$1" >> {runs}\n')
    db = tmp_path / "state.sqlite"
    fake = Fake([mk("a", 6, owner="maasflow")])
    for _ in range(2):
        store = Store(db)
        daemon = build(fake, store=store, provisioner=ScriptProvisioner(script, ttl=10))
        await daemon.identify(retry=False)
        await daemon.run_pass()
        await settle(daemon)
        await daemon.run_pass()
        view = daemon.views.get("a")
        assert view is not None and view.phase == "provisioned"
        store.close()
    assert runs.read_text().split() == ["a"]


async def test_snapshot_lists_selected_machines_with_their_last_action(mk: Any, Fake: Any) -> None:
    """`/state` shows phase, last action and outcome per machine."""
    fake = Fake([mk("a", 0, hostname="n1")])
    daemon = build(fake)
    await daemon.identify(retry=False)
    await daemon.run_pass()
    await settle(daemon)
    snap = daemon.snapshot()
    (row,) = snap["machines"]
    assert (row["hostname"], row["last_action"], row["last_outcome"]) == (
        "n1",
        "commission",
        "ok",
    )
    assert snap["pass"]["count"] == 1


async def test_stop_abandons_a_pass_still_waiting_for_maas(mk: Any, Fake: Any) -> None:
    """SIGTERM during a listing that MAAS keeps retrying ends the loop without waiting for it."""
    fake = Fake([mk("a", 0)])
    fake.listing_gate = asyncio.Event()  # MAAS never answers
    daemon = build(fake)
    stop = asyncio.Event()
    loop = asyncio.create_task(daemon.run(stop))
    while not fake.calls:
        await asyncio.sleep(0)
    assert daemon._pass_started is not None  # the pass is stuck in the listing
    stop.set()
    await asyncio.wait_for(loop, timeout=1)
    assert fake.ops() == []
    assert daemon._pass_started is None


async def test_provisioning_duration_is_measured_from_its_start(
    tmp_path: Path, mk: Any, Fake: Any
) -> None:
    """The metric counts the whole provisioning run, recorded with its outcome."""
    script = _script(tmp_path, "exit 0\n")
    now = [1000.0]
    store = Store(tmp_path / "s.sqlite", clock=lambda: now[0])
    daemon = build(
        Fake([mk("a", 6, owner="maasflow")]),
        store=store,
        provisioner=ScriptProvisioner(script, ttl=10),
    )
    daemon.actuator.clock = lambda: now[0] + 42.0
    await daemon.identify(retry=False)
    await daemon.run_pass()
    await settle(daemon)
    text = daemon.metrics.render()[0].decode()
    assert 'maasflow_provision_duration_seconds_sum{outcome="ok"} 42.0' in text


async def test_a_failed_provisioning_is_retried_only_after_its_backoff(
    tmp_path: Path, mk: Any, Fake: Any
) -> None:
    """Exit 1 records a failure; passes before the backoff ends run nothing; then it retries."""
    runs = tmp_path / "runs"
    script = _script(tmp_path, f"echo run >> {runs}\nexit 1\n")
    clock = FakeClock()
    store = Store(tmp_path / "s.sqlite", clock=clock.time)
    daemon = build(
        Fake([mk("a", 6, owner="maasflow")]),
        store=store,
        provisioner=ScriptProvisioner(script, ttl=10),
        clock=clock,
    )
    daemon.actuator.clock = clock.time
    await daemon.identify(retry=False)
    await daemon.run_pass()
    await settle(daemon)
    record = store.get("a")
    assert record is not None and record.state == "failed" and record.attempts == 1
    assert record.next_attempt_at is not None and record.next_attempt_at > clock.time()
    await daemon.run_pass()
    await settle(daemon)
    assert runs.read_text().count("run") == 1
    clock.advance(record.next_attempt_at + 1 - clock.time())
    await daemon.run_pass()
    await settle(daemon)
    assert runs.read_text().count("run") == 2
    again = store.get("a")
    assert again is not None and again.attempts == 2


class ScriptedProvisioner:
    """An HTTP provisioner's answers, scripted per GET; counts the POSTs it receives."""

    def __init__(self, gets: list[int]) -> None:
        self.gets = gets
        self.posts = 0
        self.methods: list[str] = []  # every request's method, in order

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.methods.append(request.method)
        if request.method == "POST":
            self.posts += 1
            return httpx.Response(202)
        return httpx.Response(self.gets.pop(0) if self.gets else 200)


def http_provisioner(answers: ScriptedProvisioner) -> HttpProvisioner:
    client = httpx.AsyncClient(transport=httpx.MockTransport(answers))
    return HttpProvisioner("http://127.0.0.1:9/provision/", ttl=600, client=client)


async def passes(daemon: Daemon, count: int) -> None:
    for _ in range(count):
        await daemon.run_pass()
        await settle(daemon)


async def test_a_provisioner_glitch_while_polling_never_posts_again(
    tmp_path: Path, mk: Any, Fake: Any
) -> None:
    """202, 500, 202, 200: the 500 is asked again next pass, not answered by a new POST."""
    answers = ScriptedProvisioner([202, 500, 202, 200])
    store = Store(tmp_path / "s.sqlite")
    daemon = build(
        Fake([mk("a", 6, owner="maasflow")]), store=store, provisioner=http_provisioner(answers)
    )
    await daemon.identify(retry=False)
    await passes(daemon, 6)
    assert answers.posts == 1
    record = store.get("a")
    assert record is not None and record.state == "complete"


async def test_a_restart_mid_job_polls_the_same_job_instead_of_posting(
    tmp_path: Path, mk: Any, Fake: Any
) -> None:
    """URL mode: a new daemon on the same store polls the job the old one submitted."""
    answers = ScriptedProvisioner([202, 202, 200])
    fake = Fake([mk("a", 6, owner="maasflow")])
    for _ in range(2):
        store = Store(tmp_path / "s.sqlite")
        daemon = build(fake, store=store, provisioner=http_provisioner(answers))
        await daemon.identify(retry=False)
        await passes(daemon, 2)
        store.close()
    assert answers.posts == 1
    assert answers.gets == []


async def test_an_action_that_waited_a_whole_period_for_a_slot_is_dropped(
    mk: Any, Fake: Any
) -> None:
    """With one slot held past a period, the queued commission is not sent on old news."""
    fake = Fake([mk("a", 0), mk("b", 0)])
    fake.hold = asyncio.Event()
    clock = FakeClock()
    daemon = build(fake, period=0.01, concurrency=1, clock=clock)
    await daemon.identify(retry=False)
    await daemon.run_pass()
    while not fake.ops():
        await asyncio.sleep(0)  # until one machine holds the only slot
    clock.advance(0.05)  # the other one waits longer than a period
    fake.hold.set()
    await daemon.executor.drain(1)
    assert len(fake.ops()) == 1
    skipped = [
        v for v in ("a", "b") if (view := daemon.views.get(v)) and view.last_outcome == "skipped"
    ]
    assert len(skipped) == 1


async def test_a_new_machine_whose_power_is_unknown_is_logged_once(mk: Any, Fake: Any) -> None:
    """No power type and no helper: one warning saying a human must act, not one per pass."""
    fake = Fake([mk("a", 0, power_state="unknown", power_type="")])
    daemon = build(fake)
    await daemon.identify(retry=False)
    with capture_logs() as logs:
        await passes(daemon, 3)
    warnings = [e for e in logs if e["event"] == "machine needs a human"]
    assert len(warnings) == 1
    assert "POWER_HELPER_SCRIPT" in warnings[0]["reason"]
    assert fake.ops() == []


async def test_a_job_the_provisioner_does_not_know_is_posted_again(
    tmp_path: Path, mk: Any, Fake: Any
) -> None:
    """URL mode: a 404 to GET <url>/<system_id> means no such job, so the daemon POSTs anew."""
    answers = ScriptedProvisioner([202, 404, 202, 200])
    store = Store(tmp_path / "s.sqlite")
    daemon = build(
        Fake([mk("a", 6, owner="maasflow")]), store=store, provisioner=http_provisioner(answers)
    )
    await daemon.identify(retry=False)
    await passes(daemon, 6)
    assert answers.methods == ["POST", "GET", "GET", "POST", "GET", "GET"]
    record = store.get("a")
    assert record is not None and record.state == "complete"


async def test_a_machine_gone_from_maas_loses_its_flow_and_bookkeeping(mk: Any, Fake: Any) -> None:
    """Once MAAS no longer lists it, a machine has no flow, no row in /state and no memory."""
    fake = Fake([mk("a", 0, hostname="rough-cat", mac="52:54:00:aa:bb:cc"), mk("b", 4)])
    fake.fail_update = BadRequest("PUT", "machines/a/", 400, "hostname taken")
    daemon = build(fake, mappings=Mappings.load('{"52:54:00:aa:bb:cc": "node1"}', "t"))
    await daemon.identify(retry=False)
    await passes(daemon, 1)
    assert set(daemon.flows) == {"a", "b"}
    gone = fake.machines.pop("a")
    await passes(daemon, 1)
    assert set(daemon.flows) == {"b"}
    assert daemon.views.get("a") is None
    assert [row["system_id"] for row in daemon.snapshot()["machines"]] == ["b"]
    fake.machines["a"] = gone  # it comes back (re-enlisted): nothing remembered, not even
    fake.calls.clear()  # the name MAAS refused, which is asked for again
    await passes(daemon, 1)
    assert ("update", "a") in fake.ops()


async def test_a_machine_gone_while_its_action_runs_is_dropped_once_the_action_ends(
    mk: Any, Fake: Any
) -> None:
    """The flow of a machine with an action in flight outlives its listing until it is done."""
    fake = Fake([mk("a", 0)])
    fake.hold = asyncio.Event()
    daemon = build(fake)
    await daemon.identify(retry=False)
    await daemon.run_pass()
    del fake.machines["a"]
    await daemon.run_pass()
    assert set(daemon.flows) == {"a"}
    fake.hold.set()
    await daemon.executor.drain(1)
    await daemon.run_pass()
    assert daemon.flows == {}
    assert daemon.views.get("a") is None


async def test_a_failed_machine_is_logged_and_counted_once_per_entry(mk: Any, Fake: Any) -> None:
    """Failed deployment over three passes: one warning, one phase entry counted, no resync."""
    fake = Fake([mk("a", 11, owner="maasflow", status_name="Failed deployment")])
    daemon = build(fake)
    await daemon.identify(retry=False)
    with capture_logs() as logs:
        await passes(daemon, 3)
    warnings = [e for e in logs if e["event"] == "machine needs a human"]
    assert [(w["system_id"], w["phase"], w["status"]) for w in warnings] == [
        ("a", "failed", "Failed deployment")
    ]
    registry = daemon.metrics.registry
    assert registry.get_sample_value("maasflow_phase_entries_total", {"phase": "failed"}) == 1
    assert not [e for e in logs if e["event"] == "flow.resync"]


async def test_a_machine_released_behind_the_daemons_back_is_a_logged_resync(
    mk: Any, Fake: Any
) -> None:
    """Deployed, then Ready at the next pass (released in the UI): one flow.resync line, counted."""
    fake = Fake([mk("a", 6, owner="maasflow", status_name="Deployed")])
    daemon = build(fake)
    await daemon.identify(retry=False)
    await passes(daemon, 1)
    fake.machines["a"] = mk("a", 4, status_name="Ready")
    with capture_logs() as logs:
        await passes(daemon, 2)
    resyncs = [e for e in logs if e["event"] == "flow.resync"]
    assert [(e["from_phase"], e["to_phase"], e["status"]) for e in resyncs] == [
        ("deployed", "ready", "Ready")
    ]
    assert resyncs[0]["system_id"] == "a" and resyncs[0]["log_level"] == "info"
    labels = {"from_phase": "deployed", "to_phase": "ready"}
    assert daemon.metrics.registry.get_sample_value("maasflow_resyncs_total", labels) == 1
    assert ("allocate", "a") in fake.ops()  # the decision itself stays level-triggered


async def test_a_move_along_the_table_is_no_resync(mk: Any, Fake: Any) -> None:
    """Ready, then Allocated to us: entries counted for both phases, nothing logged as resync."""
    fake = Fake([mk("a", 4)])
    daemon = build(fake)
    await daemon.identify(retry=False)
    with capture_logs() as logs:
        await passes(daemon, 1)
        fake.machines["a"] = mk("a", 10, owner="maasflow")
        await passes(daemon, 1)
    assert not [e for e in logs if e["event"] in ("flow.resync", "machine needs a human")]
    entries = daemon.metrics.registry.get_sample_value
    assert entries("maasflow_phase_entries_total", {"phase": "ready"}) == 1
    assert entries("maasflow_phase_entries_total", {"phase": "allocated"}) == 1


async def test_decide_without_a_listener_logs_and_counts_nothing(mk: Any, Fake: Any) -> None:
    """Daemon.decide alone (what -preview calls) enters phases silently: no log, no metric."""
    fake = Fake([mk("a", 11, owner="maasflow")])
    daemon = build(fake)
    await daemon.identify(retry=False)
    with capture_logs() as logs:
        decision = daemon.decide(fake.machines["a"], {})
    assert (decision.phase, decision.entered) == ("failed", True)
    assert logs == []
    labels = {"phase": "failed"}
    assert daemon.metrics.registry.get_sample_value("maasflow_phase_entries_total", labels) is None


async def test_the_actuator_refuses_a_kind_outside_the_vocabulary(mk: Any, Fake: Any) -> None:
    """Every ActionKind has an operation; a kind that is not one is refused before any call."""
    fake = Fake([mk("a", 4)])
    actuator = build(fake).actuator
    assert set(actuator._ops) == set(ActionKind)
    with pytest.raises(ValueError, match="'reboot'"):
        await actuator.perform(fake.machines["a"], Action("reboot"))  # type: ignore[arg-type]
    assert fake.calls == []
