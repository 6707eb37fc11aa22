"""The SQLite provisioning store: records, restart recovery, schema versioning, backoff."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from maasflow.common.errors import ConfigError
from maasflow.daemon.store import INTERRUPTED, SCHEMA_VERSION, TEXT_LIMIT, Store, retry_delay


class Clock:
    """A settable wall clock."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> Iterator[Store]:
    db = Store(":memory:", clock=clock)
    yield db
    db.close()


def test_start_creates_a_running_record(store: Store, clock: Clock) -> None:
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


def test_restart_of_an_attempt_counts_and_keeps_the_last_error(store: Store, clock: Clock) -> None:
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


def test_complete_and_fail_record_their_evidence(store: Store, clock: Clock) -> None:
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


def test_finishing_a_cleared_record_writes_nothing(store: Store) -> None:
    """complete()/fail() after clear() return None and do not resurrect the record."""
    store.start("a", "n", "script")
    assert store.clear("a") is True
    assert store.complete("a", "late") is None
    assert store.fail("a", "late", "", 0.0) is None
    assert store.get("a") is None
    assert store.clear("a") is False


def test_all_lists_records_by_system_id(store: Store) -> None:
    """all() returns every record ordered by system_id."""
    for sid in ("c", "a", "b"):
        store.start(sid, sid.upper(), "url")
    assert [r.system_id for r in store.all()] == ["a", "b", "c"]


def test_unknown_mode_is_refused(store: Store) -> None:
    """start() refuses a mode other than script or url."""
    with pytest.raises(ValueError, match="mode"):
        store.start("a", "n", "ftp")


def test_records_survive_reopening_the_file(tmp_path: Path, clock: Clock) -> None:
    """A record written before close() is read back, unchanged, by a new Store on the file."""
    path = tmp_path / "deep" / "er" / "state.db"
    first = Store(path, clock=clock)
    first.start("abc", "node1", "script")
    written = first.complete("abc", "done")
    first.close()
    second = Store(path, clock=clock)
    assert second.get("abc") == written
    second.close()


def test_interrupted_scripts_become_due_failures(tmp_path: Path, clock: Clock) -> None:
    """After a crash, script runs left running are failed and due now; others are untouched."""
    path = tmp_path / "state.db"
    crashed = Store(path, clock=clock)
    crashed.start("script-running", "a", "script")
    crashed.start("url-running", "b", "url")
    crashed.start("script-done", "c", "script")
    crashed.complete("script-done", "ok")
    crashed.close()  # the daemon died here
    clock.now += 300
    restarted = Store(path, clock=clock)
    assert restarted.mark_interrupted_scripts() == 1
    record = restarted.get("script-running")
    assert record is not None
    assert (record.state, record.last_error, record.next_attempt_at) == (
        "failed",
        INTERRUPTED,
        clock.now,
    )
    assert [r.state for r in restarted.all()] == ["complete", "failed", "running"]
    restarted.close()


def test_file_store_uses_wal_and_versions_its_schema(tmp_path: Path) -> None:
    """A file store is in WAL mode and stamps PRAGMA user_version with the schema version."""
    path = tmp_path / "state.db"
    Store(path).close()
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    raw.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    """A state file from a newer maasflow is a ConfigError naming the file, not a guess."""
    path = tmp_path / "state.db"
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(ConfigError, match=r"state\.db.*newer"):
        Store(path)


def test_garbage_file_is_a_config_error(tmp_path: Path) -> None:
    """A file that is not SQLite is a ConfigError naming the file."""
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not a database at all, just sixteen+ bytes of text" * 20)
    with pytest.raises(ConfigError, match="not a maasflow database"):
        Store(path)


def test_unwritable_location_is_a_config_error(tmp_path: Path) -> None:
    """A state path whose parent cannot be created is a ConfigError naming the path."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="cannot open"):
        Store(blocker / "sub" / "state.db")


def test_concurrent_starts_lose_no_update(store: Store) -> None:
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


def test_retry_delay_doubles_then_caps() -> None:
    """At the top of its jitter the delay is base·2^(n-1), capped; at the bottom, half that."""
    assert [retry_delay(n, rand=lambda: 1.0) for n in (1, 2, 3, 4)] == [30.0, 60.0, 120.0, 240.0]
    assert retry_delay(50, rand=lambda: 1.0) == 3600.0
    assert retry_delay(3, rand=lambda: 0.0) == pytest.approx(60.0)
    assert retry_delay(0, rand=lambda: 1.0) == 30.0


@given(st.integers(min_value=-3, max_value=10_000), st.floats(min_value=0.0, max_value=1.0))
def test_retry_delay_is_bounded(attempts: int, jitter: float) -> None:
    """For any attempt count the delay stays within [nominal / 2, nominal] and never above cap."""
    delay = retry_delay(attempts, base=30.0, cap=3600.0, rand=lambda: jitter)
    nominal = min(3600.0, 30.0 * 2.0 ** min(max(attempts, 1) - 1, 62))
    assert 0.5 * nominal - 1e-9 <= delay <= nominal <= 3600.0


def test_reopening_a_current_file_writes_nothing(tmp_path: Path, clock: Clock) -> None:
    """Opening an up-to-date state file (as a preview does) leaves its bytes unchanged."""
    path = tmp_path / "state.db"
    db = Store(path, clock=clock)
    db.start("abc", "n", "script")
    db.close()
    before = path.read_bytes()
    Store(path, clock=clock).close()
    assert path.read_bytes() == before
