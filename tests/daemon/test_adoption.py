"""First sightings: which machines are adopted, when adoption ends, and what overrides it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from maasflow.common.errors import StoreError
from maasflow.daemon.adoption import Adoptions, Sighting
from maasflow.daemon.mappings import Mappings
from maasflow.daemon.store import Store
from maasflow.daemon.targets import Targets


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


async def test_the_default_desire_leaves_adopted_machines_and_a_rule_overrides_it(
    mk: Any, Fake: Any, make_daemon: Any
) -> None:
    """Without -provision-existing: an adopted machine under the default desire gets no write
    (not even the mapped rename); one a targets rule selects is acted on (power off)."""
    me = "maasflow"
    fake = Fake(
        [
            mk("kept", 6, owner=me, power_state="on", mac="52:54:00:00:00:0a"),
            mk("ruled", 6, owner=me, power_state="on", tag_names=["stop"]),
        ]
    )
    rules = json.dumps([{"tags": {"include": ["^stop$"]}, "power": "off"}])
    daemon = make_daemon(
        fake,
        provision_existing=False,
        targets=Targets.load(rules, "-targets"),
        mappings=Mappings.load(json.dumps({"52:54:00:00:00:0a": "renamed"}), "test"),
    )
    await daemon.identify(retry=False)
    await daemon.run_pass()
    for _ in range(20):
        await asyncio.sleep(0)
    await daemon.executor.drain(2)
    written = [(method, op, p["system_id"]) for method, op, p in fake.calls if method != "GET"]
    assert written == [("POST", "power_off", "ruled")]
    assert daemon.adoptions.get("kept") == Sighting("kept", 6, daemon.clock.time(), adopted=True)
