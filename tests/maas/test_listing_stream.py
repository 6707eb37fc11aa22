"""The machine listing is parsed as it arrives, into slim machines; bad input ends cleanly."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from maasflow.common.errors import PermanentMaasError, TemporaryMaasError
from maasflow.daemon.maas.decoding import UnreadableAnswer
from maasflow.daemon.maas.listing import ListedMachine, listed_machines
from maasflow.daemon.maas.models import Machine
from maasflow.daemon.provisioning import target_for
from tests.shared_samples import ABSENT, SAMPLES


class Source:
    """An answer's body handed out in pieces of `size` bytes, counting how many were taken."""

    def __init__(self, body: bytes, size: int) -> None:
        self.pieces = [body[at : at + size] for at in range(0, len(body), size)]
        self.taken = 0

    async def chunks(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            self.taken += 1
            yield piece


def _listing(*entries: Any) -> bytes:
    return json.dumps(list(entries)).encode()


async def _all(body: bytes, size: int = 7) -> list[ListedMachine]:
    source = Source(body, size)
    return [m async for m in listed_machines(source.chunks(), "GET", "machines/", 200)]


def _no_dns(_name: str) -> None:
    """A resolver that knows no name."""


async def test_a_listing_in_small_chunks_gives_every_machine_in_order(machine) -> None:
    """Seven-byte pieces parse to the same machines, fields and order as the whole body."""
    entries = [machine(f"m{i}", status=i, owner="me", tag_names=["a"]) for i in range(50)]
    machines = await _all(_listing(*entries), size=7)
    assert [m.system_id for m in machines] == [f"m{i}" for i in range(50)]
    assert machines[7].status == 7 and machines[7].owner == "me"
    assert machines[7].tag_names == ("a",) and machines[7].hostname == "host-m7"


async def test_machines_come_out_before_the_body_ends(machine) -> None:
    """The decoder is an iterator over the stream: the first machine arrives while most of
    the body is still unread, so the body is never held whole."""
    source = Source(_listing(*[machine(f"m{i}") for i in range(100)]), 64)
    stream = listed_machines(source.chunks(), "GET", "machines/", 200)
    first = await anext(stream)
    assert first.system_id == "m0"
    assert source.taken < len(source.pieces) // 10
    await stream.aclose()


async def test_a_truncated_listing_is_an_unreadable_answer(machine) -> None:
    """A body cut short mid-machine raises UnreadableAnswer (temporary), naming the bytes read."""
    body = _listing(machine("a"), machine("b"))[:-20]
    with pytest.raises(UnreadableAnswer, match=rf"not valid JSON \({len(body)} bytes read"):
        await _all(body)


@pytest.mark.parametrize("body", [b"", b"<html>proxy error</html>", b'[{"system_id": "a",,}]'])
async def test_invalid_json_is_an_unreadable_answer(body: bytes) -> None:
    """An empty body, a proxy's page or broken JSON is temporary, never a crash."""
    with pytest.raises(TemporaryMaasError, match="not valid JSON"):
        await _all(body)


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("status", "six", "status: required int, got str"),
        ("status", True, "status: required int, got bool"),
        ("hostname", 12, "hostname: expected a string, got int"),
        ("locked", "no", "locked: expected a boolean, got str"),
        ("zone", "default", "zone: expected an object, got str"),
        ("tag_names", ["a", 1], "tag_names: expected a list of strings"),
        ("interface_set", [{"links": [7]}], "interface_set.links: expected objects, got int"),
    ],
)
async def test_a_wrong_typed_field_skips_that_machine_only(
    machine, field: str, value: Any, problem: str
) -> None:
    """An entry with a wrong-typed field is skipped with a warning naming it and the field."""
    body = _listing(machine("good1"), machine("bad", **{field: value}), machine("good2"))
    with capture_logs() as logs:
        machines = await _all(body)
    assert [m.system_id for m in machines] == ["good1", "good2"]
    (skipped,) = [e for e in logs if e["event"] == "maas.machine_skipped"]
    assert skipped["system_id"] == "bad" and skipped["problem"] == problem


async def test_a_huge_string_in_an_entry_is_copied_not_choked_on(machine) -> None:
    """A 4 MB status message (under the answer cap) parses; the cap, not the parser, bounds it."""
    big = "x" * (4 * 1024 * 1024)
    (parsed,) = await _all(_listing(machine("a", status_message=big)), size=65536)
    assert parsed.status_message == big


async def test_an_object_with_an_item_key_is_not_a_listing(machine) -> None:
    """{"item": {...}} has the prefix of a list's items to ijson; it still is not a listing."""
    with pytest.raises(PermanentMaasError, match="expected a JSON list of machines, got"):
        await _all(json.dumps({"item": machine("a")}).encode())


async def test_nesting_past_the_bound_is_refused_without_parsing_it() -> None:
    """A body nested 5,000 deep (valid JSON) is refused early: ijson would spend O(depth²)."""
    with pytest.raises(UnreadableAnswer, match="nested deeper than 2048 levels"):
        await _all(b"[" * 5000 + b"]" * 5000, size=65536)


async def test_the_client_streams_a_chunked_answer(client, router, machine) -> None:
    """Through the client, an answer that arrives in small pieces lists every machine."""
    source = Source(_listing(*[machine(f"m{i}") for i in range(30)]), 11)
    router.get("machines/").mock(return_value=httpx.Response(200, content=source.chunks()))
    machines = await client.list_machines()
    assert len(machines) == 30 and machines[-1].system_id == "m29"
    assert source.taken == len(source.pieces)


@pytest.mark.parametrize("name", ["machine-deployed.json", "machine-ready.json"])
async def test_a_real_machine_reads_the_same_slim_as_full(name: str) -> None:
    """A real MAAS machine, listed, gives the daemon what the full model gives it."""
    path = SAMPLES / name
    if not path.exists():
        pytest.skip(ABSENT)
    full = Machine.model_validate_json(path.read_bytes())
    (slim,) = await _all(b"[" + path.read_bytes() + b"]", size=1000)
    assert (slim.system_id, slim.status, slim.macs) == (full.system_id, full.status, full.macs)
    assert (slim.zone.name, slim.pool_name, slim.owner) == (
        full.zone.name,
        full.pool_name,
        full.owner,
    )


async def test_a_real_deployed_machine_gives_the_same_provisioning_target() -> None:
    """Provisioning reads the same boot address and MAC from a listed machine as from a model."""
    path = SAMPLES / "machine-deployed.json"
    if not path.exists():
        pytest.skip(ABSENT)
    full = Machine.model_validate_json(path.read_bytes())
    (slim,) = await _all(b"[" + path.read_bytes() + b"]", size=1000)
    assert target_for(slim, resolve=_no_dns) == target_for(full, resolve=_no_dns)


async def test_no_machine_is_lost_between_the_parser_and_the_loop(machine) -> None:
    """However the parsing thread and the loop interleave, every machine comes out once."""
    for size in (1, 5, 13, 64, 4096):
        entries = [machine(f"m{i}") for i in range(200)]
        parsed = await _all(_listing(*entries), size=size)
        assert [m.system_id for m in parsed] == [f"m{i}" for i in range(200)]
