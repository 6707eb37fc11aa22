"""`maasflow enlist`'s inventory checks and idempotency rule, and a big inventory in batches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from maasflow.common.errors import ConfigError
from maasflow.daemon.enlist import BATCH, enlist
from maasflow.daemon.enlistment import Enlistee, Known, Verdict, load_inventory, plan
from maasflow.daemon.maas.client import MaasClient
from maasflow.sim import SimConfig, serve_simulator


def write(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize(
    ("document", "words"),
    [
        ([{"hostname": "a", "mac": ["x"]}], ["machine 0", "'mac'"]),
        ([{"hostname": "a"}, {"hostname": "b", "macs": ["nope"]}], ["machine 1", "'nope'"]),
        ([{"hostname": "a", "power_parameters": {"power_pass": "x"}}], ["machine 0", "power_type"]),
        ([{"hostname": "a"}, {"hostname": "A"}], ["hostname A", "twice"]),
        (
            [
                {"hostname": "a", "macs": ["52:54:00:00:00:01"]},
                {"hostname": "b", "macs": ["52-54-00-00-00-01"]},
            ],
            ["52:54:00:00:00:01", "twice"],
        ),
        ([], ["non-empty list"]),
        ({"hosts": []}, ["non-empty list"]),
    ],
    ids=["unknown-field", "bad-mac", "params-without-type", "dup-name", "dup-mac", "empty", "key"],
)
def test_a_bad_inventory_is_one_error_naming_the_entry_and_field(
    tmp_path: Path, document: object, words: list[str]
) -> None:
    """Each problem names the file, the entry's index and the field."""
    with pytest.raises(ConfigError) as caught:
        load_inventory(write(tmp_path, document))
    assert all(word in str(caught.value) for word in words), str(caught.value)


def test_an_inventory_entry_normalises_macs_and_keeps_power_secrets_out_of_its_summary(
    tmp_path: Path,
) -> None:
    """MACs are lower case with colons; the summary names parameters, never their values."""
    entry = {"hostname": "db-1", "macs": ["52-54-00-AB-CD-EF"], "power_type": "ipmi",
             "power_parameters": {"power_address": "10.0.0.5", "power_pass": "s3cret"}}  # fmt: skip
    (loaded,) = load_inventory(write(tmp_path, {"machines": [entry]}))
    assert loaded.macs == ("52:54:00:ab:cd:ef",)
    assert loaded.form()["power_parameters_power_pass"] == "s3cret"
    assert "s3cret" not in loaded.summary()


def test_plan_skips_a_known_hostname_or_mac_and_creates_the_rest() -> None:
    """Known hostname (any case) or MAC: skip naming the holder; otherwise create."""
    known = Known({"db-1": "aaa111"}, {"52:54:00:00:00:02": "bbb222"})
    entries = [Enlistee("DB-1"), Enlistee("db-2", ("52:54:00:00:00:02",)), Enlistee("db-3")]
    verdicts = [(p.verdict, p.reason) for p in plan(entries, known)]
    assert verdicts == [
        (Verdict.SKIP, "hostname DB-1 already in MAAS (system_id aaa111)"),
        (Verdict.SKIP, "MAC 52:54:00:00:00:02 already in MAAS (system_id bbb222)"),
        (Verdict.CREATE, ""),
    ]


async def test_a_big_inventory_is_checked_in_batches_and_created_once() -> None:
    """More entries than a batch: every machine created once, then all skipped on a rerun."""
    count = BATCH + 20
    entries = [
        Enlistee(f"n{i}", (f"52:54:00:10:{i >> 8:02x}:{i & 0xFF:02x}",)) for i in range(count)
    ]
    async with serve_simulator(SimConfig(seed=9, time_factor=0.001)) as sim:
        async with MaasClient(sim.url, sim.admin_key) as client:
            lines: list[str] = []
            assert await enlist(client, entries, write=lines.append) == 0
            assert sum(line.startswith("created") for line in lines) == count
            again: list[str] = []
            assert await enlist(client, entries, write=again.append) == 0
            assert all(line.startswith("skipped") for line in again) and len(again) == count
        listings = [
            r for r in sim.request_log if r.method == "GET" and r.path.endswith("machines/")
        ]
        assert len(listings) == 2 * 4  # two runs, each 2 batches of names + 2 batches of MACs
        assert len(sim.machines) == count
