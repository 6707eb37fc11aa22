"""MAC address to hostname mappings: which name a machine should carry in MAAS.

The JSON is an object from MAC to hostname::

    {"52:54:00:12:34:56": "rack1-node1", "52-54-00-AB-CD-EF": "rack1-node2"}

The opencord maas-flow form `{"<mac>": {"hostname": "<name>"}}` is accepted too. MACs are
compared case- and separator-insensitively (`aa:bb:..`, `AA-BB-..`, `aabb.ccdd.eeff`,
`aabbccddeeff`). Hostnames must be RFC 1123 names (letters, digits, `-`; no `_`), as MAAS
requires. Two MACs may map to one name (a machine with two NICs); one MAC written twice is
an error. Loading uses the same inline-or-`@path` rules as filters. This module only
answers "which name?"; the daemon decides whether to rename.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from maasflow.common.errors import ConfigError
from maasflow.daemon.maas.listing import MachineData
from maasflow.daemon.selection import load_json_source

_MAC_FORMS = (
    re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}"),
    re.compile(r"[0-9a-f]{2}(-[0-9a-f]{2}){5}"),
    re.compile(r"[0-9a-f]{4}(\.[0-9a-f]{4}){2}"),
    re.compile(r"[0-9a-f]{12}"),
)
_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", re.IGNORECASE)
MAX_HOSTNAME = 253


def normalize_mac(text: str) -> str | None:
    """`aa:bb:cc:dd:ee:ff` for any accepted spelling of a MAC, or None when it is not one."""
    lowered = text.strip().lower()
    if not any(form.fullmatch(lowered) for form in _MAC_FORMS):
        return None
    digits = re.sub(r"[^0-9a-f]", "", lowered)
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def is_valid_hostname(name: str) -> bool:
    """True for an RFC 1123 host name (one or more dot-separated labels, no `_`)."""
    if not name or len(name) > MAX_HOSTNAME:
        return False
    return all(_LABEL.fullmatch(label) for label in name.split("."))


def _hostname_of(mac: str, value: object, label: str) -> str:
    if isinstance(value, dict) and set(value) == {"hostname"}:
        value = value["hostname"]
    if not isinstance(value, str):
        msg = f'MAC {mac!r} must map to a hostname string (or {{"hostname": ...}})'
        raise ConfigError(f"{label}: {msg}")
    if not is_valid_hostname(value):
        msg = f"hostname {value!r} for MAC {mac!r} is not a valid RFC 1123 name"
        raise ConfigError(f"{label}: {msg} (letters, digits and '-' only, labels of 1-63)")
    return value


@dataclass(frozen=True)
class Mappings:
    """Canonical MAC (`aa:bb:cc:dd:ee:ff`) to hostname."""

    names: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def empty(cls) -> Mappings:
        return cls({})

    @classmethod
    def load(cls, source: str, origin: str, environ: Mapping[str, str] | None = None) -> Mappings:
        """Load inline JSON or `@path`; raise ConfigError naming `origin` and the bad entry."""
        raw, label = load_json_source(source, origin, environ)
        return cls.from_json(raw, label)

    @classmethod
    def from_json(cls, raw: object, label: str) -> Mappings:
        """Validate an already parsed JSON value (`label` is used in messages)."""
        if not isinstance(raw, dict):
            example = '{"52:54:00:12:34:56": "node1"}'
            raise ConfigError(f"{label}: must be a JSON object like {example}")
        names: dict[str, str] = {}
        spelled: dict[str, str] = {}
        for mac, value in raw.items():
            canonical = cls._canonical(mac, label)
            if canonical in names:
                msg = f"MAC {mac!r} is the same address as {spelled[canonical]!r}; give it once"
                raise ConfigError(f"{label}: {msg}")
            names[canonical] = _hostname_of(mac, value, label)
            spelled[canonical] = mac
        return cls(names)

    @staticmethod
    def _canonical(mac: str, label: str) -> str:
        canonical = normalize_mac(mac)
        if canonical is None:
            msg = f"{mac!r} is not a MAC address (expected e.g. 52:54:00:12:34:56)"
            raise ConfigError(f"{label}: {msg}")
        return canonical

    def hostname_for(self, machine: MachineData) -> str | None:
        """The mapped name for the first mapped MAC of the machine (boot interface first)."""
        if not self.names:
            return None
        for mac in machine.macs:
            canonical = normalize_mac(mac)
            if canonical is not None and canonical in self.names:
                return self.names[canonical]
        return None

    def to_json(self) -> dict[str, str]:
        return dict(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __bool__(self) -> bool:
        return bool(self.names)
