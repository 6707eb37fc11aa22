"""Machines parse leniently: unknown fields, missing optionals, and bad entries skipped."""

from __future__ import annotations

import json

import pytest
from structlog.testing import capture_logs

from maasflow.common.errors import PermanentMaasError, ProvisionError, TemporaryMaasError
from maasflow.daemon.maas.models import Machine
from maasflow.daemon.provisioning import target_for
from tests.shared_samples import ABSENT, SAMPLES

SAMPLE_EXPECTATIONS = {
    "machine-deployed.json": ("4y3ha3", 6, ["52:54:00:55:b6:80", "52:54:00:55:b6:81"]),
    "machine-ready.json": ("4y3ha4", 4, ["52:54:00:33:6b:2c"]),
    "machine-commissioning.json": ("bhxws3", 1, ["52:54:00:15:36:f2"]),
}


def _no_dns(_name: str) -> None:
    """A resolver that knows no name, so only what MAAS lists counts."""


@pytest.mark.parametrize("name", sorted(SAMPLE_EXPECTATIONS))
def test_shared_real_samples_parse(name: str) -> None:
    """Each real MAAS machine sample parses with the right system_id, status and MACs."""
    path = SAMPLES / name
    if not path.exists():
        pytest.skip(ABSENT)
    machine = Machine.model_validate_json(path.read_bytes())
    system_id, status, macs = SAMPLE_EXPECTATIONS[name]
    assert (machine.system_id, machine.status, machine.macs) == (system_id, status, macs)
    assert machine.zone.name == "default" and machine.pool_name == "default"


def test_own_new_fixture_parses_with_every_field_we_read(fixture_json) -> None:
    """A MAAS 3.x-shaped New machine yields its status, power, zone, pool, domain and MACs."""
    machine = Machine.model_validate(fixture_json("machine-new.json"))
    assert (machine.system_id, machine.status, machine.status_name) == ("ab7kq2", 0, "New")
    assert (machine.power_state, machine.power_type) == ("off", "ipmi")
    assert machine.owner is None and machine.locked is False
    assert machine.domain is not None and machine.domain.name == "maas"
    assert machine.macs == ["3c:ec:ef:10:20:30", "3c:ec:ef:10:20:31"]
    with pytest.raises(ProvisionError, match=r"^no IP address"):  # MAAS shows none yet
        target_for(machine, resolve=_no_dns)


def test_own_deployed_fixture_gives_boot_ip_tags_and_pool(fixture_json) -> None:
    """A Deployed machine yields its boot IP from the boot link, its tags and its pool."""
    machine = Machine.model_validate(fixture_json("machine-deployed.json"))
    assert machine.status == 6 and machine.owner == "maasflow"
    target = target_for(machine, resolve=_no_dns)
    assert target.ip == "10.20.0.57"
    assert target.mac == "52:54:00:aa:07:01"
    assert machine.tag_names == ["gpu", "virtual"]
    assert (machine.zone.name, machine.pool_name) == ("rack-b", "compute")


def test_minimal_machine_gets_defaults_for_every_optional(fixture_json) -> None:
    """Only system_id and status are required; everything else has a safe default."""
    machine = Machine.model_validate(fixture_json("machine-minimal.json"))
    assert (machine.hostname, machine.power_state, machine.zone.name) == ("", "unknown", "")
    assert machine.macs == [] and machine.pool_name == ""
    with pytest.raises(ProvisionError, match=r"^no IP address"):
        target_for(machine, resolve=_no_dns)


async def test_listing_skips_bad_entries_and_names_them(client, router, fixture_json) -> None:
    """Entries that fail validation are skipped with a warning; the good ones survive."""
    router.get("machines/").respond(json=fixture_json("machines-list-with-bad-entry.json"))
    with capture_logs() as logs:
        machines = await client.list_machines()
    assert [m.system_id for m in machines] == ["good01", "good02"]
    skipped = [e for e in logs if e["event"] == "maas.machine_skipped"]
    assert [e["system_id"] for e in skipped] == ["broken", None, None]
    assert all(e["log_level"] == "warning" for e in skipped)


async def test_unknown_fields_are_ignored_in_a_listing(client, router, machine) -> None:
    """Fields a future MAAS adds do not break parsing."""
    entry = machine("a1", future_field={"deep": [1, {"x": None}]}, is_dpu=True)
    router.get("machines/").respond(json=[entry])
    (parsed,) = await client.list_machines()
    assert parsed.system_id == "a1"


async def test_a_listing_that_is_not_a_list_is_a_permanent_error(client, router) -> None:
    """A JSON object where a list of machines belongs raises PermanentMaasError, no crash."""
    router.get("machines/").respond(json={"machines": []})
    with pytest.raises(PermanentMaasError, match="expected a JSON list of machines"):
        await client.list_machines()


async def test_a_single_answer_without_system_id_is_a_permanent_error(client, router) -> None:
    """get_machine on an answer lacking system_id reports what is missing."""
    router.get("machines/abc123/").respond(json={"hostname": "x", "status": 4})
    with pytest.raises(PermanentMaasError, match="system_id: Field required"):
        await client.get_machine("abc123")


async def test_deeply_nested_garbage_does_not_crash(client, router) -> None:
    """A hostile, absurdly nested body ends as a MAAS error, never a RecursionError."""
    body = ("[" * 100_000 + "]" * 100_000).encode()
    router.get("machines/").respond(200, content=body, headers={"Content-Type": "application/json"})
    with pytest.raises(TemporaryMaasError, match="not valid JSON"):
        await client.list_machines()


async def test_ten_thousand_machines_come_back_from_one_get(client, router, machine) -> None:
    """A 10,000-machine listing is one request and yields 10,000 models in order."""
    blob = json.dumps([machine(f"m{i:05d}", status=i % 23) for i in range(10_000)]).encode()
    route = router.get("machines/").respond(
        200, content=blob, headers={"Content-Type": "application/json"}
    )
    parsed = await client.list_machines()
    assert route.call_count == 1
    assert len(parsed) == 10_000 and parsed[-1].system_id == "m09999"


async def test_version_that_is_not_an_object_is_a_permanent_error(client, router) -> None:
    """version/ answering a bare string (like the anonymous api/version/) is reported."""
    router.get("version/").respond(json="2.0")
    with pytest.raises(PermanentMaasError, match="expected a JSON object, got a JSON str"):
        await client.version()
