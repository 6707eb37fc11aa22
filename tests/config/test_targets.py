"""Targets files: the examples load, the first matching rule wins, and every bad rule is one
line naming the rule and its field."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from maasflow.common.errors import ConfigError
from maasflow.daemon.desire import MAX_USER_DATA, Desire, Power
from maasflow.daemon.lifecycle import PowerState, Target
from maasflow.daemon.maas.models import Machine
from maasflow.daemon.settings import load_settings
from maasflow.daemon.targets import (
    DEFAULT,
    Chosen,
    Targets,
    default_desire,
    user_data_digest,
    wanted,
)

TARGETS_DIR = Path(__file__).resolve().parents[2] / "targets"
EXAMPLES = sorted(TARGETS_DIR.glob("*.json"))
MakeMachine = Callable[..., Machine]


def load(raw: object) -> Targets:
    return Targets.load(json.dumps(raw), "-targets")


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_loads(path: Path) -> None:
    """Each file in targets/ loads as given to the daemon, with at least one rule."""
    targets = Targets.load(f"@{path}", "-targets")
    assert targets.rules
    assert [rule.label for rule in targets.rules] == [
        f"rule {i}" for i in range(1, len(targets.rules) + 1)
    ]


def test_the_examples_are_the_ones_the_readme_lists() -> None:
    """targets/README.md names every example file, so none goes undocumented."""
    listed = (TARGETS_DIR / "README.md").read_text()
    assert EXAMPLES and all(f"`{path.name}`" in listed for path in EXAMPLES)


def test_the_cloud_example_reads_its_user_data_file_next_to_it(machine: MakeMachine) -> None:
    """`user_data_file` is read relative to the targets file, into the rule's user data."""
    targets = Targets.load(f"@{TARGETS_DIR / 'cloud-plugin.json'}", "-targets")
    chosen = targets.choose(machine(hostname="c1", tags=["cloud"]))
    assert chosen is not None and chosen.label == "rule 3"
    assert chosen.desire.user_data == (TARGETS_DIR / "cloud-init.yaml").read_text()
    assert chosen.desire.distro_series == "ubuntu/jammy"


def test_the_first_matching_rule_wins_and_no_match_is_none(machine: MakeMachine) -> None:
    """Rules are tried in order; a machine no rule selects gets None (the daemon's default)."""
    targets = load(
        [
            {"tags": {"include": ["^spare$"]}, "target": "Ready"},
            {"hosts": {"include": ["^web"]}, "distro_series": "noble"},
            {"hosts": {"include": ["^web-1$"]}, "target": "Ignore"},
        ]
    )
    web = targets.choose(machine(hostname="web-1"))
    spare_web = targets.choose(machine(hostname="web-1", tags=["spare"]))
    assert web == Chosen("rule 2", Desire(distro_series="noble"))
    assert spare_web == Chosen("rule 1", Desire(target=Target.READY))
    assert targets.choose(machine(hostname="db-1")) is None
    assert Targets().choose(machine()) is None


def test_an_empty_rule_selects_every_machine(machine: MakeMachine) -> None:
    """A rule with no selector section matches everything, like the filter `{}`."""
    chosen = load([{"target": "Allocated"}]).choose(machine(zone="far", tags=["x"]))
    assert chosen == Chosen("rule 1", Desire(target=Target.ALLOCATED))


BAD = [
    ('{"target": "Ready"}', ["-targets", "list of rules"]),
    ("[1]", ["rule 1", "object"]),
    ('[{}, {"target": "Running"}]', ["rule 2", "target", "'Running'", "Deployed"]),
    ('[{"power": "of"}]', ["rule 1", "power", "'of'"]),
    ('[{"hosts": {"include": ["("]}}]', ["rule 1", "'('"]),
    ('[{"hostz": {}}]', ["rule 1", "unknown field 'hostz'"]),
    ('[{}, {}, {"target": "Ready", "distro_series": "jammy"}]', ["rule 3", "distro_series"]),
    ('[{"release": {"erase": true}}]', ["rule 1", "release", "Ready"]),
    ('[{"target": "Ready", "release": {"wipe": true}}]', ["rule 1", "release", "'wipe'"]),
    ('[{"redeploy": "yes"}]', ["rule 1", "redeploy", "true or false"]),
    ('[{"user_data_file": "/nonexistent/ud"}]', ["rule 1", "user_data_file", "/nonexistent/ud"]),
    ('[{"user_data": "x", "user_data_file": "ud"}]', ["rule 1", "user_data_file"]),
    ('[{"provision": {"script": "/nonexistent/s"}}]', ["rule 1", "provision.script"]),
    ('[{"provision": {"url": "ftp://x"}}]', ["rule 1", "provision.url"]),
    ('[{"hosts": {}}, {"hosts": {}},]', ["-targets", "invalid JSON"]),
]


@pytest.mark.parametrize(("text", "words"), BAD, ids=[f"bad-{i}" for i in range(len(BAD))])
def test_a_bad_file_is_one_line_naming_the_rule_and_field(text: str, words: list[str]) -> None:
    """Bad JSON, an unknown target, field or value: ConfigError, one line, naming where."""
    with pytest.raises(ConfigError) as caught:
        Targets.load(text, "-targets")
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message, (word, message)


def test_user_data_file_is_capped_and_must_be_text(tmp_path: Path) -> None:
    """A user data file over 64 KiB, or not UTF-8, is refused naming the rule and file."""
    (tmp_path / "big").write_bytes(b"a" * (MAX_USER_DATA + 1))
    (tmp_path / "bin").write_bytes(b"\xff\xfe")
    (tmp_path / "t.json").write_text('[{}, {"user_data_file": "big"}]')
    with pytest.raises(ConfigError, match=r"rule 2: user_data_file: .*big.* larger than 64 KiB"):
        Targets.load(f"@{tmp_path / 't.json'}", "-targets")
    (tmp_path / "t.json").write_text('[{"user_data_file": "bin"}]')
    with pytest.raises(ConfigError, match=r"rule 1: user_data_file: .*bin.* not UTF-8"):
        Targets.load(f"@{tmp_path / 't.json'}", "-targets")


def test_a_provision_script_is_found_next_to_the_file(tmp_path: Path) -> None:
    """`provision.script` is relative to the targets file and must be executable."""
    script = tmp_path / "prov.sh"
    script.write_text("#!/bin/sh\n")
    (tmp_path / "t.json").write_text('[{"provision": {"script": "prov.sh", "role": "db"}}]')
    with pytest.raises(ConfigError, match=r"rule 1: provision.script: .*prov.sh.* not an exec"):
        Targets.load(f"@{tmp_path / 't.json'}", "-targets")
    script.chmod(0o755)
    (rule,) = Targets.load(f"@{tmp_path / 't.json'}", "-targets").rules
    assert rule.desire.provision is not None
    assert (rule.desire.provision.script, rule.desire.provision.role) == (str(script), "db")


def test_the_setting_comes_from_the_flag_or_the_environment(
    env: dict[str, str], tmp_path: Path
) -> None:
    """`-targets @file` and MAASFLOW_TARGETS load the same rules; none given is no rule."""
    path = tmp_path / "targets.json"
    path.write_text('[{"target": "Ignore"}]')
    by_flag = load_settings(["-targets", f"@{path}"], env)
    by_env = load_settings([], {**env, "MAASFLOW_TARGETS": f"@{path}"})
    assert by_flag.targets == by_env.targets == Targets.load(f"@{path}", "-targets")
    assert load_settings([], env).targets == Targets()
    assert by_flag.reload_from["targets"].text == f"@{path}"


def test_wanted_hides_user_data_and_completes_the_erase_flags() -> None:
    """User data is shown as a digest and sent from the hidden part; quick_erase brings erase
    (MAAS honours it only with erase, facts §10.1); a rule manages power, the default not."""
    desire = Desire(user_data="#cloud-config\npassword: hunter2\n", power=Power.OFF)
    shown = wanted(Chosen("rule 1", desire))
    encoded = base64.b64encode(desire.user_data.encode()).decode()  # type: ignore[union-attr]
    assert shown.deploy == {"user_data": user_data_digest(desire.user_data or "")}
    assert "hunter2" not in repr(shown) and encoded not in repr(shown)
    assert shown.hidden == {"user_data": encoded}
    assert shown.power is PowerState.OFF
    ready = Desire.parse({"target": "Ready", "release": {"quick_erase": True}}, "rule 2")
    assert wanted(Chosen("rule 2", ready)).release == {"erase": "true", "quick_erase": "true"}
    assert wanted(Chosen("rule 2", Desire(target=Target.READY))).release is None
    assert wanted(Chosen(DEFAULT, default_desire("noble"))).deploy == {"distro_series": "noble"}
    assert wanted(Chosen(DEFAULT, default_desire(""))).power is None
