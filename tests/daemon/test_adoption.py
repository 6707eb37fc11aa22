"""First sightings: which machines are adopted, when adoption ends, and what overrides it."""

from __future__ import annotations

import pytest

from maasflow.common.errors import StoreError
from maasflow.daemon.adoption import Adoptions, Sighting
from maasflow.daemon.store import Store


def test_deployed_at_first_sight_without_a_record_is_adopted() -> None:
    """A Deployed machine seen first, with no provisioning record, is adopted and stored."""
    store = Store(":memory:")
    adoptions = Adoptions(store)
    assert adoptions.adopted("a", 6, has_record=False, now=10.0) is True
    assert store.sightings() == [Sighting("a", 6, 10.0, adopted=True)]


@pytest.mark.parametrize(("status", "has_record"), [(0, False), (4, False), (6, True)])
def test_new_ready_or_recorded_machines_are_not_adopted(status: int, has_record: bool) -> None:
    """Seen first while New or Ready, or Deployed with a record of ours: not adopted."""
    assert Adoptions(Store(":memory:")).adopted("a", status, has_record, 1.0) is False


def test_adoption_survives_a_restart_and_a_later_record() -> None:
    """Once adopted, a reopened store still says so, even if a record appears later."""
    store = Store(":memory:")
    Adoptions(store).adopted("a", 6, has_record=False, now=1.0)
    again = Adoptions(store)
    assert again.adopted("a", 6, has_record=True, now=2.0) is True


@pytest.mark.parametrize("status", [0, 4, 9, 10, 12, 14])
def test_leaving_for_a_new_deploy_ends_adoption(status: int) -> None:
    """Released, redeployed or erased: the machine is no longer adopted, and stays so."""
    store = Store(":memory:")
    adoptions = Adoptions(store)
    adoptions.adopted("a", 6, has_record=False, now=1.0)
    assert adoptions.adopted("a", status, has_record=False, now=2.0) is False
    assert adoptions.adopted("a", 6, has_record=False, now=3.0) is False
    assert store.sightings() == [Sighting("a", 6, 1.0, adopted=False)]


@pytest.mark.parametrize("status", [8, 13, 16, 3])
def test_broken_rescue_missing_or_failed_release_keep_adoption(status: int) -> None:
    """A detour that may bring the same workload back keeps the machine adopted."""
    adoptions = Adoptions(Store(":memory:"))
    adoptions.adopted("a", 6, has_record=False, now=1.0)
    assert adoptions.adopted("a", status, has_record=False, now=2.0) is True


def test_provision_existing_and_explicit_targets_override_adoption() -> None:
    """-provision-existing, or a rule naming the machine, makes an adopted machine managed."""
    assert (
        Adoptions(Store(":memory:"), provision_existing=True).adopted("a", 6, False, 1.0) is False
    )
    adoptions = Adoptions(Store(":memory:"))
    assert adoptions.adopted("a", 6, False, 1.0, explicit=True) is False
    assert adoptions.adopted("a", 6, False, 2.0) is True


def test_a_preview_stores_nothing() -> None:
    """read_only (a preview) decides the same but writes no sighting."""
    store = Store(":memory:")
    assert Adoptions(store, read_only=True).adopted("a", 6, False, 1.0) is True
    assert store.sightings() == []


class RefusingStore:
    """A store whose writes fail, as a full disk makes them."""

    def sightings(self) -> list[Sighting]:
        return []

    def save_sighting(self, sighting: Sighting) -> None:
        raise StoreError("disk full")


def test_a_refused_write_keeps_the_sighting_in_memory() -> None:
    """When the store refuses the write the decision holds for this process."""
    adoptions = Adoptions(RefusingStore())
    assert adoptions.adopted("a", 6, False, 1.0) is True
    assert adoptions.adopted("a", 6, True, 2.0) is True
