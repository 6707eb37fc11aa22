"""Validation of the simulator's write parameters, answering in MAAS's words.

Hostname rules are the simulator's reading of `validate_hostname`/`validate_domain_name` in
MAAS's `src/maasserver/utils/dns.py` (RFC 952/1123 labels, no `_` in the host label, ≤255
characters; a dotted value is an FQDN whose domain must exist, facts §3.8). Booleans accept
the formencode `StringBool` spellings (true/false, yes/no, on/off, 1/0). Distro series may
be `jammy`, `ubuntu/jammy` or `22.04` (facts §3.3), or another synced OS's image such as
`centos/centos70`. Power types and their parameters are checked on every update and
create, as MAAS's form always carries them (`powertypes.py`).
Errors are 400 JSON field dicts. Each function validates everything before returning, so a
refused write changes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from maasflow.sim import powertypes
from maasflow.sim.http import Params, fail, field_errors
from maasflow.sim.machine import Machine
from maasflow.sim.scenario import MachineSpec
from maasflow.sim.statuses import Status
from maasflow.sim.world import ADMIN_ONLY, World

TRUE = frozenset({"true", "t", "yes", "y", "on", "1"})
FALSE = frozenset({"false", "f", "no", "n", "off", "0", ""})
POWER_TYPES = frozenset(
    [
        "amt",
        "apc",
        "dli",
        "eaton",
        "hmc",
        "hmcz",
        "ipmi",
        "lxd",
        "manual",
        "moonshot",
        "mscm",
        "msftocs",
        "nova",
        "openbmc",
        "proxmox",
        "raritan",
        "recs_box",
        "redfish",
        "sm15k",
        "ucsm",
        "virsh",
        "vmware",
        "webhook",
        "wedge",
    ]
)
ARCHITECTURES: tuple[str, ...] = (
    "amd64/generic",
    "arm64/generic",
    "armhf/generic",
    "i386/generic",
    "ppc64el/generic",
    "s390x/generic",
)
SERIES = {"bionic": "18.04", "focal": "20.04", "jammy": "22.04", "noble": "24.04"}
# The boot resources this MAAS has synced: Ubuntu's series, plus CentOS images as a region
# with them imported offers them (facts §10.1: `osystem/series`, a bare series is Ubuntu).
IMAGES: dict[str, frozenset[str]] = {
    "ubuntu": frozenset(SERIES),
    "centos": frozenset({"centos70", "centos8"}),
}
DEFAULT_SERIES = "jammy"
MAC_RE = re.compile(r"^[0-9a-fA-F]{2}([:-]?)[0-9a-fA-F]{2}(\1[0-9a-fA-F]{2}){4}$")
_LABEL_CHARS = re.compile(r"^[a-zA-Z0-9-]*$")
_INVALID_CHOICE = "Select a valid choice. That choice is not one of the available choices."


def first(params: Params, name: str) -> str | None:
    """The first value of a parameter, or None."""
    values = params.get(name)
    return values[0] if values else None


def parse_bool(params: Params, name: str, default: bool = False) -> bool:
    """A boolean parameter; 400 JSON when the value is no boolean spelling."""
    raw = first(params, name)
    if raw is None:
        return default
    lowered = raw.strip().lower()
    if lowered in TRUE:
        return True
    if lowered in FALSE:
        return False
    raise field_errors({name: [f"'{raw[:64]}' is not a valid boolean value."]})


def parse_mac(raw: str) -> str | None:
    """A MAC in lower-case colon form, or None when `raw` is not a MAC address."""
    if not MAC_RE.match(raw.strip()):
        return None
    digits = re.sub(r"[:-]", "", raw.strip()).lower()
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def hostname_errors(world: World, value: str, machine: Machine | None) -> list[str]:
    """Why `value` cannot be a hostname (empty list when it can)."""
    if not value:
        return ["This field cannot be blank."]
    if len(value) > 255:
        return ["Hostname is too long.  Maximum allowed is 255 characters."]
    host, _, domain = value.partition(".")
    if "_" in host:
        return [f"Host label cannot contain underscore: {host!r}."]
    for label in value.split("."):
        problem = _label_problem(label)
        if problem:
            return [problem]
    if domain and domain not in world.domains:
        return ["Nonexistant domain."]
    if world.hostname_taken(host, machine):
        return ["Node with this Hostname already exists."]
    return []


def _label_problem(label: str) -> str | None:
    if not label:
        return "DNS name contains an empty label."
    if len(label) > 63:
        return f"Label is too long: {label!r}.  Maximum allowed is 63 characters."
    if label.startswith("-") or label.endswith("-"):
        return f"Label cannot start or end with hyphen: {label!r}."
    if not _LABEL_CHARS.match(label):
        return f"Label contains disallowed characters: {label!r}."
    return None


def update_changes(world: World, machine: Machine, params: Params) -> dict[str, Any]:
    """The attribute changes a `PUT machines/<id>/` asks for; 400 JSON if any is invalid."""
    errors: dict[str, list[str]] = {}
    changes: dict[str, Any] = {}
    hostname = first(params, "hostname")
    if hostname is not None:
        _hostname_change(world, machine, hostname, errors, changes)
    _choice_changes(world, params, errors, changes)
    _number_changes(params, errors, changes)
    power = _power_change(params, machine.power_type, machine.power_parameters, errors)
    if power is not None:
        changes["power_type"], changes["power_parameters"] = power
    if first(params, "disable_ipv4") not in (None, "", "false", "False", "0"):
        errors["disable_ipv4"] = ["Cannot disable IPv4 on a machine."]
    if errors:
        raise field_errors(errors)
    return changes


def _hostname_change(
    world: World,
    machine: Machine,
    value: str,
    errors: dict[str, list[str]],
    changes: dict[str, Any],
) -> None:
    problems = hostname_errors(world, value, machine)
    if problems:
        errors["hostname"] = problems
        return
    host, _, domain = value.partition(".")
    changes["hostname"] = host
    if domain:
        changes["domain"] = world.domains[domain]


def _choice_changes(
    world: World, params: Params, errors: dict[str, list[str]], changes: dict[str, Any]
) -> None:
    for name, table in (("zone", world.zones), ("pool", world.pools), ("domain", world.domains)):
        value = first(params, name)
        if value is None:
            continue
        if value in table:
            changes[name] = table[value]
        else:
            errors[name] = [_INVALID_CHOICE]
    description = first(params, "description")
    if description is not None:
        changes["description"] = description
    architecture = first(params, "architecture")
    if architecture is not None:
        resolved = resolve_architecture(architecture)
        if resolved is None:
            errors["architecture"] = [_arch_message(architecture)]
        else:
            changes["architecture"] = resolved


def _number_changes(params: Params, errors: dict[str, list[str]], changes: dict[str, Any]) -> None:
    for name, attribute in (("cpu_count", "cpu_count"), ("memory", "memory")):
        raw = first(params, name)
        if raw is None:
            continue
        try:
            number = int(raw)
        except ValueError:
            errors[name] = ["Enter a whole number."]
            continue
        if number < 0:
            errors[name] = ["Ensure this value is greater than or equal to 0."]
        else:
            changes[attribute] = number


def _power_change(
    params: Params, current_type: str, current: dict[str, Any], errors: dict[str, list[str]]
) -> tuple[str, dict[str, Any]] | None:
    """The (power_type, parameters) to store, or None when nothing changes.

    Runs on every PUT and create, as MAAS's power fields are always part of its form
    (`WithPowerTypeMixin`, `src/maasserver/forms/__init__.py`): an unknown power type is a
    choice error and the parameters are then checked against the current type.
    """
    new_type = first(params, "power_type")
    if new_type is not None and new_type not in POWER_TYPES and new_type != "":
        errors["power_type"] = [
            f"Select a valid choice. {new_type[:64]} is not one of the available choices."
        ]
        new_type = None
    power_type = current_type if new_type is None else new_type
    skip_check = first(params, powertypes.SKIP_CHECK) == "true"
    given = powertypes.submitted(params)
    try:
        checked = powertypes.checked_parameters(
            power_type, given, (current_type, current), skip_check
        )
    except powertypes.Refused as exc:
        errors["power_parameters"] = exc.messages
        return None
    if power_type == "" and not skip_check:
        checked = {}  # MAAS's check_driver resets the parameters of the empty type
    if power_type == current_type and checked == current:
        return None
    return power_type, checked


def resolve_architecture(value: str) -> str | None:
    """`amd64` → `amd64/generic`; a known full name stays; anything else is None."""
    full = value if "/" in value else f"{value}/generic"
    return full if full in ARCHITECTURES else None


def _arch_message(value: str) -> str:
    choices = ", ".join(f"'{arch}'" for arch in ARCHITECTURES)
    return f"'{value[:64]}' is not a valid architecture.  It should be one of: {choices}."


def resolve_series(value: str | None) -> tuple[str, str]:
    """(osystem, series) for a `distro_series` value among the synced images; 400 JSON if not."""
    raw = (value or DEFAULT_SERIES).strip()
    osystem, _, series = raw.rpartition("/")
    osystem = osystem or "ubuntu"
    if osystem == "ubuntu":
        by_version = {version: name for name, version in SERIES.items()}
        series = by_version.get(series, series)
    if series not in IMAGES.get(osystem, ()):
        offered = sorted(f"{os_name}/{name}" for os_name, names in IMAGES.items() for name in names)
        choices = ", ".join(["''"] + [f"'{choice}'" for choice in offered])
        message = f"'{raw[:64]}' is not a valid distro_series.  It should be one of: {choices}."
        raise field_errors({"distro_series": [message]})
    return osystem, series


@dataclass(frozen=True)
class DeployRequest:
    """What a valid deploy asks for."""

    osystem: str
    series: str
    user_data: str | None
    hwe_kernel: str | None


def deploy_request(params: Params, is_admin: bool) -> DeployRequest:
    """Validate `op=deploy` parameters (facts §3.3)."""
    if parse_bool(params, "install_rackd"):
        raise field_errors({"install_rackd": ["Installing rack controllers is not supported."]})
    wants_vm_host = parse_bool(params, "install_kvm") or parse_bool(params, "register_vmhost")
    if wants_vm_host and not is_admin:
        raise fail(403, ADMIN_ONLY)
    parse_bool(params, "ephemeral_deploy")
    osystem, series = resolve_series(first(params, "distro_series"))
    return DeployRequest(osystem, series, first(params, "user_data"), first(params, "hwe_kernel"))


@dataclass
class CreateRequest:
    """What a valid `POST machines/` asks for."""

    spec: MachineSpec
    deployed: bool
    commission: bool
    power_type: str
    power_parameters: dict[str, Any] = field(default_factory=dict)


def create_request(
    world: World, params: Params, is_admin: bool, deployed_field: bool = True
) -> CreateRequest:
    """Validate a machine creation (facts §3.9); 400 JSON listing every problem.

    `deployed` is a field of the admin form of MAAS 3.1+ only (`deployed_field`); anyone
    else's `deployed=true` is not a field the form has, so it is ignored.
    """
    errors: dict[str, list[str]] = {}
    deployed = parse_bool(params, "deployed") if is_admin and deployed_field else False
    commission = parse_bool(params, "commission", default=True) if is_admin else False
    power = _power_change(params, "", {}, errors) or ("", {})
    wanted_type = first(params, "power_type") or ""
    needs_hardware = not (deployed and wanted_type in ("", "unknown"))
    architecture = _create_architecture(params, needs_hardware, errors)
    macs = _create_macs(world, params, needs_hardware and wanted_type != "ipmi", errors)
    hostname = first(params, "hostname")
    if hostname is not None:
        problems = hostname_errors(world, hostname, None)
        if problems:
            errors["hostname"] = problems
    domain_field = first(params, "domain") or ""
    if domain_field and domain_field not in world.domains:
        errors["domain"] = [_INVALID_CHOICE]
    if errors:
        raise field_errors(errors)
    host, _, domain = (hostname or _free_name(world)).partition(".")
    domain = domain or domain_field
    spec = MachineSpec(
        hostname=host,
        status=Status.DEPLOYED if deployed else Status.NEW,
        power_state="unknown",  # deployed=true too: no power type yet (facts §10.1)
        architecture=architecture,
        macs=macs,
        domain=domain or next(iter(world.domains)),
        description=first(params, "description") or "",
    )
    return CreateRequest(spec, deployed, commission and not deployed, power[0], power[1])


def _create_architecture(params: Params, required: bool, errors: dict[str, list[str]]) -> str:
    raw = first(params, "architecture")
    if not raw:
        if required:
            errors["architecture"] = ["This field is required."]
        return "amd64/generic"
    resolved = resolve_architecture(raw)
    if resolved is None:
        errors["architecture"] = [_arch_message(raw)]
        return "amd64/generic"
    return resolved


def _create_macs(
    world: World, params: Params, required: bool, errors: dict[str, list[str]]
) -> list[str]:
    raw = [value for value in params.get("mac_addresses", []) if value.strip()]
    if not raw and required:
        errors["mac_addresses"] = ["This field is required."]
    macs, problems = [], []
    known = {mac for machine in world.machines.values() for mac in machine.macs}
    for value in raw:
        mac = parse_mac(value)
        if mac is None:
            problems.append(f"'{value[:64]}' is not a valid MAC address.")
        elif mac in known or mac in macs:
            problems.append(f"MAC address {mac} already in use.")
        else:
            macs.append(mac)
    if problems:
        errors["mac_addresses"] = problems
    return macs


def _free_name(world: World) -> str:
    number = len(world.machines) + 1
    while world.hostname_taken(f"machine-{number}"):
        number += 1
    return f"machine-{number}"


def require_admin(is_admin: bool) -> None:
    """403 with MAAS's admin-only message unless the caller is an admin."""
    if not is_admin:
        raise fail(403, ADMIN_ONLY)
