"""The power target's configuration: machines, backends, credentials, and `maasflow power-config`.

A power config file is JSON: global `wol` defaults plus `machines`, a map from a name to one
machine's backend settings (`wol`, `dli` or `command`). Unknown keys are rejected, so a typo
never silently changes behaviour. The service's own credentials (the Bearer token or the
Basic user and password that MAAS sends) never come from the command line: they are read
from files (by `maasflow.common.secrets`' one rule, as a DLI `password_file` is) or the
environment by `load_power_auth`.

`main(argv)` is the `maasflow power-config` sub-command: it prints the `power_type=webhook`
and `power_parameters_*` values to put into MAAS for one machine (MAAS 3.6
`src/provisioningserver/drivers/power/webhook.py` names them). This module stops at
configuration; the HTTP routes live in `power_api.py`, the backends in `backends/`.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import quote, urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from maasflow.common.command_parser import CommandParser
from maasflow.common.errors import ConfigError
from maasflow.common.secrets import (
    CREDENTIALS_VARIABLE,
    file_origin,
    parse_token,
    read_credential,
    read_secret_file,
)
from maasflow.serve.system_id import SHAPE, is_system_id

# MAAS's defaults for the webhook driver's regexes (webhook.py, 3.6); our query answers match them.
MAAS_ON_REGEX = r"status.*\:.*running"
MAAS_OFF_REGEX = r"status.*\:.*stopped"
_TOKEN, _PASS = "power token", "Basic auth password"
_ACK_PASS = "acknowledgement page password"  # noqa: S105 -- what a file holds, not a secret
RESERVED_NAMES = frozenset({"acks"})  # `/power/acks` is the acknowledgement page
PLACEHOLDER_NAMES = frozenset({"system_id", "mac", "hostname", "name"})
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_MAC_HEX = re.compile(r"[0-9a-f]{12}")
_MAC_SEPARATED = re.compile(
    r"[0-9a-f]{2}([:-])(?:[0-9a-f]{2}\1){4}[0-9a-f]{2}|[0-9a-f]{4}(?:\.[0-9a-f]{4}){2}"
)


def normalize_mac(text: str) -> str | None:
    """Return `aa:bb:cc:dd:ee:ff` for a MAC in any usual notation, or None if it is not one."""
    lowered = text.strip().lower()
    if not (_MAC_HEX.fullmatch(lowered) or _MAC_SEPARATED.fullmatch(lowered)):
        return None
    digits = re.sub(r"[^0-9a-f]", "", lowered)
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# How long a power-off waits for a person by default: MAAS 3.5/3.6 gives one power action 3
# attempts of at most 5 minutes (src/maastemporalworker/workflow/power.py), and its retries
# join the same wait, so the wait spans all of them (see backends/acks.py).
OFF_ACK_TIMEOUT = 900.0


class WolDefaults(_Strict):
    """Where magic packets go unless a machine says otherwise, and how long an off waits."""

    broadcast: str = "255.255.255.255"
    port: int = Field(9, ge=0, le=65535)
    off_ack_timeout: float = Field(OFF_ACK_TIMEOUT, gt=0)


class Probe(_Strict):
    """A TCP connect that tells whether a machine is up (connect works) or down."""

    host: str = Field(min_length=1)
    port: int = Field(22, ge=1, le=65535)
    timeout: float = Field(1.0, gt=0, le=60)
    interval: float = Field(2.0, gt=0, le=60)  # how often a waiting power-off re-probes
    # After a magic packet the machine reads "on" for this long, or until the probe first
    # sees it up: a PXE boot takes minutes, MAAS's confirm loop only ~35 s.
    boot_grace: float = Field(600.0, ge=0)
    # After a person acknowledges a power-off the machine reads "off" for this long, or until
    # the probe first sees it down: an OS shuts down while MAAS already asks again.
    shutdown_grace: float = Field(300.0, ge=0)


class _Machine(_Strict):
    mac: str | None = None
    system_id: str | None = Field(None, min_length=1, max_length=64)
    hostname: str | None = Field(None, min_length=1, max_length=255)

    @field_validator("system_id")
    @classmethod
    def _system_id(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not is_system_id(value.lower()):
            raise ValueError(f"not a MAAS system_id ({SHAPE})")
        return value.lower()

    @field_validator("mac")
    @classmethod
    def _mac(cls, value: str | None) -> str | None:
        if value is None:
            return None
        mac = normalize_mac(value)
        if mac is None:
            raise ValueError("not a MAC address (use aa:bb:cc:dd:ee:ff)")
        return mac


class WolMachine(_Machine):
    """Woken by a magic packet; powered off by a person who acknowledges it."""

    backend: Literal["wol"]
    mac: str
    broadcast: str | None = None
    port: int | None = Field(None, ge=0, le=65535)
    off_ack_timeout: float | None = Field(None, gt=0)
    probe: Probe | None = None


class DliMachine(_Machine):
    """One outlet of a Digital Loggers web power switch (REST or legacy CGI dialect)."""

    backend: Literal["dli"]
    address: str = Field(min_length=1)  # host, host:port, or http(s)://host[:port]
    outlet: int = Field(ge=1, le=64)  # 1-based, as printed on the unit and used by MAAS
    dialect: Literal["rest", "legacy", "auto"] = "auto"
    user: str = "admin"
    password: SecretStr | None = None
    password_file: Path | None = None
    password_env: str | None = None
    cycle_on: bool = False  # `on` of an outlet already on cycles it, as MAAS's dli driver does
    cycle_delay: float = Field(1.0, ge=0, le=60)
    cycle_guard: float = Field(30.0, ge=0)  # no second cycle this soon after our own `on`
    settle_timeout: float = Field(5.0, ge=0, le=120)  # how long to poll a lagging state
    poll_interval: float = Field(0.5, gt=0, le=10)
    timeout: float = Field(10.0, gt=0, le=120)
    verify_tls: bool = True

    def resolve_password(self) -> str:
        """The outlet password from the config, a file, or an environment variable."""
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_file is not None:
            return read_secret_file(self.password_file, "password_file", "outlet password")
        if self.password_env is not None:
            value = os.environ.get(self.password_env)
            if not value:
                raise ConfigError(f"dli password_env: ${self.password_env} is empty or unset")
            return value
        return ""


class CommandMachine(_Machine):
    """Switched and read by running programs (argv templates, never a shell)."""

    backend: Literal["command"]
    on: list[str] = Field(min_length=1)
    off: list[str] = Field(min_length=1)
    status: list[str] | None = Field(None, min_length=1)
    timeout: float = Field(30.0, gt=0, le=3600)
    on_regex: str = r"(?i)\b(on|running)\b"
    off_regex: str = r"(?i)\b(off|stopped)\b"

    @field_validator("on", "off", "status")
    @classmethod
    def _templates(cls, value: list[str] | None) -> list[str] | None:
        for arg in value or []:
            unknown = set(_PLACEHOLDER.findall(arg)) - PLACEHOLDER_NAMES
            if unknown:
                raise ValueError(f"unknown placeholder {{{sorted(unknown)[0]}}}")
        return value

    @field_validator("on_regex", "off_regex")
    @classmethod
    def _regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regex: {exc}") from None
        return value

    @model_validator(mode="after")
    def _placeholders_defined(self) -> CommandMachine:
        """Every placeholder a template uses has a value, or the program would get "".

        `{system_id}` and `{mac}` come only from this config: MAAS 3.5+ sends no system_id
        with on/off (its power CLI calls the driver with system_id None,
        power_driver_command.py) and never a MAC. `{hostname}` falls back to the name."""
        templates = (self.on, self.off, self.status or [])
        used = {name for template in templates for arg in template for name in _used(arg)}
        for name, fix in _PLACEHOLDER_FIXES.items():
            if name in used and getattr(self, name) is None:
                raise ValueError(f'a template uses {{{name}}} but no "{name}" is configured; {fix}')
        return self


# What to add when a template's placeholder has no configured value (checked in this order).
_PLACEHOLDER_FIXES = {
    "system_id": "add the machine's MAAS system_id (MAAS sends none with power actions)",
    "mac": 'add the machine\'s MAC, e.g. "mac": "52:54:00:12:34:56" (MAAS sends none)',
}


def _used(arg: str) -> set[str]:
    """The placeholder names in one template argument."""
    return set(_PLACEHOLDER.findall(arg)) & PLACEHOLDER_NAMES


MachineSpec = Annotated[WolMachine | DliMachine | CommandMachine, Field(discriminator="backend")]


class PowerConfig(_Strict):
    """The whole file: WoL defaults and the machines by name."""

    wol: WolDefaults = WolDefaults()
    machines: dict[str, MachineSpec] = Field(default_factory=dict)
    _by_key: dict[str, str] = PrivateAttr(default_factory=dict)

    @field_validator("machines")
    @classmethod
    def _names(cls, value: dict[str, MachineSpec]) -> dict[str, MachineSpec]:
        for name in value:
            if not name or len(name) > 128 or "/" in name or not name.isprintable():
                raise ValueError(f"machine name {name!r}: use 1-128 printable chars, no '/'")
            if name.lower() in RESERVED_NAMES:
                raise ValueError(f"machine name {name!r} is reserved")
        return value

    @model_validator(mode="after")
    def _index(self) -> PowerConfig:
        index: dict[str, str] = {}
        for name, machine in self.machines.items():
            for key in (machine.mac, (machine.system_id or "").lower() or None):
                if key is None:
                    continue
                if index.setdefault(key, name) != name:
                    raise ValueError(f"{key} is used by both {index[key]!r} and {name!r}")
        self._by_key = index
        return self

    def password_envs(self) -> frozenset[str]:
        """The environment variables the config names as holding outlet passwords."""
        return frozenset(
            spec.password_env
            for spec in self.machines.values()
            if isinstance(spec, DliMachine) and spec.password_env
        )

    def find(self, key: str) -> str | None:
        """The machine name for a configured name, a MAC (any notation) or a system_id."""
        if key in self.machines:
            return key
        mac = normalize_mac(key)
        return self._by_key.get(mac if mac is not None else key.lower())


def _error_location(loc: tuple[int | str, ...]) -> str:
    parts = [str(part) for part in loc]
    if len(parts) > 2 and parts[0] == "machines" and parts[2] in ("wol", "dli", "command"):
        del parts[2]  # the discriminator tag pydantic inserts is not a key of the file
    return ".".join(parts) or "(top level)"


def _validation_message(path: Path, exc: ValidationError) -> str:
    errors = exc.errors()
    first = errors[0]
    where = _error_location(tuple(first["loc"]))
    what = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
    what = what.removeprefix("Value error, ")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"power config {path}: {where}: {what}{more}; fix it (see power.example.json)"


def load_power_config(path: Path) -> PowerConfig:
    """Read and validate a power config file; every problem is a one-line ConfigError."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"power config {path}: cannot read: {exc.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"power config {path}: not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"power config {path}: must be a JSON object with a 'machines' key")
    try:
        return PowerConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_validation_message(path, exc)) from None


@dataclass(frozen=True)
class PowerAuth:
    """The credentials MAAS must present; none at all means the power API is open.

    `ack_user`/`ack_password` are a person's Basic credentials for the acknowledgement page
    and its buttons only (a browser cannot send MAAS's Bearer token); they switch nothing.
    """

    token: str | None = field(default=None, repr=False)
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    ack_user: str | None = None
    ack_password: str | None = field(default=None, repr=False)

    @property
    def is_open(self) -> bool:
        return self.token is None and self.user is None

    @property
    def browser_can_ack(self) -> bool:
        """Whether a person with a browser can reach the acknowledgement page (Basic or open)."""
        return self.is_open or self.user is not None or self.ack_user is not None

    def __repr__(self) -> str:
        token = "set" if self.token else "unset"
        return (
            f"PowerAuth(token={token}, user={self.user!r}, password=<hidden>, "
            f"ack_user={self.ack_user!r}, ack_password=<hidden>)"
        )


def load_power_auth(
    token_file: Path | None,
    user: str | None,
    pass_file: Path | None,
    *,
    complete: bool = True,
    ack_user: str | None = None,
    ack_pass_file: Path | None = None,
) -> PowerAuth:
    """Credentials from files, else `MAASFLOW_POWER_TOKEN` / `MAASFLOW_POWER_PASS` (and the
    acknowledgement page's password from `ack_pass_file`, else `MAASFLOW_POWER_ACK_PASS`),
    else the credentials `power_token`, `power_pass`, `power_ack_pass` in
    $CREDENTIALS_DIRECTORY (systemd's LoadCredential=, the docker image's secrets).

    `complete` (serving) insists that a user comes with a password and the other way round.
    """
    token = _power_token(token_file)
    user = user or os.environ.get("MAASFLOW_POWER_USER") or None
    password = read_secret_file(pass_file, "--power-pass-file", _PASS) if pass_file else None
    password = password or os.environ.get("MAASFLOW_POWER_PASS") or None
    password = password or read_credential("power_pass", _PASS, os.environ)
    if complete and (user is None) != (password is None):
        raise ConfigError(
            "--power-user and a password (--power-pass-file, MAASFLOW_POWER_PASS or the "
            "credential power_pass) go together: give both or neither"
        )
    if user is not None and ":" in user:
        raise ConfigError("--power-user: a Basic auth user name cannot contain ':'")
    ack_user, ack_password = _ack_credentials(ack_user, ack_pass_file, user)
    return PowerAuth(token, user, password, ack_user, ack_password)


def _ack_credentials(
    user: str | None, pass_file: Path | None, power_user: str | None
) -> tuple[str | None, str | None]:
    """The acknowledgement page's own Basic user (default `ack`) and password, or neither."""
    password: str | None = os.environ.get("MAASFLOW_POWER_ACK_PASS") or None
    password = password or read_credential("power_ack_pass", _ACK_PASS, os.environ)
    if pass_file is not None:
        password = read_secret_file(pass_file, "--power-ack-pass-file", _ACK_PASS)
    if password is None:
        if user is not None:
            raise ConfigError(
                "--power-ack-user needs a password: --power-ack-pass-file or "
                "MAASFLOW_POWER_ACK_PASS"
            )
        return None, None
    user = user or "ack"
    if ":" in user or user == power_user:
        raise ConfigError("--power-ack-user: use a name without ':' that differs from --power-user")
    return user, password


def _power_token(path: Path | None) -> str | None:
    """The Bearer token MAAS must send: a header value, checked as the provisioning token is."""
    if path is not None:
        text = read_secret_file(path, "--power-token-file", _TOKEN)
        return parse_token(text, file_origin("--power-token-file", path), _TOKEN)
    value = os.environ.get("MAASFLOW_POWER_TOKEN")
    if value:
        return parse_token(value, "MAASFLOW_POWER_TOKEN", _TOKEN)
    value = read_credential("power_token", _TOKEN, os.environ)
    return parse_token(value, f"{CREDENTIALS_VARIABLE}/power_token", _TOKEN) if value else None


def add_config_argument(parser: argparse._ActionsContainer, help_text: str) -> None:
    """`--power-config PATH`, defaulting to $MAASFLOW_POWER_CONFIG (serve and power-config)."""
    parser.add_argument(
        "--power-config",
        type=Path,
        metavar="PATH",
        default=os.environ.get("MAASFLOW_POWER_CONFIG"),
        help=help_text,
    )


def add_auth_arguments(parser: argparse._ActionsContainer) -> None:
    """The credential flags shared by `serve` and `power-config` (secrets only by file)."""
    parser.add_argument(
        "--power-token-file",
        type=Path,
        metavar="PATH",
        help="file holding the Bearer token MAAS must send (or env MAASFLOW_POWER_TOKEN)",
    )
    parser.add_argument(
        "--power-user",
        metavar="NAME",
        help="Basic auth user MAAS must send (or env MAASFLOW_POWER_USER)",
    )
    parser.add_argument(
        "--power-pass-file",
        type=Path,
        metavar="PATH",
        help="file holding the Basic auth password (or env MAASFLOW_POWER_PASS)",
    )


# --- `maasflow power-config` -------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="maasflow power-config",
        description="Print the MAAS webhook power parameters for a machine of a power config.",
    )
    parser.add_argument("machine", nargs="?", help="configured name, MAC or system_id")
    add_config_argument(parser, "power config JSON (or env MAASFLOW_POWER_CONFIG)")
    parser.add_argument(
        "--base-url",
        metavar="URL",
        help="how a MAAS rack controller reaches `maasflow serve`, e.g. http://10.0.0.2:8080",
    )
    parser.add_argument(
        "--auth",
        choices=["bearer", "basic", "none"],
        help="auth MAAS should send (default: what the service has configured)",
    )
    parser.add_argument(
        "--verify-ssl",
        choices=["y", "n"],
        help="power_verify_ssl (default: n; y needs a CA-trusted certificate)",
    )
    parser.add_argument("--profile", default="admin", help="maas CLI profile (default admin)")
    parser.add_argument(
        "--show-secrets",
        action="store_true",
        help="print the real token/password instead of placeholders",
    )
    parser.add_argument("--list", action="store_true", help="list configured machines")
    add_auth_arguments(parser)
    return parser


def _check_base_url(base_url: str | None) -> str:
    if not base_url:
        raise ConfigError("--base-url is required, e.g. --base-url http://10.0.0.2:8080")
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"--base-url {base_url!r}: use http(s)://<host>[:port][/prefix]")
    return base_url.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def _auth_parameters(mode: str, auth: PowerAuth, show: bool) -> list[tuple[str, str]]:
    if mode == "bearer":
        if show and auth.token is None:
            raise ConfigError("--show-secrets: no token configured (--power-token-file)")
        return [("power_token", auth.token if show and auth.token else "<POWER_TOKEN>")]
    if mode == "basic":
        if show and auth.password is None:
            raise ConfigError("--show-secrets: no password configured (--power-pass-file)")
        password = auth.password if show and auth.password else "<POWER_PASS>"
        return [("power_user", auth.user or "<POWER_USER>"), ("power_pass", password)]
    return []


def webhook_parameters(
    name: str, base_url: str, auth_mode: str, auth: PowerAuth, verify_ssl: str, show: bool
) -> list[tuple[str, str]]:
    """The `power_parameters_*` names (without prefix) and values for one machine."""
    machine_url = f"{base_url}/power/{quote(name, safe='')}"
    return [
        ("power_on_uri", f"{machine_url}/on"),
        ("power_off_uri", f"{machine_url}/off"),
        ("power_query_uri", machine_url),
        ("power_on_regex", MAAS_ON_REGEX),
        ("power_off_regex", MAAS_OFF_REGEX),
        ("power_verify_ssl", verify_ssl),
        *_auth_parameters(auth_mode, auth, show),
    ]


def _list_machines(config: PowerConfig) -> None:
    for name, machine in config.machines.items():
        print(f"{name}\t{machine.backend}\t{machine.mac or '-'}\t{machine.system_id or '-'}")


def _print_parameters(
    name: str, system_id: str | None, params: list[tuple[str, str]], profile: str
) -> None:
    print("power_type=webhook")
    for key, value in params:
        print(f"power_parameters_{key}={value}")
    # Every word quoted, the placeholder too: an unquoted `<system_id>` is a redirection.
    words = ["maas", profile, "machine", "update", system_id or "<system_id>", "power_type=webhook"]
    words += [f"power_parameters_{key}={value}" for key, value in params]
    print()
    print(" ".join(shlex.quote(word) for word in words))
    if system_id is None:
        print(
            f'note: replace <system_id> with {name}\'s MAAS system_id, or add "system_id" '
            "to its entry in the power config",
            file=sys.stderr,
        )


def _default_auth_mode(auth: PowerAuth) -> str:
    if auth.token is not None:
        return "bearer"
    return "basic" if auth.user is not None else "none"


def main(argv: list[str]) -> int:
    """`maasflow power-config`: print MAAS webhook parameters, or `--list` the machines."""
    args = _parser().parse_args(argv)
    if args.power_config is None:
        raise ConfigError("--power-config PATH is required (or set MAASFLOW_POWER_CONFIG)")
    config = load_power_config(Path(args.power_config))
    if args.list:
        _list_machines(config)
        return 0
    return _show_machine(args, config)


def _show_machine(args: argparse.Namespace, config: PowerConfig) -> int:
    if not args.machine:
        raise ConfigError("name a machine (see --list), e.g. maasflow power-config desk1 ...")
    name = config.find(args.machine)
    if name is None:
        raise ConfigError(f"machine {args.machine!r} is not in {args.power_config}; see --list")
    base_url = _check_base_url(args.base_url)
    host = urlsplit(base_url).hostname or ""
    if _is_loopback(host):
        print(
            f"warning: {host} is a loopback address; MAAS routes power requests by the IP "
            "in power_query_uri, so use an address a rack controller can reach",
            file=sys.stderr,
        )
    auth = load_power_auth(
        args.power_token_file, args.power_user, args.power_pass_file, complete=False
    )
    mode = args.auth or _default_auth_mode(auth)
    params = webhook_parameters(
        name, base_url, mode, auth, args.verify_ssl or "n", args.show_secrets
    )
    _print_parameters(name, config.machines[name].system_id, params, args.profile)
    if mode != "none" and not args.show_secrets:
        print(
            "note: secrets are shown as placeholders; --show-secrets prints them", file=sys.stderr
        )
    return 0
