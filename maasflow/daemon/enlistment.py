"""The inventory `maasflow enlist` records in MAAS: machines that already run, checked.

An `Enlistee` is one machine to create with `deployed=true` (facts §3.9): its hostname,
MACs, architecture, domain and power settings, each checked here so that bad input is one
line naming the entry and the field, before anything is sent. Entries come from the
command line or from an inventory file (`load_inventory`): a JSON list of objects, or an
object whose `machines` is that list, each with the keys of `FIELDS`. A power parameter
that holds a secret (a password, a token) is refused on the command line, where process
listings would show it: it is read from a file (`name=@path`) or given in the inventory.

`plan()` is the idempotency rule: an entry whose hostname or any MAC MAAS already has is
skipped with the existing machine named, never created twice; two entries of one inventory
may not share a hostname or a MAC. This module sends nothing; `daemon.enlist` does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from maasflow.common.errors import ConfigError
from maasflow.common.secrets import read_secret_file

DEFAULT_ARCH = "amd64/generic"
FIELDS = ("hostname", "macs", "arch", "domain", "power_type", "power_parameters")
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", re.IGNORECASE)
_MAC = re.compile(r"^[0-9a-f]{2}([:-])[0-9a-f]{2}(\1[0-9a-f]{2}){4}$", re.IGNORECASE)
_ARCH = re.compile(r"^[a-z0-9_]+/[a-z0-9_.-]+$")
_PARAM = re.compile(r"^[a-z][a-z0-9_]*$")
_POWER_TYPE = re.compile(r"^[a-z][a-z0-9_]*$")
_SECRET_PARTS = ("pass", "token", "secret", "key")


class Verdict(StrEnum):
    """What `maasflow enlist` does with one entry."""

    CREATE = "create"
    SKIP = "skip"


@dataclass(frozen=True)
class Enlistee:
    """One machine to record in MAAS as already Deployed."""

    hostname: str
    macs: tuple[str, ...] = ()
    arch: str = DEFAULT_ARCH
    domain: str = ""
    power_type: str = ""
    power_parameters: Mapping[str, str] = field(default_factory=dict)

    def form(self) -> dict[str, str | list[str]]:
        """Create's parameters besides hostname and deployed (facts §3.9)."""
        fields: dict[str, str | list[str]] = {"architecture": self.arch}
        if self.macs:
            fields["mac_addresses"] = list(self.macs)
        if self.domain:
            fields["domain"] = self.domain
        if self.power_type:
            fields["power_type"] = self.power_type
        for name, value in self.power_parameters.items():
            fields[f"power_parameters_{name}"] = value
        return fields

    def summary(self) -> str:
        """One line naming what would be created; never a power parameter's value."""
        name = f"{self.hostname}.{self.domain}" if self.domain else self.hostname
        parts = [name, f"arch {self.arch}", "MACs " + (", ".join(self.macs) or "none")]
        if self.power_type:
            given = ", ".join(sorted(self.power_parameters)) or "no parameters"
            parts.append(f"power {self.power_type} ({given})")
        return "; ".join(parts)


@dataclass(frozen=True)
class Known:
    """What MAAS already holds, as far as idempotency needs it: names and MACs → system_id."""

    hostnames: Mapping[str, str]
    macs: Mapping[str, str]


@dataclass(frozen=True)
class Planned:
    """One entry and what to do with it, with why when it is skipped."""

    entry: Enlistee
    verdict: Verdict
    reason: str = ""


def plan(entries: Iterable[Enlistee], known: Known) -> list[Planned]:
    """Create each entry MAAS lacks; skip one whose hostname or a MAC MAAS has."""
    planned = []
    for entry in entries:
        reason = _already_there(entry, known)
        verdict = Verdict.SKIP if reason else Verdict.CREATE
        planned.append(Planned(entry, verdict, reason))
    return planned


def _already_there(entry: Enlistee, known: Known) -> str:
    system_id = known.hostnames.get(entry.hostname.lower())
    if system_id is not None:
        return f"hostname {entry.hostname} already in MAAS (system_id {system_id})"
    for mac in entry.macs:
        system_id = known.macs.get(mac)
        if system_id is not None:
            return f"MAC {mac} already in MAAS (system_id {system_id})"
    return ""


# -- building entries -------------------------------------------------------------------------


def enlistee(raw: Mapping[str, Any], label: str) -> Enlistee:
    """An entry from a mapping with `FIELDS` keys; ConfigError naming `label` and the field."""
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise ConfigError(f"{label}: unknown field {unknown[0]!r}; fields are {', '.join(FIELDS)}")
    hostname = _hostname(_text(raw, "hostname", label, required=True), label)
    macs = tuple(mac_address(m, f"{label} macs") for m in _texts(raw.get("macs", []), label))
    arch = _text(raw, "arch", label) or DEFAULT_ARCH
    if not _ARCH.fullmatch(arch):
        raise ConfigError(
            f"{label} arch {arch!r}: expected architecture/subarchitecture, e.g. {DEFAULT_ARCH}"
        )
    domain = _domain(_text(raw, "domain", label), label)
    power_type = _text(raw, "power_type", label)
    if power_type and not _POWER_TYPE.fullmatch(power_type):
        raise ConfigError(
            f"{label} power_type {power_type!r}: expected a MAAS power driver name, e.g. ipmi"
        )
    params = _parameters(raw.get("power_parameters", {}), label)
    if params and not power_type:
        raise ConfigError(f"{label}: power_parameters need a power_type")
    return Enlistee(hostname, macs, arch, domain, power_type, params)


def mac_address(value: str, label: str) -> str:
    """`value` as MAAS lists MACs (lower case, colons); ConfigError if it is not one."""
    if not _MAC.fullmatch(value.strip()):
        raise ConfigError(f"{label} {value[:40]!r}: not a MAC address such as 52:54:00:12:34:56")
    return value.strip().lower().replace("-", ":")


def power_parameter(given: str, label: str) -> tuple[str, str]:
    """`name=value` from the command line; `name=@path` reads the value from a file.

    A secret's value (a name with pass, token, secret or key in it) given literally is
    refused: process listings would show it.
    """
    name, sep, value = given.partition("=")
    if not sep or not _PARAM.fullmatch(name):
        raise ConfigError(
            f"{label} {name[:40]!r}: expected name=value, e.g. power_address=10.0.0.5"
        )
    if value.startswith("@"):
        return name, read_secret_file(Path(value[1:]), f"{label} {name}", "power parameter")
    if is_secret_parameter(name):
        raise ConfigError(
            f"{label} {name}: a secret on the command line shows in process listings; "
            f"give {name}=@FILE or put it in a --from inventory"
        )
    return name, value


def is_secret_parameter(name: str) -> bool:
    """Whether a power parameter holds a secret (power_pass, power_token, ...)."""
    return any(part in name.lower() for part in _SECRET_PARTS)


def load_inventory(path: Path) -> list[Enlistee]:
    """The entries of an inventory file; ConfigError naming the file, entry and field."""
    label = f"--from {str(path)!r}"
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{label}: {exc.strerror or type(exc).__name__}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{label}: not JSON ({exc}); see the README's enlist section") from None
    items = document.get("machines") if isinstance(document, dict) else document
    if not isinstance(items, list) or not items:
        raise ConfigError(
            f'{label}: expected a non-empty list of machines, or {{"machines": [...]}}'
        )
    entries = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise ConfigError(f"{label} machine {index}: expected an object with a hostname")
        entries.append(enlistee(item, f"{label} machine {index}"))
    return distinct(entries, label)


def distinct(entries: Sequence[Enlistee], label: str) -> list[Enlistee]:
    """The entries, refused when two share a hostname or a MAC."""
    names: set[str] = set()
    macs: set[str] = set()
    for entry in entries:
        if entry.hostname.lower() in names:
            raise ConfigError(f"{label}: hostname {entry.hostname} is listed twice")
        names.add(entry.hostname.lower())
        for mac in entry.macs:
            if mac in macs:
                raise ConfigError(f"{label}: MAC {mac} is listed twice")
            macs.add(mac)
    return list(entries)


def _hostname(value: str, label: str) -> str:
    if not _LABEL.fullmatch(value):
        raise ConfigError(
            f"{label} hostname {value[:64]!r}: expected a host label (letters, digits, "
            "hyphens; no dots: give the domain as domain)"
        )
    return value


def _domain(value: str, label: str) -> str:
    if value and not all(_LABEL.fullmatch(part) for part in value.split(".")):
        raise ConfigError(f"{label} domain {value[:64]!r}: expected a DNS name such as maas")
    return value


def _text(raw: Mapping[str, Any], name: str, label: str, required: bool = False) -> str:
    value = raw.get(name, "")
    if not isinstance(value, str) or (required and not value.strip()):
        raise ConfigError(f"{label} {name}: expected {'a non-empty' if required else 'a'} string")
    return value.strip()


def _texts(value: Any, label: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{label} macs: expected a list of MAC addresses")
    return list(value)


def _parameters(value: Any, label: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ConfigError(f"{label} power_parameters: expected an object of name: value")
    for name, item in value.items():
        if not _PARAM.fullmatch(name) or not isinstance(item, str):
            raise ConfigError(
                f"{label} power_parameters {name[:40]!r}: expected a name and a string value"
            )
    return dict(value)
