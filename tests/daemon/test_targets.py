"""The daemon with a targets file: each machine's rule decides, the rest get the default.

A fake MAAS records every op; the daemon's time is a fake clock. What is checked is what the
daemon sends (and does not send) for each rule, what it remembers of a deploy for a later
`redeploy`, per-rule provisioning, and the targets file's reload on SIGHUP.
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from maasflow.daemon.actions import Actuator
from maasflow.daemon.lifecycle import ActionKind
from maasflow.daemon.loop import Daemon
from maasflow.daemon.mappings import Mappings
from maasflow.daemon.provisioning import HttpProvisioner
from maasflow.daemon.reload import ReloadOutcome, reload_settings
from maasflow.daemon.selection import FilterSpec
from maasflow.daemon.settings import load_settings
from maasflow.daemon.store import Store
from maasflow.daemon.targets import Targets

USER_DATA = "#cloud-config\npassword: hunter2\n"
RULES = [
    {"tags": {"include": ["^stop$"]}, "power": "off"},
    {"tags": {"include": ["^wipe$"]}, "target": "Ready", "release": {"quick_erase": True}},
    {"zones": {"include": ["^lab$"]}, "target": "Ignore"},
    {"tags": {"include": ["^cloud$"]}, "distro_series": "jammy", "user_data": USER_DATA},
]


def targets(rules: list[dict[str, Any]]) -> Targets:
    return Targets.load(json.dumps(rules), "-targets")


async def one_pass(daemon: Daemon) -> None:
    await daemon.run_pass()
    for _ in range(20):
        await asyncio.sleep(0)
    await daemon.executor.drain(2)
    daemon.executor = type(daemon.executor)(4)


def calls(fake: Any) -> dict[str, tuple[str, dict[str, Any]]]:
    """system_id -> (op, its parameters) of every write."""
    return {p["system_id"]: (op, p) for method, op, p in fake.calls if method == "POST"}


async def test_each_rule_acts_and_no_other_machine_gets_a_write(
    mk: Any, Fake: Any, make_daemon: Any
) -> None:
    """Power-off, release-with-erase and deploy rules act; default, ignored and other users'
    machines get no write at all."""
    me = "maasflow"
    fake = Fake(
        [
            mk("off1", 6, owner=me, power_state="on", tag_names=["stop"]),
            mk("wipe", 6, owner=me, power_state="on", tag_names=["wipe"]),
            mk("theirs", 6, owner="alice", power_state="on", tag_names=["wipe"]),
            mk("keep", 6, owner=me, power_state="off"),
            mk("lab", 0, zone="lab", power_state="off"),
            mk("cloud", 10, owner=me, tag_names=["cloud"]),
        ]
    )
    daemon = make_daemon(fake, targets=targets(RULES))
    await daemon.identify(retry=False)
    with capture_logs() as logs:
        await one_pass(daemon)
    sent = calls(fake)
    assert sorted(sent) == ["cloud", "off1", "wipe"]
    assert sent["off1"] == ("power_off", {"system_id": "off1", "stop_mode": "soft"})
    op, release = sent["wipe"]
    assert (op, release["erase"], release["quick_erase"]) == ("release", "true", "true")
    op, deploy = sent["cloud"]
    assert (op, deploy["distro_series"]) == ("deploy", "jammy")
    assert base64.b64decode(deploy["user_data"]).decode() == USER_DATA
    assert "hunter2" not in repr(logs) and deploy["user_data"] not in repr(logs)
    labels = {m.system_id: daemon.desire_for(m).label for m in fake.machines.values()}
    assert labels == {
        "off1": "rule 1",
        "wipe": "rule 2",
        "theirs": "rule 2",
        "lab": "rule 3",
        "cloud": "rule 4",
        "keep": "default",
    }


async def test_a_changed_rule_redeploys_only_with_redeploy(
    mk: Any, Fake: Any, make_daemon: Any
) -> None:
    """The deploy's parameters are remembered in the store; a rule that changes them releases
    the machine only when it says redeploy."""
    store = Store(":memory:")
    fake = Fake([mk("a", 10, owner="maasflow", tag_names=["db"])])
    rule = {"tags": {"include": ["^db$"]}, "distro_series": "jammy"}
    daemon = make_daemon(fake, store=store, targets=targets([rule]))
    await daemon.identify(retry=False)
    await one_pass(daemon)
    assert store.applied_deploys() == {"a": {"distro_series": "jammy"}}
    fake.move("a", status=6, power_state="on")
    daemon.targets = targets([{**rule, "distro_series": "noble"}])
    await one_pass(daemon)
    assert [op for op, _sid in fake.ops()] == ["deploy"]  # changed, but no redeploy
    daemon.targets = targets([{**rule, "distro_series": "noble", "redeploy": True}])
    await one_pass(daemon)
    assert fake.ops() == [("deploy", "a"), ("release", "a")]


async def test_the_default_and_a_rule_without_a_series_deploy_with_the_global_distro(
    mk: Any, Fake: Any
) -> None:
    """A machine no rule selects is deployed with -distro, as before targets existed; a rule
    naming no series gets it too, one naming its own keeps it."""
    fake = Fake(
        [
            mk("a", 10, owner="maasflow"),
            mk("b", 10, owner="maasflow", tag_names=["kvm"]),
            mk("c", 10, owner="maasflow", tag_names=["old"]),
        ]
    )
    rules = targets(
        [
            {"tags": {"include": ["^kvm$"]}, "install_kvm": True},
            {"tags": {"include": ["^old$"]}, "distro_series": "focal"},
        ]
    )
    actuator = Actuator(fake, Store(":memory:"), None, distro="noble")
    daemon = Daemon(
        fake, actuator, filters=FilterSpec.load("{}", "t"),
        mappings=Mappings.empty(), period=1.0, targets=rules,
    )  # fmt: skip
    await daemon.identify(retry=False)
    await one_pass(daemon)
    sent = calls(fake)
    assert sent["a"] == ("deploy", {"system_id": "a", "distro_series": "noble"})
    assert sent["b"][1] == {"system_id": "b", "distro_series": "noble", "install_kvm": "true"}
    assert sent["c"][1] == {"system_id": "c", "distro_series": "focal"}


def test_a_rules_provisioning_replaces_provision_url_for_its_machines(
    mk: Any, Fake: Any, make_daemon: Any
) -> None:
    """Without PROVISION_URL, only the machines of a rule with `provision` are provisioned, by
    that rule's provisioner and role."""
    rule = {
        "tags": {"include": ["^k8s$"]},
        "provision": {"url": "http://127.0.0.1:9/p", "role": "worker"},
    }
    fake = Fake([])
    daemon = make_daemon(fake, targets=targets([rule]))
    daemon.me = "maasflow"
    built: list[str] = []

    def build(where: str) -> HttpProvisioner:
        built.append(where)
        return HttpProvisioner(where, 60)

    daemon.actuator.build = build
    ruled = mk("k", 6, owner="maasflow", power_state="on", tag_names=["k8s"])
    plain = mk("p", 6, owner="maasflow")
    assert daemon.decide(ruled, {}).action is not None
    assert daemon.decide(ruled, {}).action.kind is ActionKind.PROVISION  # type: ignore[union-attr]
    assert daemon.decide(plain, {}).action is None
    provisioner, role = daemon.actuator.provisioner_for(ruled)
    assert isinstance(provisioner, HttpProvisioner) and role == "worker"
    assert built == ["http://127.0.0.1:9/p"]  # built once, kept
    assert daemon.actuator.provisioner_for(plain) == (None, "")


@pytest.fixture
def targets_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr("maasflow.daemon.flags.DEFAULT_KEY_FILE", str(tmp_path / "no-key"))
    path = tmp_path / "targets.json"
    path.write_text(json.dumps([{"hosts": {"include": ["^web"]}, "target": "Ready"}]))
    return path


def test_sighup_reloads_the_targets_file_and_keeps_the_old_one_when_bad(
    targets_file: Path, tmp_path: Path, mk: Any, Fake: Any, make_daemon: Any
) -> None:
    """A changed targets file is used from the next pass; a broken one keeps the old rules and
    the error names the rule and field."""
    env = {"HOME": str(tmp_path), "MAAS_API_KEY": "a" * 18 + ":" + "b" * 18 + ":" + "c" * 32}
    settings = load_settings(["-targets", f"@{targets_file}"], env)
    daemon = make_daemon(Fake([]), targets=settings.targets)
    web = mk("w", 4, hostname="web-1")
    assert daemon.desire_for(web).desire.target == "ready"
    targets_file.write_text(json.dumps([{"hosts": {"include": ["^web"]}, "target": "Ignore"}]))
    assert reload_settings(daemon, settings.reload_from)["targets"] is ReloadOutcome.RELOADED
    assert daemon.desire_for(web).desire.target == "ignore"
    targets_file.write_text(json.dumps([{"hosts": {"include": ["^web"]}, "target": "Gone"}]))
    with capture_logs() as logs:
        outcome = reload_settings(daemon, settings.reload_from)["targets"]
    assert outcome is ReloadOutcome.KEPT
    assert daemon.desire_for(web).desire.target == "ignore"
    (failed,) = [e for e in logs if e["event"] == "reload failed; keeping the loaded one"]
    assert failed["setting"] == "targets" and "rule 1: target: 'Gone'" in failed["reason"]


async def test_the_first_pass_warning_counts_only_machines_that_would_be_provisioned(
    mk: Any, Fake: Any, make_daemon: Any
) -> None:
    """A Deployed machine of ours without a record is counted only when its rule provisions it:
    one under an Ignore rule, or without any provisioner, is not."""
    rule = {"tags": {"include": ["^k8s$"]}, "provision": {"url": "http://127.0.0.1:9/p"}}
    machines = [
        mk("k", 6, owner="maasflow", power_state="on", tag_names=["k8s"]),
        mk("i", 6, owner="maasflow", tag_names=["k8s", "x"]),
        mk("p", 6, owner="maasflow"),
    ]
    ignore = {"tags": {"include": ["^x$"]}, "target": "Ignore"}
    daemon = make_daemon(Fake(machines), targets=targets([ignore, rule]))
    daemon.actuator.build = lambda where: HttpProvisioner(where, 60)
    await daemon.identify(retry=False)
    with capture_logs() as logs:
        daemon._warn_unrecorded(machines, {})
    (warned,) = [e for e in logs if "without a provisioning record" in e["event"]]
    assert warned["system_ids"] == ["k"]
