"""A machine's desired state: what a targets rule or an orchestrator's request says it should be.

A `Desire` is the part of a targets rule (`-targets @file`) after its selector, and the body
of the daemon's `PUT /machines/<id>/desired`: the target (Deployed, Allocated, Ready, Ignore),
the deploy parameters sent with MAAS's `deploy` op (maas-api-facts §3.3), the power wanted of
a Deployed machine, the erase flags of a release to Ready (§3.7), whether a change of deploy
parameters redeploys, and a per-rule provisioning override. `Desire.parse` checks each field
once and raises `ConfigError` naming it; `to_json` gives back what `parse` reads, so a stored
desire round-trips.

Where it stops: it says what is wanted, not what to do about it. It reads no file (the targets
loader turns `user_data_file` into `user_data` text before calling `parse`), selects no
machine and decides nothing; the lifecycle does that.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

from maasflow.common.errors import ConfigError
from maasflow.daemon.lifecycle.vocabulary import Target

# `jammy`, `ubuntu/jammy`, `22.04`, `centos/centos70`, `custom/my-image` (facts §3.3)
_SERIES = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}(/[A-Za-z0-9][A-Za-z0-9._-]{0,62})?")
_KERNEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,62}")  # ga-22.04, hwe-22.04-edge, ...
MAX_USER_DATA = 64 * 1024  # bytes of cloud-init user data, before base64
MAX_COMMENT = 512


class Power(StrEnum):
    """The power wanted of a Deployed machine."""

    ON = "on"
    OFF = "off"


@dataclass(frozen=True)
class Erase:
    """The erase flags of a release (MAAS's `erase`, `quick_erase`, `secure_erase`)."""

    erase: bool = False
    quick_erase: bool = False
    secure_erase: bool = False

    def form(self) -> dict[str, str]:
        """The release op's parameters: only the flags that are set."""
        return {f.name: "true" for f in fields(self) if getattr(self, f.name)}


@dataclass(frozen=True)
class Provisioning:
    """A per-rule provisioning override: a script path or a URL, and the role to ask for."""

    script: str | None = None
    url: str | None = None
    role: str | None = None


@dataclass(frozen=True)
class Desire:
    """What one machine should be; the defaults are maasflow's default (Deployed, on)."""

    target: Target = Target.DEPLOYED
    distro_series: str | None = None
    hwe_kernel: str | None = None
    user_data: str | None = None  # the text itself; sent base64-encoded
    install_kvm: bool | None = None
    ephemeral_deploy: bool | None = None
    enable_hw_sync: bool | None = None
    comment: str | None = None
    power: Power = Power.ON
    release: Erase | None = None  # only for target Ready: release machines we own
    redeploy: bool = False  # a changed deploy parameter redeploys a Deployed machine
    provision: Provisioning | None = None

    @classmethod
    def parse(cls, raw: Mapping[str, Any], label: str) -> Desire:
        """Check every field once; `label` (e.g. `rule 2`) starts each error message."""
        unknown = sorted(set(raw) - _FIELDS)
        if unknown:
            allowed = ", ".join(sorted(_FIELDS))
            raise ConfigError(f"{label}: unknown field {unknown[0]!r}; the fields are {allowed}")
        values = {
            name: parser(raw[name], f"{label}: {name}")
            for name, parser in _PARSERS.items()
            if name in raw
        }
        desire = cls(**values)
        desire._check_consistent(label)
        return desire

    def _check_consistent(self, label: str) -> None:
        if self.release is not None and self.target is not Target.READY:
            raise ConfigError(f"{label}: release: only a Ready target releases machines")
        if self.target is not Target.DEPLOYED:
            wrong = [
                name for name in _DEPLOYED_ONLY if getattr(self, name) != getattr(_DEFAULT, name)
            ]
            if wrong:
                raise ConfigError(f"{label}: {wrong[0]}: only a Deployed target takes it")
        if self.install_kvm and self.ephemeral_deploy:
            raise ConfigError(f"{label}: install_kvm: MAAS refuses it with ephemeral_deploy")

    def deploy_form(self) -> dict[str, str]:
        """The deploy op's parameters (facts §3.3): only those set; user_data base64-encoded."""
        form: dict[str, str] = {}
        for name in ("distro_series", "hwe_kernel", "comment"):
            value = getattr(self, name)
            if value is not None:
                form[name] = value
        for name in ("install_kvm", "ephemeral_deploy", "enable_hw_sync"):
            value = getattr(self, name)
            if value is not None:
                form[name] = "true" if value else "false"
        if self.user_data is not None:
            form["user_data"] = base64.b64encode(self.user_data.encode()).decode("ascii")
        return form

    def to_json(self) -> dict[str, Any]:
        """The fields that differ from the default, in the shape `parse` reads."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value == getattr(_DEFAULT, f.name):
                continue
            if isinstance(value, Erase | Provisioning):
                value = {
                    k.name: getattr(value, k.name)
                    for k in fields(value)
                    if getattr(value, k.name) not in (None, False)
                }
            out[f.name] = str(value) if isinstance(value, StrEnum) else value
        return out


# -- one parser per field ------------------------------------------------------------------


def _enum(kind: type[StrEnum]) -> Any:
    def parse(value: object, where: str) -> StrEnum:
        text = value.lower() if isinstance(value, str) else None
        for member in kind:
            if text == member.value:
                return member
        names = ", ".join(m.value.capitalize() if kind is Target else m.value for m in kind)
        raise ConfigError(f"{where}: {_shown(value)} is not one of {names}")

    return parse


def _boolean(value: object, where: str) -> bool:
    if isinstance(value, bool):
        return value
    raise ConfigError(f"{where}: {_shown(value)} is not true or false")


def _text(pattern: re.Pattern[str] | None, limit: int, example: str) -> Any:
    def parse(value: object, where: str) -> str:
        if not isinstance(value, str) or len(value.encode()) > limit:
            raise ConfigError(f"{where}: {_shown(value)} is not a string of at most {limit} bytes")
        if pattern is not None and not pattern.fullmatch(value):
            raise ConfigError(f"{where}: {_shown(value)} is not a name like {example}")
        if pattern is None and any(ord(c) < 32 and c not in "\n\t" for c in value):
            raise ConfigError(f"{where}: control characters are not allowed")
        return value

    return parse


def _object(kind: type[Erase] | type[Provisioning], item: Any) -> Any:
    names = {f.name for f in fields(kind)}

    def parse(value: object, where: str) -> Erase | Provisioning:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected an object with {', '.join(sorted(names))}")
        unknown = sorted(set(value) - names)
        if unknown:
            raise ConfigError(
                f"{where}: unknown field {unknown[0]!r}; the fields are {', '.join(sorted(names))}"
            )
        return kind(**{k: item(v, f"{where}.{k}") for k, v in value.items()})

    return parse


def _provisioning(value: object, where: str) -> Provisioning:
    parsed = _object(Provisioning, _text(None, 2048, ""))(value, where)
    assert isinstance(parsed, Provisioning)
    if (parsed.script is None) == (parsed.url is None):
        raise ConfigError(f"{where}: give exactly one of script or url")
    if parsed.url is not None and not parsed.url.startswith(("http://", "https://")):
        raise ConfigError(f"{where}.url: {_shown(parsed.url)} is not an http(s) URL")
    return parsed


def _shown(value: object) -> str:
    """A short, printable rendering of a bad value for an error line."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


_PARSERS: dict[str, Any] = {
    "target": _enum(Target),
    "distro_series": _text(_SERIES, 128, "jammy or ubuntu/jammy"),
    "hwe_kernel": _text(_KERNEL, 64, "hwe-22.04"),
    "user_data": _text(None, MAX_USER_DATA, ""),
    "install_kvm": _boolean,
    "ephemeral_deploy": _boolean,
    "enable_hw_sync": _boolean,
    "comment": _text(None, MAX_COMMENT, ""),
    "power": _enum(Power),
    "release": _object(Erase, _boolean),
    "redeploy": _boolean,
    "provision": _provisioning,
}
_FIELDS = frozenset(_PARSERS)
_DEFAULT = Desire()
_DEPLOYED_ONLY = (
    "distro_series", "hwe_kernel", "user_data", "install_kvm", "ephemeral_deploy",
    "enable_hw_sync", "power", "redeploy", "provision",
)  # fmt: skip
