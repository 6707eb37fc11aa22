"""MAC to hostname mappings: MAC spellings, hostname rules, lookups and mappings.json."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from maasflow.common.errors import ConfigError
from maasflow.daemon.maas.models import Machine
from maasflow.daemon.mappings import Mappings, is_valid_hostname, normalize_mac

TOP = Path(__file__).resolve().parents[2]
MakeMachine = Callable[..., Machine]


@pytest.mark.parametrize(
    "spelling",
    [
        "52:54:00:ab:cd:ef",
        "52:54:00:AB:CD:EF",
        "52-54-00-ab-cd-ef",
        "5254.00ab.cdef",
        "525400ABCDEF",
    ],
)
def test_mac_spellings_normalise_alike(spelling: str) -> None:
    """Colon, dash, Cisco-dot and bare spellings, any case, are one MAC."""
    assert normalize_mac(spelling) == "52:54:00:ab:cd:ef"


@pytest.mark.parametrize(
    "bad", ["", "52:54:00:ab:cd", "52:54:00:ab:cd:eg", "52:54-00:ab:cd:ef", "5254:00ab:cdef", "x"]
)
def test_not_macs(bad: str) -> None:
    """Short, non-hex or mixed-separator strings are not MACs."""
    assert normalize_mac(bad) is None


@given(st.binary(min_size=6, max_size=6), st.sampled_from([":", "-", ""]), st.booleans())
def test_any_mac_round_trips(raw: bytes, sep: str, upper: bool) -> None:
    """Every 6-byte address written with any separator and case normalises to one form."""
    text = sep.join(f"{b:02x}" for b in raw)
    text = text.upper() if upper else text
    assert normalize_mac(text) == ":".join(f"{b:02x}" for b in raw)


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("node1", True),
        ("rack1-node-02", True),
        ("a", True),
        ("Node1", True),
        ("node1.lab", True),
        ("node_1", False),
        ("-node", False),
        ("node-", False),
        ("", False),
        ("a" * 64, False),
        ("a..b", False),
        ("a;rm -rf x", False),
        ("node 1", False),
    ],
)
def test_hostname_rules(name: str, valid: bool) -> None:
    """Hostnames follow RFC 1123 labels, with no underscore, as MAAS requires."""
    assert is_valid_hostname(name) is valid


def test_lookup_any_interface_boot_first(machine: MakeMachine) -> None:
    """A mapped MAC on any interface gives the name; the boot interface's mapping wins."""
    m = Mappings.load(
        json.dumps({"52-54-00-00-00-02": "by-second", "525400000009": "by-boot"}), "-mappings"
    )
    plain = machine(macs=["52:54:00:00:00:01", "52:54:00:00:00:02"])
    assert m.hostname_for(plain) == "by-second"
    booted = machine(macs=["52:54:00:00:00:02"], boot_mac="52:54:00:00:00:09")
    assert m.hostname_for(booted) == "by-boot"
    assert m.hostname_for(machine(macs=["52:54:00:00:00:03"])) is None
    assert m.hostname_for(machine(macs=[])) is None


def test_opencord_object_form_is_accepted(machine: MakeMachine) -> None:
    """opencord maas-flow's {"<mac>": {"hostname": "<name>"}} form works too."""
    m = Mappings.load('{"2c:60:0c:e3:c0:f1": {"hostname": "cord-r1-s1"}}', "-mappings")
    assert m.hostname_for(machine(macs=["2C:60:0C:E3:C0:F1"])) == "cord-r1-s1"


def test_two_macs_may_share_a_name() -> None:
    """Two NICs of one machine may map to the same hostname."""
    m = Mappings.load('{"52:54:00:00:00:01": "n", "52:54:00:00:00:02": "n"}', "-mappings")
    assert len(m) == 2


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[]", "-mappings: must be a JSON object"),
        ('{"nope": "node1"}', "-mappings: 'nope' is not a MAC address"),
        ('{"52:54:00:00:00:01": "node_1"}', "hostname 'node_1' for MAC '52:54:00:00:00:01' is not"),
        ('{"52:54:00:00:00:01": 7}', "MAC '52:54:00:00:00:01' must map to a hostname string"),
        ('{"52:54:00:00:00:01": {"name": "x"}}', "must map to a hostname string"),
        (
            '{"52:54:00:00:00:01": "a", "52-54-00-00-00-01": "b"}',
            "MAC '52-54-00-00-00-01' is the same address as '52:54:00:00:00:01'",
        ),
        ('{"52:54:00:00:00:01": "a", "52:54:00:00:00:01": "a"}', "duplicate key"),
        ("{", "-mappings: invalid JSON at line 1 column 2"),
    ],
)
def test_bad_mappings(text: str, fragment: str) -> None:
    """Each bad mapping is one ConfigError line naming the flag and the entry."""
    with pytest.raises(ConfigError) as info:
        Mappings.load(text, "-mappings")
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_file_source(tmp_path: Path, machine: MakeMachine) -> None:
    """`@path` with a variable loads mappings from a file."""
    (tmp_path / "m.json").write_text('{"52:54:00:00:00:01": "from-file"}')
    m = Mappings.load("@$D/m.json", "MAC_TO_NAME_MAPPINGS", {"D": str(tmp_path)})
    assert m.hostname_for(machine(macs=["52:54:00:00:00:01"])) == "from-file"


def test_top_level_mappings_json_loads_and_is_empty() -> None:
    """The shipped mappings.json is valid and maps nothing by default."""
    m = Mappings.load(f"@{TOP / 'mappings.json'}", "-mappings")
    assert len(m) == 0 and not m
