"""Power drivers' parameter fields, and the check MAAS runs on `power_parameters_*`.

The fields (name, label, required, default, choices) are the simulator's copy of the
`settings` of MAAS 3.6's drivers: `src/provisioningserver/drivers/power/manual.py`,
`webhook.py`, `ipmi.py`, `amt.py`, `redfish.py` and `drivers/pod/virsh.py`. The check is
the simulator's reading of `WithPowerTypeMixin` (`src/maasserver/forms/__init__.py`),
`DictCharField` (`src/maasserver/config_forms.py`) and `APIEditMixin`'s carrying over of
stored values (`src/maasserver/api/utils.py` `get_overridden_query_dict`):

- The stored parameters whose names are fields of the (new) power type are carried over;
  the submitted ones override them (the last value of a repeated name wins, as in Django).
- `power_parameters_skip_check=true` stores that dict unchecked.
- Otherwise a name that is no field of the type is 400 "Unknown parameter(s): …"; no
  value at all for a type with a required field is 400 "This field is required."; each
  field then takes its default when absent, and an empty required field or a value outside
  a choice field's choices is 400 "<label>: <message>". All under `power_parameters`.
- The stored result has every field of the type, defaults filled in; the empty power type
  stores `{}`.

Drivers not listed in `FIELDS` are accepted unchecked (the simulator models the fields of
the power types the project uses). No rack controller is ever missing here, so MAAS's 400
"No rack controllers are connected, unable to validate." never happens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from maasflow.sim.http import Params

PREFIX = "power_parameters_"
SKIP_CHECK = PREFIX + "skip_check"
REQUIRED = "This field is required."


@dataclass(frozen=True)
class Setting:
    """One power parameter field of a driver."""

    name: str
    label: str
    required: bool = False
    default: str | tuple[str, ...] = ""
    choices: tuple[str, ...] | None = None  # None: free text
    multiple: bool = False  # a multiple-choice field keeps every submitted value


def _choice(name: str, label: str, choices: tuple[str, ...], default: str, **kw: Any) -> Setting:
    return Setting(name, label, choices=choices, default=default, **kw)


FIELDS: dict[str, tuple[Setting, ...]] = {
    "manual": (),
    "webhook": (
        Setting("power_on_uri", "URI to power on the node", required=True),
        Setting("power_off_uri", "URI to power off the node", required=True),
        Setting("power_query_uri", "URI to query the nodes power status", required=True),
        Setting(
            "power_on_regex",
            "Regex to confirm the node is on",
            required=True,
            default=r"status.*\:.*running",
        ),
        Setting(
            "power_off_regex",
            "Regex to confirm the node is off",
            required=True,
            default=r"status.*\:.*stopped",
        ),
        Setting("power_user", "Power user"),
        Setting("power_pass", "Power password"),
        Setting("power_token", "Power token, will be used in place of power_user and power_pass"),
        _choice(
            "power_verify_ssl",
            "Verify SSL connections with system CA certificates",
            ("n", "y"),
            "n",
            required=True,
        ),
    ),
    "ipmi": (
        _choice("power_driver", "Power driver", ("LAN", "LAN_2_0"), "LAN_2_0", required=True),
        _choice("power_boot_type", "Power boot type", ("auto", "legacy", "efi"), "auto"),
        Setting("power_address", "IP address", required=True),
        Setting("power_user", "Power user"),
        Setting("power_pass", "Power password"),
        Setting("k_g", "K_g BMC key"),
        _choice("cipher_suite_id", "Cipher Suite ID", ("17", "3", "", "8", "12"), "3"),
        _choice("privilege_level", "Privilege Level", ("USER", "OPERATOR", "ADMIN"), "OPERATOR"),
        Setting(
            "workaround_flags",
            "Workaround Flags",
            default=("opensesspriv",),
            choices=(
                *("opensesspriv", "authcap", "idzero", "unexpectedauth", "forcepermsg"),
                *("endianseq", "intel20", "supermicro20", "sun20", "nochecksumcheck"),
                *("integritycheckvalue", "ipmiping", ""),
            ),
            multiple=True,
        ),
        Setting("mac_address", "Power MAC"),
        _choice("power_off_mode", "Power off mode", ("soft", "hard"), "hard"),
    ),
    "virsh": (
        Setting("power_address", "Address", required=True),
        Setting("power_pass", "Password (optional)"),
        Setting("power_id", "Virsh VM ID", required=True),
    ),
    "amt": (
        Setting("power_user", "AMT user", default="admin"),
        Setting("power_pass", "Power password"),
        _choice("port", "HTTP or HTTPS", ("16992", "16993"), "16992"),
        Setting("power_address", "Power address", required=True),
    ),
    "redfish": (
        Setting("power_address", "Redfish address", required=True),
        Setting("power_user", "Redfish user", required=True),
        Setting("power_pass", "Redfish password", required=True),
        Setting("node_id", "Node ID"),
    ),
}

Value = str | list[str]


def submitted(params: Params) -> dict[str, list[str]]:
    """The `power_parameters_<name>` values of a request, by name (skip_check left out)."""
    return {
        name[len(PREFIX) :]: values
        for name, values in params.items()
        if name.startswith(PREFIX) and name != SKIP_CHECK and values
    }


class Refused(ValueError):
    """MAAS would refuse these power parameters; `messages` go under `power_parameters`."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("; ".join(messages))
        self.messages = messages


def checked_parameters(
    power_type: str,
    given: dict[str, list[str]],
    stored: tuple[str, dict[str, Any]],
    skip_check: bool,
) -> dict[str, Any]:
    """The parameters MAAS stores for `power_type`, given the stored (type, parameters).

    Raise `Refused` when MAAS would answer 400 (see the module docstring).
    """
    fields = FIELDS.get(power_type)
    if fields is None and power_type:  # not modelled: carry over, merge, store unchecked
        kept = stored[1] if stored[0] == power_type else {}
        return dict(kept) | {name: _last(values) for name, values in given.items()}
    fields = fields or ()
    names = {field.name for field in fields}
    value: dict[str, Any] = {k: v for k, v in stored[1].items() if k in names}
    for name, values in given.items():
        value[name] = values if _is_multiple(fields, name) else _last(values)
    if skip_check:
        return value
    unknown = sorted(name[:64] for name in set(value) - names)
    if unknown:
        raise Refused([f"Unknown parameter(s): {', '.join(unknown)}."])
    if not value:
        if any(field.required for field in fields):
            raise Refused([REQUIRED])
        return {}
    return _clean(fields, value)


def _clean(fields: tuple[Setting, ...], value: dict[str, Any]) -> dict[str, Any]:
    cleaned: dict[str, Any] = {}
    errors: list[str] = []
    for field in fields:
        raw = value.get(field.name)
        if raw is None and field.default not in ("", ()):
            raw = list(field.default) if field.multiple else field.default
        if field.required and raw in (None, "", []):
            errors.append(f"{field.label}: {REQUIRED}")
            continue
        problem = _choice_problem(field, raw)
        if problem:
            errors.append(f"{field.label}: {problem}")
            continue
        cleaned[field.name] = ([] if field.multiple else "") if raw is None else raw
    if errors:
        raise Refused(errors)
    return cleaned


def _choice_problem(field: Setting, raw: Value | None) -> str | None:
    """MAAS's `compose_invalid_choice_text` message, or None when the value is allowed."""
    if field.choices is None or raw is None:
        return None
    for item in raw if isinstance(raw, list) else [raw]:
        if item not in field.choices:
            allowed = ", ".join(f"'{choice}'" for choice in field.choices)
            return f"'{item[:64]}' is not a valid {field.name}.  It should be one of: {allowed}."
    return None


def _is_multiple(fields: tuple[Setting, ...], name: str) -> bool:
    return any(field.name == name and field.multiple for field in fields)


def _last(values: list[str]) -> str:
    return values[-1]
