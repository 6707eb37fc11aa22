"""Targets: an ordered list of rules saying what each machine should be (`-targets`).

`-targets @file` or `MAASFLOW_TARGETS` (inline JSON or `@path`, as `-filter` reads them,
`selection.load_json_source`) holds a JSON list. Each rule selects machines with the
filter's sections (`hosts`, `zones`, `pools`, `tags`, each `include`/`exclude`; parsed by
`selection.FilterSpec`) and says what they should be with the fields of a `Desire` (target,
deploy parameters, power, release, redeploy, provision)::

    [{"hosts": {"include": ["^cloud-"]}, "distro_series": "jammy", "power": "off"},
     {"tags": {"include": ["^spare$"]}, "target": "Ready", "release": {"erase": true}},
     {"zones": {"include": ["^lab$"]}, "target": "Ignore"}]

`user_data_file` (a path relative to the targets file; to the working directory for inline
JSON) is read, at most 64 KiB of UTF-8, into the rule's `user_data`; a `provision.script`
is found the same way and must be executable. A rule's `provision` (script or URL, and
`role`) replaces PROVISION_URL for the machines it selects. The first rule that
selects a machine wins (`Chosen("rule 2", desire)`, counted from 1); a machine no rule
selects gets the daemon's default (`Chosen("default", ...)`: Deployed with the global
settings such as `-distro`). A file that does not parse, or a rule with an unknown field or
value, is a `ConfigError` naming the rule and the field (exit 2 at start-up; a SIGHUP keeps
the old rules). `wanted` turns a chosen desire into what the lifecycle's rules read.

Where it stops: it chooses and translates; it never talks to MAAS, and the filter (which
machines maasflow may touch at all) still applies before any rule.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from maasflow.common.errors import ConfigError
from maasflow.common.text_file import read_capped_text
from maasflow.daemon.desire import MAX_USER_DATA, Desire, Power
from maasflow.daemon.lifecycle import PowerState, Target, Wanted
from maasflow.daemon.maas.listing import MachineData
from maasflow.daemon.selection import SECTIONS, FilterSpec, expand_path, load_json_source

DEFAULT = "default"  # the label of the desire a machine gets when no rule selects it
USER_DATA_FILE = "user_data_file"


@dataclass(frozen=True)
class Chosen:
    """A machine's desire and where it came from: "rule 3", "default" (or another source)."""

    label: str
    desire: Desire


@dataclass(frozen=True)
class TargetRule:
    """One rule: the machines its selector selects should be what its desire says."""

    label: str  # "rule 1" for the first
    selector: FilterSpec
    desire: Desire


@dataclass(frozen=True)
class Targets:
    """The loaded rules, in order; empty means every machine gets the default."""

    rules: tuple[TargetRule, ...] = ()

    @classmethod
    def load(cls, source: str, origin: str, environ: Mapping[str, str] | None = None) -> Targets:
        """Read inline JSON or `@path`; a bad rule raises ConfigError naming it and its field."""
        raw, label = load_json_source(source, origin, environ)
        base = expand_path(source[1:], origin, environ).parent if source.startswith("@") else None
        return cls.from_json(raw, label, base or Path())

    @classmethod
    def from_json(cls, raw: object, label: str, base: Path) -> Targets:
        """Check an already parsed JSON list; `base` is where `user_data_file` paths start."""
        if not isinstance(raw, list):
            example = '[{"hosts": {"include": ["^web"]}, "distro_series": "jammy"}]'
            raise ConfigError(f"{label}: must be a JSON list of rules like {example}")
        return cls(tuple(_rule(item, i, label, base) for i, item in enumerate(raw, start=1)))

    def choose(self, machine: MachineData) -> Chosen | None:
        """The first rule that selects `machine`, or None (the caller's default applies)."""
        for rule in self.rules:
            if rule.selector.selects(machine):
                return Chosen(rule.label, rule.desire)
        return None


def _rule(raw: object, index: int, label: str, base: Path) -> TargetRule:
    name = f"rule {index}"
    where = f"{label}: {name}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a JSON object (a selector and a desired state)")
    unknown = sorted(set(raw) - _RULE_FIELDS)
    if unknown:
        allowed = ", ".join(sorted(_RULE_FIELDS))
        raise ConfigError(f"{where}: unknown field {unknown[0]!r}; the fields are {allowed}")
    selector = FilterSpec.from_json({k: v for k, v in raw.items() if k in SECTIONS}, where)
    fields: dict[str, Any] = {k: v for k, v in raw.items() if k not in SECTIONS}
    if USER_DATA_FILE in fields:
        if "user_data" in fields:
            raise ConfigError(f"{where}: {USER_DATA_FILE}: give user_data or user_data_file")
        fields["user_data"] = _user_data(
            fields.pop(USER_DATA_FILE), f"{where}: {USER_DATA_FILE}", base
        )
    desire = Desire.parse(fields, where)
    if desire.provision is not None and desire.provision.script is not None:
        script = _script(desire.provision.script, f"{where}: provision.script", base)
        desire = replace(desire, provision=replace(desire.provision, script=script))
    return TargetRule(name, selector, desire)


def _script(value: str, where: str, base: Path) -> str:
    """A rule's provisioning script, relative to the targets file, checked executable now."""
    path = base / Path(value).expanduser()
    if not path.is_file() or not os.access(path, os.X_OK):
        raise ConfigError(f"{where}: {str(path)!r} is not an executable file")
    return str(path.absolute())


def _user_data(value: object, where: str, base: Path) -> str:
    """The text of a rule's user data file, read once at load (capped at 64 KiB)."""
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: give a file path as a string")
    return read_capped_text(base / Path(value).expanduser(), where, MAX_USER_DATA)


def default_desire(distro: str) -> Desire:
    """What a machine no rule selects should be: Deployed with the global `-distro`."""
    return Desire(distro_series=distro or None)


@functools.lru_cache(maxsize=1024)
def wanted(chosen: Chosen, distro: str = "") -> Wanted:
    """What the lifecycle's rules read of a chosen desire; `distro` (`-distro`) is the series
    of a Deployed desire that names none.

    User data is shown and remembered as a digest and sent from `hidden`, so cloud-init's
    secrets reach neither logs, the preview nor the store. A release with `quick_erase` or
    `secure_erase` also sends `erase=true`: MAAS honours those two only with it (facts
    §10.1). The default desire leaves power alone, as maasflow did before targets existed;
    every rule (and a stored desire) manages it. Cached: every machine of a rule shares one
    answer, so a pass neither re-encodes nor re-hashes a rule's user data per machine.
    """
    desire = chosen.desire
    if desire.target is Target.DEPLOYED and desire.distro_series is None and distro:
        desire = replace(desire, distro_series=distro)
    shown = desire.deploy_form()
    hidden = {}
    if "user_data" in shown:
        hidden["user_data"] = shown["user_data"]
        shown["user_data"] = user_data_digest(desire.user_data or "")
    power = None if chosen.label == DEFAULT else _POWER[desire.power]
    return Wanted(shown, hidden, power, _release_form(desire), desire.redeploy)


def user_data_digest(text: str) -> str:
    """How user data is shown and remembered: its length and a short SHA-256."""
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return f"({len(text.encode())} bytes, sha256 {digest})"


def _release_form(desire: Desire) -> dict[str, str] | None:
    erase = desire.release
    if erase is None:
        return None
    if (erase.quick_erase or erase.secure_erase) and not erase.erase:
        erase = replace(erase, erase=True)
    return erase.form()


_RULE_FIELDS = frozenset({*SECTIONS, USER_DATA_FILE, *(f.name for f in dataclasses.fields(Desire))})
_POWER = {Power.ON: PowerState.ON, Power.OFF: PowerState.OFF}
