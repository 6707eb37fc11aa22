"""Host filter semantics, load errors, `@file` sources and the sample files in `filters/`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from maasflow.common.errors import ConfigError
from maasflow.daemon.maas.models import Machine
from maasflow.daemon.selection import FilterSpec, load_json_source

FILTERS_DIR = Path(__file__).resolve().parents[2] / "filters"
MakeMachine = Callable[..., Machine]


def spec(raw: object) -> FilterSpec:
    return FilterSpec.load(json.dumps(raw), "-filter")


@pytest.mark.parametrize(
    ("raw", "machine_args", "selected"),
    [
        # empty, missing and null lists select everything
        ({}, {"zone": "lab-b"}, True),
        ({"hosts": {}}, {}, True),
        ({"hosts": {"include": []}}, {}, True),
        ({"hosts": {"include": None, "exclude": None}}, {}, True),
        ({"hosts": None}, {}, True),
        # unanchored search, like Go's MatchString
        ({"hosts": {"include": ["ode"]}}, {"hostname": "node1"}, True),
        ({"hosts": {"include": ["^ode"]}}, {"hostname": "node1"}, False),
        ({"hosts": {"include": ["a", "node"]}}, {"hostname": "node1"}, True),
        # include first, then exclude removes
        ({"hosts": {"include": ["node"], "exclude": ["1$"]}}, {"hostname": "node1"}, False),
        ({"hosts": {"include": ["node"], "exclude": ["1$"]}}, {"hostname": "node2"}, True),
        ({"hosts": {"exclude": ["spare"]}}, {"hostname": "spare-3"}, False),
        # zones and pools
        ({"zones": {"include": ["^default$"]}}, {"zone": "default"}, True),
        ({"zones": {"include": ["^default$"]}}, {"zone": "default-2"}, False),
        ({"zones": {"exclude": ["lab"]}}, {"zone": "lab-a"}, False),
        ({"pools": {"include": ["^gpu$"]}}, {"pool": "gpu"}, True),
        ({"pools": {"include": ["^gpu$"]}}, {"pool": "default"}, False),
        # tags: any tag matching is enough
        ({"tags": {"include": ["^ssd$"]}}, {"tags": ["virtual", "ssd"]}, True),
        ({"tags": {"include": ["^ssd$"]}}, {"tags": ["virtual"]}, False),
        ({"tags": {"include": ["^ssd$"]}}, {"tags": []}, False),
        ({"tags": {"exclude": ["^keep$"]}}, {"tags": []}, True),
        ({"tags": {"exclude": ["^keep$"]}}, {"tags": ["ssd", "keep"]}, False),
        ({"tags": {"include": ["ssd"], "exclude": ["keep"]}}, {"tags": ["ssd"]}, True),
        # every section must pass
        ({"hosts": {"include": ["node"]}, "zones": {"include": ["a"]}}, {"zone": "b"}, False),
        ({"hosts": {"include": ["node"]}, "zones": {"include": ["b"]}}, {"zone": "b"}, True),
    ],
)
def test_filter_semantics(
    raw: object, machine_args: dict[str, Any], selected: bool, machine: MakeMachine
) -> None:
    """Each filter selects, or leaves out, the machine as the rules say."""
    f = spec(raw)
    m = machine(**machine_args)
    assert f.selects(m) is selected
    assert (f.reason(m) is None) is selected


def test_default_is_zone_default_only(machine: MakeMachine) -> None:
    """With no filter, machines in zone `default` are selected and others are not."""
    f = FilterSpec.default()
    assert f.selects(machine(zone="default"))
    assert f.reason(machine(zone="lab-b")) == "zone 'lab-b' not included"


@pytest.mark.parametrize(
    ("raw", "machine_args", "reason"),
    [
        ({"hosts": {"include": ["^a"]}}, {"hostname": "b1"}, "hostname 'b1' not included"),
        ({"hosts": {"exclude": ["1$"]}}, {"hostname": "b1"}, "hostname 'b1' excluded by '1$'"),
        ({"pools": {"include": ["x"]}}, {"pool": "p"}, "pool 'p' not included"),
        ({"tags": {"include": ["x"]}}, {"tags": []}, "no tags, and a tags include is set"),
        ({"tags": {"include": ["x"]}}, {"tags": ["a", "b"]}, "tag 'a', 'b' not included"),
        ({"tags": {"exclude": ["^b$"]}}, {"tags": ["a", "b"]}, "tag 'b' excluded by '^b$'"),
    ],
)
def test_reasons(
    raw: object, machine_args: dict[str, Any], reason: str, machine: MakeMachine
) -> None:
    """reason() says which section and value left the machine out."""
    assert spec(raw).reason(machine(**machine_args)) == reason


def test_select_keeps_order_over_many_machines(machine: MakeMachine) -> None:
    """select() over 10,000 machines keeps exactly the matching ones, in order."""
    machines = [machine(hostname=f"node{i}", zone="a" if i % 3 else "b") for i in range(10_000)]
    chosen = spec({"zones": {"include": ["^a$"]}, "hosts": {"exclude": ["7$"]}}).select(machines)
    expected = [m for i, m in enumerate(machines) if i % 3 and not str(i).endswith("7")]
    assert chosen == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{bad", "-filter: invalid JSON at line 1 column 2"),
        ('{"hosts": {"include": ["a"]}}\n}', "-filter: invalid JSON at line 2 column 1"),
        ("[]", "-filter: must be a JSON object"),
        ('"hosts"', "-filter: must be a JSON object"),
        ('{"host": {}}', "-filter: unknown key 'host'; allowed: hosts, zones, pools, tags"),
        ('{"hosts": []}', "-filter: 'hosts' must be an object with include/exclude lists"),
        ('{"hosts": {"inclde": []}}', "unknown key 'hosts.inclde'; allowed: include, exclude"),
        ('{"zones": {"include": "default"}}', "'zones.include' must be a list of regular"),
        ('{"tags": {"exclude": [1]}}', "'tags.exclude[0]' must be a string, got number"),
        ('{"hosts": {"include": ["ok", "("]}}', "'hosts.include[1]' pattern '(' does not comp"),
        ('{"hosts": {"include": ["a\\nb("]}}', "pattern 'a\\nb(' does not compile"),
        ('{"hosts": {}, "hosts": {}}', "-filter: duplicate key 'hosts'"),
    ],
)
def test_load_errors_are_one_line(text: str, fragment: str) -> None:
    """Each bad filter is one ConfigError line naming the flag, the key and the pattern."""
    with pytest.raises(ConfigError) as info:
        FilterSpec.load(text, "-filter")
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message


def test_file_source_with_variable_in_path(tmp_path: Path, machine: MakeMachine) -> None:
    """`@$VAR/file.json` and `@${VAR}/...` read the file after expanding the variable."""
    (tmp_path / "f.json").write_text('{"zones": {"include": ["^lab$"]}}')
    env = {"CONF": str(tmp_path)}
    for source in ("@$CONF/f.json", "@${CONF}/f.json"):
        f = FilterSpec.load(source, "HOST_FILTER_SPEC", env)
        assert f.selects(machine(zone="lab")) and not f.selects(machine(zone="default"))


def test_tilde_expansion_uses_the_given_home(tmp_path: Path) -> None:
    """`@~/f.json` reads from the HOME of the given environment; `~user` is left to the OS."""
    (tmp_path / "f.json").write_text("{}")
    assert FilterSpec.load("@~/f.json", "-filter", {"HOME": str(tmp_path)}) == FilterSpec()
    with pytest.raises(ConfigError, match=r"cannot read file '~no-such-user-x/f\.json'"):
        FilterSpec.load("@~no-such-user-x/f.json", "-filter", {"HOME": str(tmp_path)})


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    """A bad pattern in a file is reported with the file's path and the origin."""
    path = tmp_path / "bad.json"
    path.write_text('{"hosts": {"include": ["[z-a]"]}}')
    with pytest.raises(ConfigError) as info:
        FilterSpec.load(f"@{path}", "-filter")
    message = str(info.value)
    assert message.startswith(f"-filter file '{path}': 'hosts.include[0]' pattern '[z-a]'")


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("@/no/such/filter.json", "-filter: cannot read file '/no/such/filter.json'"),
        ("@$UNSET_VAR/f.json", "-filter: path '$UNSET_VAR/f.json' uses $UNSET_VAR, which is not"),
        ("@", "-filter: cannot read file"),
    ],
)
def test_missing_files(source: str, fragment: str) -> None:
    """A missing file or an unset variable in its path is one clear line."""
    with pytest.raises(ConfigError) as info:
        FilterSpec.load(source, "-filter", {})
    assert fragment in str(info.value)


def test_non_utf8_file(tmp_path: Path) -> None:
    """A binary file is refused as not UTF-8 text."""
    (tmp_path / "bin").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_json_source(f"@{tmp_path / 'bin'}", "-filter")


def test_deeply_nested_json_is_refused() -> None:
    """Pathologically nested JSON is a ConfigError, not a crash."""
    with pytest.raises(ConfigError):
        FilterSpec.load("[" * 100_000 + "]" * 100_000, "-filter")


def test_sample_files_exist() -> None:
    """The documented sample filters are present."""
    names = {p.name for p in FILTERS_DIR.glob("*.json")}
    assert {"default.json", "include-exclude.json", "multi-zone.json"} <= names


@pytest.mark.parametrize("path", sorted(FILTERS_DIR.glob("*.json")), ids=lambda p: p.name)
def test_every_sample_filter_loads(path: Path) -> None:
    """Every file in filters/ loads and round-trips through to_json()."""
    f = FilterSpec.load(f"@{path}", "-filter")
    assert FilterSpec.from_json(f.to_json(), "round trip") == f


def test_sample_filters_mean_what_their_names_say(machine: MakeMachine) -> None:
    """The samples select what filters/README.md says they select."""

    def load(name: str) -> FilterSpec:
        return FilterSpec.load(f"@{FILTERS_DIR / name}", "-filter")

    assert load("default.json") == FilterSpec.default()
    assert load("all-machines.json").selects(machine(zone="anything"))
    inc = load("include-exclude.json")
    assert inc.selects(machine(hostname="rack1-node07"))
    assert not inc.selects(machine(hostname="rack1-node02"))
    assert not inc.selects(machine(hostname="rack1-spare"))
    assert not inc.selects(machine(hostname="rack2-node07"))
    multi = load("multi-zone.json")
    assert all(multi.selects(machine(zone=z)) for z in ("lab-a", "lab-b", "default"))
    assert not multi.selects(machine(zone="lab-c"))
    tag = load("by-tag.json")
    assert tag.selects(machine(tags=["maasflow"]))
    assert not tag.selects(machine(tags=["maasflow", "do-not-touch"]))


_PATTERN = st.sampled_from(["^a", "b$", "node[0-9]+", "x|y", ".*", "^default$"])
_SECTION = st.fixed_dictionaries(
    {},
    optional={"include": st.lists(_PATTERN, max_size=3), "exclude": st.lists(_PATTERN, max_size=3)},
)
_RAW = st.dictionaries(st.sampled_from(["hosts", "zones", "pools", "tags"]), _SECTION)
_NAME = st.text("abnodexy0123", max_size=8)


@given(_RAW, _NAME, _NAME, st.lists(_NAME, max_size=3))
def test_to_json_round_trip_preserves_meaning(
    raw: dict[str, Any], host: str, zone: str, tags: list[str]
) -> None:
    """A filter rebuilt from its to_json() selects exactly the same machines."""
    f = FilterSpec.from_json(raw, "-filter")
    again = FilterSpec.load(json.dumps(f.to_json()), "-filter")
    m = Machine.model_validate(
        {"system_id": "s", "status": 0, "hostname": host, "zone": {"name": zone}, "tag_names": tags}
    )
    assert again.selects(m) == f.selects(m)
