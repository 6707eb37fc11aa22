"""The provisioning-store contract, run against every implementation of `ProvisionStore`.

Only the Protocol's methods, a clock and reopening are used here, so the same tests hold a
PostgreSQL store to the same behaviour as the SQLite one (see conftest.py for how one joins).
"""

from __future__ import annotations

import threading

import pytest

from maasflow.common.supervision import RunHandle
from maasflow.daemon.adoption import Sighting
from maasflow.daemon.history import DETAIL_LIMIT, HISTORY_LIMIT, Event, EventKind
from maasflow.daemon.retry_budget import Recovery
from maasflow.daemon.setbacks import Setback
from maasflow.daemon.store import TEXT_LIMIT, ProvisionStore
from tests.store.conftest import Clock, OpenStore

RUN = RunHandle(pid=4242, pgid=4242, start_ticks=123456, result_file="/state/runs/x.json")


def test_start_creates_a_running_record(store: ProvisionStore, clock: Clock) -> None:
    """start() records a running first attempt with its hostname, mode and start time."""
    record = store.start("abc", "node1", "script")
    assert (record.state, record.mode, record.attempts, record.hostname) == (
        "running",
        "script",
        1,
        "node1",
    )
    assert record.started_at == record.updated_at == clock.now
    assert record.finished_at is None and record.next_attempt_at is None
    assert store.get("abc") == record


def test_restart_of_an_attempt_counts_and_keeps_the_last_error(
    store: ProvisionStore, clock: Clock
) -> None:
    """A second start() increments attempts, resets timing fields and keeps the last error."""
    store.start("abc", "node1", "url")
    store.fail("abc", "boom", "tail", next_attempt_at=clock.now + 30)
    clock.now += 60
    record = store.start("abc", "node1-renamed", "url")
    assert (record.attempts, record.state, record.last_error) == (2, "running", "boom")
    assert (record.started_at, record.finished_at, record.next_attempt_at) == (
        clock.now,
        None,
        None,
    )
    assert (record.output_tail, record.hostname) == ("", "node1-renamed")


def test_complete_and_fail_record_their_evidence(store: ProvisionStore, clock: Clock) -> None:
    """complete() and fail() set the state, finish time, error, tail and next attempt."""
    store.start("a", "n", "script")
    clock.now += 5
    done = store.complete("a", "all good\n")
    assert done is not None
    assert (done.state, done.finished_at, done.output_tail, done.last_error) == (
        "complete",
        clock.now,
        "all good\n",
        "",
    )
    store.start("b", "n", "script")
    failed = store.fail("b", "exit 3", "x" * (TEXT_LIMIT + 10) + "END", clock.now + 90)
    assert failed is not None
    assert (failed.state, failed.last_error, failed.next_attempt_at) == (
        "failed",
        "exit 3",
        clock.now + 90,
    )
    assert len(failed.output_tail) == TEXT_LIMIT and failed.output_tail.endswith("END")


def test_a_long_error_keeps_its_end(store: ProvisionStore, clock: Clock) -> None:
    """fail() keeps the last TEXT_LIMIT characters of the error, where it explains itself."""
    store.start("a", "n", "url")
    failed = store.fail("a", "e" * TEXT_LIMIT + "the cause", "", clock.now)
    assert failed is not None
    assert len(failed.last_error) == TEXT_LIMIT and failed.last_error.endswith("the cause")


def test_finishing_a_cleared_record_writes_nothing(store: ProvisionStore) -> None:
    """complete()/fail() after clear() return None and do not resurrect the record."""
    store.start("a", "n", "script")
    assert store.clear("a") is True
    assert store.complete("a", "late") is None
    assert store.fail("a", "late", "", 0.0) is None
    assert store.get("a") is None
    assert store.clear("a") is False


def test_an_empty_store_has_nothing_to_say(store: ProvisionStore) -> None:
    """A new store lists nothing, finds nothing, clears nothing and records no run."""
    assert (store.all(), store.get("a"), store.clear("a")) == ([], None, False)
    assert store.set_run("a", RUN) is None


def test_all_lists_records_by_system_id(store: ProvisionStore) -> None:
    """all() returns every record ordered by system_id."""
    for sid in ("c", "a", "b"):
        store.start(sid, sid.upper(), "url")
    assert [r.system_id for r in store.all()] == ["a", "b", "c"]


def test_unknown_mode_is_refused(store: ProvisionStore) -> None:
    """start() refuses a mode other than script or url, and records nothing."""
    with pytest.raises(ValueError, match="mode"):
        store.start("a", "n", "ftp")
    assert store.get("a") is None


def test_records_survive_reopening(open_store: OpenStore, clock: Clock) -> None:
    """A record written before close() is read back, unchanged, by a new store on the database."""
    first = open_store(clock)
    first.start("abc", "node1", "script")
    written = first.complete("abc", "done")
    first.close()
    second = open_store(clock)
    assert second.get("abc") == written


def test_a_script_run_a_crash_left_running_is_found_after_reopening(
    open_store: OpenStore, clock: Clock
) -> None:
    """The run recorded for a running attempt is read back, whole, by a restarted store."""
    crashed = open_store(clock)
    crashed.start("script-running", "a", "script")
    recorded = crashed.set_run("script-running", RUN)
    crashed.start("url-running", "b", "url")
    crashed.close()  # the daemon died here
    restarted = open_store(clock)
    record = restarted.get("script-running")
    assert record is not None and record == recorded
    assert (record.state, record.run) == ("running", RUN)
    assert [(r.state, r.run) for r in restarted.all()] == [("running", RUN), ("running", None)]


def test_a_new_attempt_or_its_end_forgets_the_run(store: ProvisionStore, clock: Clock) -> None:
    """start(), complete() and fail() drop the recorded run: it belonged to the last attempt."""
    store.start("a", "n", "script")
    store.set_run("a", RUN)
    again = store.start("a", "n", "script")
    assert again.run is None and again.run_file == ""
    store.set_run("a", RUN)
    done = store.complete("a", "ok")
    assert done is not None and done.run is None
    store.start("a", "n", "script")
    store.set_run("a", RUN)
    failed = store.fail("a", "boom", "", clock.now)
    assert failed is not None and failed.run is None


def test_a_run_is_only_recorded_for_a_running_attempt(store: ProvisionStore) -> None:
    """set_run() on a finished or cleared record writes nothing."""
    store.start("a", "n", "script")
    store.complete("a", "ok")
    finished = store.set_run("a", RUN)
    assert finished is not None and finished.run is None
    store.clear("a")
    assert store.set_run("a", RUN) is None and store.get("a") is None


def test_a_deploy_id_is_given_once_and_kept_for_every_attempt(
    store: ProvisionStore, clock: Clock
) -> None:
    """The first start() names the deploy; retries keep the name; only clear() forgets it."""
    first = store.start("a", "n", "url")
    store.fail("a", "lost answer", "", clock.now)
    second = store.start("a", "n", "url")
    store.complete("a", "")
    other = store.start("b", "n", "url")
    assert len(first.deploy_id) >= 16 and first.deploy_id == second.deploy_id
    assert other.deploy_id != first.deploy_id
    store.clear("a")
    redeploy = store.start("a", "n", "url")
    assert redeploy.deploy_id not in ("", first.deploy_id) and redeploy.attempts == 1


def test_concurrent_starts_lose_no_update(store: ProvisionStore) -> None:
    """start() from several threads at once counts every attempt exactly."""

    def hammer() -> None:
        for _ in range(50):
            store.start("abc", "n", "url")

    threads = [threading.Thread(target=hammer) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    record = store.get("abc")
    assert record is not None and record.attempts == 300


def test_two_stores_on_one_database_share_their_records(
    open_store: OpenStore, clock: Clock
) -> None:
    """Two stores open on one database at once (two processes, two hosts) lose no update."""
    stores = [open_store(clock), open_store(clock)]

    def hammer(store: ProvisionStore) -> None:
        for _ in range(40):
            store.start("abc", "n", "url")

    threads = [threading.Thread(target=hammer, args=(s,)) for s in stores for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert stores[0].get("abc") == stores[1].get("abc")
    record = stores[0].get("abc")
    assert record is not None and record.attempts == 160
    assert stores[1].clear("abc") is True and stores[0].get("abc") is None


def test_setbacks_are_kept_replaced_and_cleared(open_store: OpenStore, clock: Clock) -> None:
    """A saved setback is read back after reopening, a second save replaces it, clear forgets."""
    first = open_store(clock)
    first.save_setback(Setback("a", "deploy", 1, clock.now + 30, "HTTP 503"))
    first.save_setback(Setback("b", "commission", 2, clock.now + 60, "e" * TEXT_LIMIT + "end"))
    first.save_setback(Setback("a", "deploy", 2, clock.now + 90, "HTTP 409"))
    first.close()
    second = open_store(clock)
    kept = sorted(second.setbacks(), key=lambda s: s.system_id)
    assert kept[0] == Setback("a", "deploy", 2, clock.now + 90, "HTTP 409")
    assert len(kept[1].last_error) == TEXT_LIMIT and kept[1].last_error.endswith("end")
    second.clear_setback("a")
    assert [s.system_id for s in second.setbacks()] == ["b"]


def test_retry_counts_are_kept_replaced_and_cleared(open_store: OpenStore, clock: Clock) -> None:
    """A saved retry count (and quarantine) survives reopening; a save replaces; clear forgets."""
    first = open_store(clock)
    first.save_recovery(Recovery("a", 1, quarantined=False))
    first.save_recovery(Recovery("a", 3, quarantined=True))
    first.save_recovery(Recovery("b", 1, quarantined=False))
    first.close()
    second = open_store(clock)
    assert sorted(second.recoveries(), key=lambda r: r.system_id) == [
        Recovery("a", 3, quarantined=True),
        Recovery("b", 1, quarantined=False),
    ]
    second.clear_recovery("b")
    assert second.recoveries() == [Recovery("a", 3, quarantined=True)]


def test_first_sightings_are_kept_and_replaced(open_store: OpenStore, clock: Clock) -> None:
    """A saved sighting survives reopening, and a second save for the machine replaces it."""
    first = open_store(clock)
    assert first.sightings() == []
    first.save_sighting(Sighting("a", 6, clock.now, adopted=True))
    first.save_sighting(Sighting("b", 0, clock.now + 1, adopted=False))
    first.save_sighting(Sighting("a", 6, clock.now, adopted=False))
    first.close()
    second = open_store(clock)
    assert sorted(second.sightings(), key=lambda s: s.system_id) == [
        Sighting("a", 6, clock.now, adopted=False),
        Sighting("b", 0, clock.now + 1, adopted=False),
    ]


# -- machines' histories and an operator's retry ----------------------------------------------


def _event(system_id: str, n: int, detail: str = "") -> Event:
    return Event(
        system_id, f"host-{system_id}", 1000.0 + n, EventKind.ACTION, "deploy", "ok", detail
    )


def test_events_come_back_oldest_first_per_machine(store: ProvisionStore) -> None:
    """events() answers one machine's events in the order they were added, and no other's."""
    for n in range(3):
        store.add_events([_event("a", n), _event("b", n)])
    assert [e.at for e in store.events("a")] == [1000.0, 1001.0, 1002.0]
    assert {e.system_id for e in store.events("a")} == {"a"}
    assert [e.at for e in store.events("a", limit=2)] == [1001.0, 1002.0]
    assert store.events("nobody") == []
    store.add_events([])  # nothing to write is fine


def test_histories_answer_every_machines_events_by_machine_oldest_first(
    store: ProvisionStore,
) -> None:
    """histories() holds every kept event once: grouped by system_id, in the order added."""
    store.add_events([_event("b", 0), _event("a", 1)])
    store.add_events([_event("b", 2), _event("a", 3)])
    assert [(e.system_id, e.at) for e in store.histories()] == [
        ("a", 1001.0), ("a", 1003.0), ("b", 1000.0), ("b", 1002.0)
    ]  # fmt: skip


def test_a_history_keeps_only_the_newest_events(store: ProvisionStore) -> None:
    """Past HISTORY_LIMIT events (in one batch or several) a machine's oldest are dropped;
    other machines keep theirs."""
    store.add_events([_event("other", 0)])
    store.add_events([_event("a", n) for n in range(HISTORY_LIMIT + 2)])
    for n in range(HISTORY_LIMIT + 2, HISTORY_LIMIT + 7):
        store.add_events([_event("a", n)])
    kept = store.events("a", limit=HISTORY_LIMIT * 2)
    assert len(kept) == HISTORY_LIMIT
    assert kept[0].at == 1007.0 and kept[-1].at == 1000.0 + HISTORY_LIMIT + 6
    assert len(store.events("other")) == 1


def test_an_event_keeps_the_end_of_a_long_detail(store: ProvisionStore) -> None:
    """An event's detail is clipped to its last DETAIL_LIMIT characters."""
    store.add_events([_event("a", 0, "x" * DETAIL_LIMIT + "the cause")])
    (event,) = store.events("a")
    assert len(event.detail) == DETAIL_LIMIT and event.detail.endswith("the cause")
    assert (event.hostname, event.kind, event.action, event.outcome) == (
        "host-a",
        "action",
        "deploy",
        "ok",
    )


def test_events_survive_reopening(open_store: OpenStore, clock: Clock) -> None:
    """A history written before close() is read by a store opened later on the same database."""
    first = open_store(clock)
    first.add_events([_event("a", 0, "MAAS said 503")])
    first.close()
    assert [e.detail for e in open_store(clock).events("a")] == ["MAAS said 503"]


def test_retry_now_makes_a_failed_record_due_and_keeps_its_deploy(
    store: ProvisionStore, clock: Clock
) -> None:
    """retry_now() moves a failed record's next attempt to now, keeping attempts and deploy id."""
    started = store.start("a", "n", "url")
    store.fail("a", "boom", "", next_attempt_at=clock.now + 3600)
    clock.now += 10
    record = store.retry_now("a")
    assert record is not None
    assert (record.state, record.next_attempt_at, record.attempts) == ("failed", clock.now, 1)
    assert (record.deploy_id, record.last_error) == (started.deploy_id, "boom")


def test_retry_now_leaves_other_records_alone(store: ProvisionStore) -> None:
    """retry_now() writes nothing for a running, complete or missing record."""
    running = store.start("run", "n", "script")
    store.start("done", "n", "script")
    done = store.complete("done", "")
    assert store.retry_now("run") is None and store.retry_now("done") is None
    assert store.retry_now("missing") is None
    assert (store.get("run"), store.get("done")) == (running, done)


def test_applied_deploy_parameters_are_kept_and_replaced(
    open_store: OpenStore, clock: Clock
) -> None:
    """Saved deploy parameters survive reopening, and a second save for a machine replaces them."""
    first = open_store(clock)
    assert first.applied_deploys() == {}
    first.save_applied("a", {"distro_series": "jammy"})
    first.save_applied("b", {})
    first.save_applied("a", {"distro_series": "ubuntu/noble", "install_kvm": "true"})
    first.close()
    second = open_store(clock)
    assert second.applied_deploys() == {
        "a": {"distro_series": "ubuntu/noble", "install_kvm": "true"},
        "b": {},
    }


def test_the_event_cursor_is_kept_replaced_and_survives_reopening(
    open_store: OpenStore, clock: Clock
) -> None:
    """A store holds one event cursor: none at first, the last one saved after that, and
    the same in a store opened afterwards on the same database."""
    store = open_store(clock)
    assert store.event_cursor() is None
    store.save_event_cursor(5)
    store.save_event_cursor(2**40)  # MAAS's ids are PostgreSQL bigints
    assert store.event_cursor() == 2**40
    assert open_store(clock).event_cursor() == 2**40
