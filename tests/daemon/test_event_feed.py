"""`EventFeed` on a fake event log: when a full listing is due, how the cursor moves and is
stored, and what an unreadable log does (plain polling, never a listing storm)."""

from __future__ import annotations

from structlog.testing import capture_logs

from maasflow.common.clock import FakeClock
from maasflow.common.errors import MaasError, StoreError, TemporaryMaasError
from maasflow.daemon.event_feed import MAX_PAGES, EventFeed, Relist
from maasflow.daemon.maas.event_log import EventPage, LoggedEvent
from maasflow.daemon.store import Store


class FakeLog:
    """An event log: (id, node) pairs; `after` answers the oldest `limit` newer ones."""

    def __init__(self, events: list[tuple[int, str]]) -> None:
        self.events = events
        self.asked: list[tuple[int | None, int]] = []
        self.error: MaasError | None = None

    async def query(self, after: int | None, limit: int) -> EventPage:
        self.asked.append((after, limit))
        if self.error is not None:
            raise self.error
        if after is None:
            chosen = self.events[-limit:]
        else:
            chosen = [e for e in self.events if e[0] > after][:limit]
        return EventPage(tuple(LoggedEvent(i, node) for i, node in chosen))


class BrokenStore:
    def event_cursor(self) -> int | None:
        raise StoreError("disk full")

    def save_event_cursor(self, cursor: int) -> None:
        raise StoreError("disk full")


def _down() -> TemporaryMaasError:
    return TemporaryMaasError("GET", "events/", 503, "busy")


async def test_a_full_listing_is_due_first_and_then_not_until_the_interval() -> None:
    """First a full listing; after it, none until `relist_s` has passed."""
    clock, log = FakeClock(), FakeLog([(1, "a")])
    feed = EventFeed(log.query, relist_s=100, clock=clock)
    assert feed.full_due() is Relist.START
    await feed.before_full_listing()
    assert feed.full_due() is None and feed.cursor == 1
    clock.advance(50)
    assert await feed.changes() == set()
    clock.advance(50)
    assert feed.full_due() is Relist.SCHEDULE


async def test_changes_name_the_machines_of_new_events_and_move_the_cursor() -> None:
    """Events after the cursor name their machines once; the cursor moves past them and is
    stored, so the next look starts after them."""
    log = FakeLog([(1, "a")])
    store = Store(":memory:")
    feed = EventFeed(log.query, store=store, clock=FakeClock())
    await feed.before_full_listing()
    log.events += [(2, "b"), (5, "c"), (7, "b"), (9, "")]
    assert await feed.changes() == {"b", "c"}
    assert feed.cursor == 9 == store.event_cursor()
    assert await feed.changes() == set()
    assert log.asked[-1] == (9, 1000)


async def test_full_pages_are_followed_until_a_short_one() -> None:
    """A full page means more may wait: the feed asks again from the page's newest id."""
    log = FakeLog([])
    feed = EventFeed(log.query, clock=FakeClock(), page=2)
    await feed.before_full_listing()
    log.events += [(i, f"m{i}") for i in range(1, 6)]
    assert await feed.changes() == {f"m{i}" for i in range(1, 6)}
    assert [after for after, _ in log.asked[1:]] == [0, 2, 4]


async def test_more_events_than_the_feed_catches_up_on_bring_a_full_listing() -> None:
    """More than MAX_PAGES full pages in one look: a full listing is cheaper, and due."""
    log = FakeLog([])
    feed = EventFeed(log.query, clock=FakeClock(), page=1)
    await feed.before_full_listing()
    log.events += [(i, "m") for i in range(1, MAX_PAGES + 2)]
    assert await feed.changes() is None
    assert feed.full_due() is Relist.FLOOD


async def test_an_unreadable_log_means_plain_polling_a_full_listing_each_period() -> None:
    """An error reading the log makes a full listing due, but never sooner than `min_full_s`
    after the last one: with the log down the daemon polls as with `-events off`."""
    clock, log = FakeClock(), FakeLog([(1, "a")])
    feed = EventFeed(log.query, min_full_s=15, clock=clock)
    await feed.before_full_listing()
    log.error = _down()
    assert await feed.changes() is None
    assert feed.full_due() is None and feed.waiting()
    clock.advance(15)
    assert feed.full_due() is Relist.ERROR
    await feed.before_full_listing()  # still down: the listing goes ahead, the next waits
    assert feed.full_due() is None and feed.waiting()
    log.error = None
    clock.advance(15)
    await feed.before_full_listing()
    assert feed.full_due() is None and not feed.waiting()


async def test_a_restart_warns_when_maas_is_behind_the_stored_cursor() -> None:
    """A stored cursor above MAAS's newest id (a restored MAAS) is said once, in a warning;
    the feed follows MAAS's newest id."""
    store = Store(":memory:")
    store.save_event_cursor(900)
    feed = EventFeed(FakeLog([(1, "a"), (40, "b")]).query, store=store, clock=FakeClock())
    with capture_logs() as logs:
        await feed.before_full_listing()
    assert feed.cursor == 40 == store.event_cursor()
    (warning,) = [e for e in logs if e["log_level"] == "warning"]
    assert warning["stored_cursor"] == 900 and warning["newest"] == 40


async def test_a_store_that_fails_costs_a_warning_not_the_feed() -> None:
    """A state store that cannot keep the cursor is warned about; events are still followed."""
    log = FakeLog([(1, "a")])
    feed = EventFeed(log.query, store=BrokenStore(), clock=FakeClock())
    with capture_logs() as logs:
        await feed.before_full_listing()
        log.events.append((2, "b"))
        assert await feed.changes() == {"b"}
    assert feed.cursor == 2
    assert any("cursor" in e["event"] for e in logs if e["log_level"] == "warning")
