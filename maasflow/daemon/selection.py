"""Host filters: which MAAS machines the daemon may act on.

A filter is JSON of this shape (every part optional)::

    {"hosts": {"include": [...], "exclude": [...]},
     "zones": {"include": [...], "exclude": [...]},
     "pools": {"include": [...], "exclude": [...]},
     "tags":  {"include": [...], "exclude": [...]}}

Each list holds regular expressions that are *searched* (unanchored, like Go's
`MatchString`) in the machine's hostname, zone name, pool name or tags. Within a section a
missing, `null` or empty include list admits everything; include is applied first, then any
exclude match removes the machine. A machine must pass every section. For `tags` a machine
matches when ANY of its tags matches, so a machine with no tags fails a non-empty tags
include and is never removed by a tags exclude.

With no filter given at all the default is `{"zones": {"include": ["^default$"]}}` (all hosts
in zone `default`); an explicit `{}` selects everything.

The text comes from a flag or an environment variable, either inline JSON or `@path` (with
`$VAR`/`${VAR}` and `~` expanded in the path). `load_json_source` does that part for the
mappings too. This module only loads and matches; it never talks to MAAS.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from maasflow.common.errors import ConfigError
from maasflow.common.text_file import read_capped_text
from maasflow.daemon.maas.listing import MachineData

SECTIONS = ("hosts", "zones", "pools", "tags")
LISTS = ("include", "exclude")
MAX_SOURCE_BYTES = 16 * 1024 * 1024
_VAR = re.compile(r"\$(?:\{([^}]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_NOUNS = {"hosts": "hostname", "zones": "zone", "pools": "pool", "tags": "tag"}


def _no_duplicates(label: str) -> Any:
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in pairs:
            if key in seen:
                raise ConfigError(f"{label}: duplicate key {key!r}; give each key once")
            seen[key] = value
        return seen

    return hook


def expand_path(text: str, origin: str, environ: Mapping[str, str] | None = None) -> Path:
    """Expand `$VAR`, `${VAR}` and a leading `~` in a path; an unset variable is an error."""
    env = os.environ if environ is None else environ

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1) if match.group(1) is not None else match.group(2)
        if name not in env:
            raise ConfigError(f"{origin}: path {text!r} uses ${name}, which is not set")
        return env[name]

    expanded = _VAR.sub(substitute, text)
    home = env.get("HOME")
    if home is not None and (expanded == "~" or expanded.startswith("~/")):
        return Path(home + expanded[1:])
    return Path(os.path.expanduser(expanded))


def load_json_source(
    source: str, origin: str, environ: Mapping[str, str] | None = None
) -> tuple[Any, str]:
    """Parse inline JSON or `@path`; return the value and the label to use in messages.

    The label names the file (and the flag or variable it came from) or just the origin, so
    inline text — which may be long — is never echoed back.
    """
    label = origin
    text = source
    if source.startswith("@"):
        path = expand_path(source[1:], origin, environ)
        label = f"{origin} file {str(path)!r}"
        text = read_capped_text(path, origin, MAX_SOURCE_BYTES)
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates(label)), label
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise ConfigError(f"{label}: invalid JSON at {where}: {exc.msg}") from None
    except RecursionError:
        raise ConfigError(f"{label}: JSON nested too deeply") from None


def _type_name(value: object) -> str:
    names = {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def _compile(pattern: object, where: str, label: str) -> re.Pattern[str]:
    if not isinstance(pattern, str):
        raise ConfigError(f"{label}: {where} must be a string, got {_type_name(pattern)}")
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"{label}: {where} pattern {pattern!r} does not compile: {exc}") from None
    except (RecursionError, OverflowError):
        raise ConfigError(f"{label}: {where} pattern {pattern!r} is too complex") from None


def _first_match(
    patterns: Sequence[re.Pattern[str]], values: Sequence[str]
) -> tuple[str, str] | None:
    for pattern in patterns:
        for value in values:
            if pattern.search(value):
                return pattern.pattern, value
    return None


@dataclass(frozen=True)
class Section:
    """One section's compiled include and exclude lists."""

    include: tuple[re.Pattern[str], ...] = ()
    exclude: tuple[re.Pattern[str], ...] = ()

    @classmethod
    def parse(cls, name: str, raw: object, label: str) -> Section:
        """Validate and compile one section of the JSON (`name` is e.g. "hosts")."""
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            kind = _type_name(raw)
            msg = f"{name!r} must be an object with include/exclude lists, got {kind}"
            raise ConfigError(f"{label}: {msg}")
        unknown = sorted(set(raw) - set(LISTS))
        if unknown:
            msg = f"unknown key '{name}.{unknown[0]}'; allowed: {', '.join(LISTS)}"
            raise ConfigError(f"{label}: {msg}")
        compiled = [cls._patterns(f"{name}.{key}", raw.get(key), label) for key in LISTS]
        return cls(include=compiled[0], exclude=compiled[1])

    @staticmethod
    def _patterns(where: str, raw: object, label: str) -> tuple[re.Pattern[str], ...]:
        if raw is None:
            return ()
        if not isinstance(raw, list):
            kind = _type_name(raw)
            msg = f"'{where}' must be a list of regular expressions, got {kind}"
            raise ConfigError(f"{label}: {msg}")
        return tuple(_compile(item, f"'{where}[{i}]'", label) for i, item in enumerate(raw))

    def refusal(self, noun: str, values: Sequence[str]) -> str | None:
        """Why these values fail this section, or None when they pass."""
        if self.include and _first_match(self.include, values) is None:
            if noun == "tag" and not values:
                return "no tags, and a tags include is set"
            shown = ", ".join(repr(v) for v in values)
            return f"{noun} {shown} not included"
        hit = _first_match(self.exclude, values) if self.exclude else None
        if hit is not None:
            return f"{noun} {hit[1]!r} excluded by {hit[0]!r}"
        return None

    def to_json(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        if self.include:
            out["include"] = [p.pattern for p in self.include]
        if self.exclude:
            out["exclude"] = [p.pattern for p in self.exclude]
        return out


def _values(machine: MachineData, section: str) -> Sequence[str]:
    if section == "hosts":
        return (machine.hostname,)
    if section == "zones":
        return (machine.zone.name,)
    if section == "pools":
        return (machine.pool_name,)
    return machine.tag_names


@dataclass(frozen=True)
class FilterSpec:
    """A loaded, compiled filter; see the module docstring for its meaning."""

    sections: tuple[tuple[str, Section], ...] = ()

    @classmethod
    def default(cls) -> FilterSpec:
        """What applies when no filter is given: every machine in zone `default`."""
        return cls((("zones", Section(include=(re.compile("^default$"),))),))

    @classmethod
    def load(cls, source: str, origin: str, environ: Mapping[str, str] | None = None) -> FilterSpec:
        """Load inline JSON or `@path`; raise ConfigError naming `origin`, key and pattern."""
        raw, label = load_json_source(source, origin, environ)
        return cls.from_json(raw, label)

    @classmethod
    def from_json(cls, raw: object, label: str) -> FilterSpec:
        """Validate and compile an already parsed JSON value (`label` is used in messages)."""
        if not isinstance(raw, dict):
            example = '{"zones": {"include": ["^default$"]}}'
            msg = f"must be a JSON object like {example}, got {_type_name(raw)}"
            raise ConfigError(f"{label}: {msg}")
        unknown = sorted(set(raw) - set(SECTIONS))
        if unknown:
            msg = f"unknown key {unknown[0]!r}; allowed: {', '.join(SECTIONS)}"
            raise ConfigError(f"{label}: {msg}")
        parsed = ((name, Section.parse(name, raw[name], label)) for name in SECTIONS if name in raw)
        return cls(tuple((name, sec) for name, sec in parsed if sec.include or sec.exclude))

    def reason(self, machine: MachineData) -> str | None:
        """Why the filter leaves this machine out (e.g. "zone 'lab-b' not included"), or None."""
        for name, section in self.sections:
            refusal = section.refusal(_NOUNS[name], _values(machine, name))
            if refusal is not None:
                return refusal
        return None

    def selects(self, machine: MachineData) -> bool:
        """True when the machine passes every section."""
        return self.reason(machine) is None

    def select(self, machines: Iterable[MachineData]) -> list[MachineData]:
        """The machines this filter selects, in their original order."""
        return [m for m in machines if self.reason(m) is None]

    def to_json(self) -> dict[str, dict[str, list[str]]]:
        """The effective filter as JSON (empty sections left out); loads back to an equal one."""
        return {name: section.to_json() for name, section in self.sections}
