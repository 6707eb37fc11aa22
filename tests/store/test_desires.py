"""The stored-desire part of the store contract, run against every `ProvisionStore`.

Only the Protocol's methods and reopening are used, so SQLite and PostgreSQL are held to one
behaviour (tests/store/conftest.py's `store` and `open_store` run each test on both).
"""

from __future__ import annotations

from maasflow.daemon.store import ProvisionStore
from maasflow.daemon.stored_desire import BY_LIMIT, StoredDesire
from tests.store.conftest import Clock, OpenStore

READY = {"target": "ready", "release": {"quick_erase": True}}


def _stored(system_id: str, desire: dict[str, object], at: float = 1000.0) -> StoredDesire:
    return StoredDesire(system_id, f"host-{system_id}", desire, at, "cloud from 127.0.0.1")


def test_a_saved_desire_comes_back_field_for_field(store: ProvisionStore) -> None:
    """save_desire() then desires() answers the same machine, desire, time and author."""
    store.save_desire(_stored("b", READY))
    store.save_desire(_stored("a", {"distro_series": "jammy", "user_data": "#!/bin/sh\n"}))
    assert store.desires() == [
        _stored("a", {"distro_series": "jammy", "user_data": "#!/bin/sh\n"}),
        _stored("b", READY),
    ]


def test_a_second_save_replaces_the_first(store: ProvisionStore) -> None:
    """A machine has at most one stored desire: the newest replaces the older one whole."""
    store.save_desire(_stored("a", READY, at=1.0))
    store.save_desire(_stored("a", {"power": "off"}, at=2.0))
    assert store.desires() == [_stored("a", {"power": "off"}, at=2.0)]


def test_clear_desire_forgets_it_and_says_whether_there_was_one(store: ProvisionStore) -> None:
    """clear_desire() removes only that machine's desire; True once, then False."""
    store.save_desire(_stored("a", READY))
    store.save_desire(_stored("b", READY))
    assert store.clear_desire("a") is True
    assert store.clear_desire("a") is False
    assert [d.system_id for d in store.desires()] == ["b"]


def test_desires_survive_reopening(open_store: OpenStore, clock: Clock) -> None:
    """A desire saved before close() is read by a store opened later on the same database."""
    first = open_store(clock)
    first.save_desire(_stored("a", READY))
    first.close()
    assert open_store(clock).desires() == [_stored("a", READY)]


def test_a_long_author_is_clipped(store: ProvisionStore) -> None:
    """set_by is kept to its first BY_LIMIT characters."""
    store.save_desire(StoredDesire("a", "h", READY, 1.0, "x" * (BY_LIMIT + 50)))
    (kept,) = store.desires()
    assert kept.set_by == "x" * BY_LIMIT
