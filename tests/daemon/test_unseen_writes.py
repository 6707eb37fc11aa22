"""`UnseenWrites`: a write MAAS accepted holds its machine until a later listing shows it."""

from __future__ import annotations

from typing import Any

from maasflow.daemon.unseen_writes import LAG_S, SETTLE_S, UnseenWrites


def test_a_listing_asked_for_before_the_answer_never_counts(mk: Any) -> None:
    """Even a changed machine in a listing older than the answer is held (it may be a race)."""
    unseen = UnseenWrites()
    unseen.wrote(mk("m", 0, power_state="on"), "power_off", answered_at=10.0)
    assert unseen.holds(mk("m", 0, power_state="off"), listed_at=9.0, now=11.0)


def test_a_later_listing_that_shows_a_change_releases_the_machine(mk: Any) -> None:
    """Any change of what a write can change (status, power, name, owner, tags...) counts."""
    before = mk("m", 0, power_state="on")
    for change in ({"power_state": "off"}, {"status": 1}, {"hostname": "x"}, {"tag_names": ["t"]}):
        unseen = UnseenWrites()
        unseen.wrote(before, "power_off", answered_at=10.0)
        assert not unseen.holds(before.model_copy(update=change), 11.0, 12.0)
        assert len(unseen) == 0


def test_an_unchanged_machine_is_held_until_the_settle_bound(mk: Any) -> None:
    """No change: held for SETTLE_S after the answer, then released (the write did not take)."""
    unseen = UnseenWrites()
    unseen.wrote(mk("m", 0, power_state="on"), "power_off", answered_at=10.0)
    machine = mk("m", 0, power_state="on")
    assert unseen.holds(machine, listed_at=11.0, now=10.0 + SETTLE_S - 0.1)
    assert not unseen.holds(machine, listed_at=11.0, now=10.0 + SETTLE_S)


def test_local_actions_are_not_maas_writes(mk: Any) -> None:
    """Provisioning and clearing our own record never hold a machine here."""
    unseen = UnseenWrites()
    for kind in ("provision", "provision_poll", "forget_provision"):
        unseen.wrote(mk("m", 6), kind, answered_at=10.0)
    assert len(unseen) == 0


def test_a_write_maas_applies_before_answering_is_trusted_again_after_the_lag_bound(
    mk: Any,
) -> None:
    """A commission that looks undone (it may have failed and come back between listings) is
    held only LAG_S, not the two minutes a background power change gets."""
    unseen = UnseenWrites()
    before = mk("m", 2)  # Failed commissioning
    unseen.wrote(before, "commission", answered_at=10.0)
    assert unseen.holds(before, listed_at=11.0, now=10.0 + LAG_S - 0.1)
    assert not unseen.holds(before, listed_at=11.0, now=10.0 + LAG_S)
    assert LAG_S < SETTLE_S


def test_a_power_on_is_a_background_change_like_a_power_off(mk: Any) -> None:
    """A power_on MAAS accepted holds an unchanged machine for SETTLE_S, not LAG_S (§3.4)."""
    unseen = UnseenWrites()
    machine = mk("m", 6, power_state="off")
    unseen.wrote(machine, "power_on", answered_at=10.0)
    assert unseen.holds(machine, listed_at=11.0, now=10.0 + LAG_S + 1)
    assert not unseen.holds(machine, listed_at=11.0, now=10.0 + SETTLE_S)
