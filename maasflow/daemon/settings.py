"""The daemon's settings: maas-flow's Go-style flags and environment names, validated once.

`load_settings(argv, environ)` resolves every setting as flag > environment > default and
returns a frozen `Settings`. Flags are Go-style: `-flag value`, `-flag=value`, one or two
dashes, bool flags bare (`-preview`) or with a value (`-preview=false`). Each environment
name is also read with the `AUTOMATION_` prefix (opencord maas-flow's envconfig prefix),
which wins over the bare name when both are set. An empty variable counts as unset, except
`LISTEN` where "" turns the health endpoint off.

The API key comes from, in order: `-apiKey`/`-apikey`, `MAAS_API_KEY`,
`$CREDENTIALS_DIRECTORY/maas_api_key` (systemd `LoadCredential=`), the file named by
`MAAS_API_KEY_FILE` (default `/secrets/maas_api_key`).

Every bad input raises `ConfigError` with one line naming the flag or variable (and the
file, key or pattern when there is one) and never the API key itself. pydantic-settings'
own sources are switched off: `load_settings` resolves the layers itself so each error can
name where its value came from. `settings_reference()` is the table the help text and the
README's configuration section are made from. This module reads files but talks to nobody.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import sys
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import SplitResult, urlsplit

from pydantic import SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from maasflow.common.errors import ConfigError
from maasflow.daemon.maas import auth
from maasflow.daemon.mappings import Mappings
from maasflow.daemon.selection import FilterSpec, expand_path

DEFAULT_MAAS_URL = "http://localhost:5240/MAAS"
DEFAULT_KEY_FILE = "/secrets/maas_api_key"
CREDENTIAL_NAME = "maas_api_key"
ENV_PREFIX = "AUTOMATION_"
LOG_LEVELS = ("debug", "info", "warning", "error")
MAX_CONCURRENCY = 1024
_MAX_SECONDS = 9_223_372_036.854775807  # Go's time.Duration maximum
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_DURATION = re.compile(rf"[-+]?(?:{_DURATION_PART.pattern})+")
_PLAIN_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)")
_TRUE = frozenset({"true", "t", "1", "yes"})
_FALSE = frozenset({"false", "f", "0", "no"})
_DISTRO = re.compile(r"[a-z0-9][a-z0-9._/+-]{0,63}")
_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
_KEY_FILE_LIMIT = 4096
_HELP_FLAGS = ("h", "help")

Parse = Callable[[str, str, Mapping[str, str]], Any]


# --- value parsers: (raw text, origin, environment) -> value, or ConfigError ---------------


def parse_duration(text: str, origin: str) -> float:
    """Seconds in a Go duration (`15s`, `1m30s`, `500ms`, `1.5h`) or a plain number of seconds."""
    value = text.strip()
    if _PLAIN_NUMBER.fullmatch(value):
        seconds = float(value)
    elif _DURATION.fullmatch(value):
        sign = -1.0 if value.startswith("-") else 1.0
        parts = _DURATION_PART.findall(value)
        seconds = sign * sum(float(num) * _UNITS[unit] for num, unit in parts)
    else:
        hint = "use a Go duration such as 15s, 1m30s, 500ms or 2h45m"
        raise ConfigError(f"{origin}: {value[:40]!r} is not a duration; {hint}")
    if not math.isfinite(seconds) or abs(seconds) > _MAX_SECONDS:
        raise ConfigError(f"{origin}: duration {value[:40]!r} is too long")
    return seconds


def _positive_duration(text: str, origin: str, _env: Mapping[str, str]) -> float:
    seconds = parse_duration(text, origin)
    if seconds <= 0:
        raise ConfigError(f"{origin}: duration {text.strip()!r} must be greater than 0")
    return seconds


def _non_negative_duration(text: str, origin: str, _env: Mapping[str, str]) -> float:
    seconds = parse_duration(text, origin)
    if seconds < 0:
        raise ConfigError(f"{origin}: duration {text.strip()!r} must not be negative")
    return seconds


def parse_bool(text: str, origin: str, _env: Mapping[str, str] | None = None) -> bool:
    """true/false/1/0/yes/no/t/f, case-insensitive."""
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(f"{origin}: {text[:20]!r} is not a boolean; use true or false")


def parse_api_key(text: str, origin: str, _env: Mapping[str, str] | None = None) -> SecretStr:
    """A MAAS API key with surrounding whitespace stripped; the message never quotes it."""
    key = text.strip()
    try:
        auth.parse_api_key(key)
    except ConfigError as exc:
        raise ConfigError(f"{origin}: {exc}") from None
    return SecretStr(key)


def parse_token(text: str, origin: str) -> SecretStr:
    """A provisioning Bearer token, stripped; printable ASCII without spaces (a header value).

    Messages name `origin` and never quote the token.
    """
    token = text.strip()
    if not token:
        raise ConfigError(f"{origin}: empty; give the provisioning token or unset it")
    if not all("!" <= char <= "~" for char in token):
        raise ConfigError(f"{origin}: the token must be printable ASCII without spaces")
    return SecretStr(token)


def _split_url(text: str, origin: str) -> SplitResult:
    value = text.strip()
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        raise ConfigError(f"{origin}: {value[:80]!r} is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or " " in value:
        raise ConfigError(f"{origin}: {value[:80]!r} is not an http:// or https:// URL")
    return parts


def _maas_url(text: str, origin: str, _env: Mapping[str, str]) -> str:
    _split_url(text, origin)
    return text.strip().rstrip("/")


def _api_version(text: str, origin: str, _env: Mapping[str, str]) -> str:
    value = text.strip()
    if value in ("2.0", "2"):
        return "2.0"
    if value.startswith("1"):
        raise ConfigError(f"{origin}: MAAS 2.0+ answers 410 Gone to the 1.0 API; use 2.0")
    raise ConfigError(f"{origin}: API version {value[:20]!r} is not supported; use 2.0")


def _filter(text: str, origin: str, env: Mapping[str, str]) -> FilterSpec:
    return FilterSpec.load(text, origin, env) if text.strip() else FilterSpec.default()


def _mappings(text: str, origin: str, env: Mapping[str, str]) -> Mappings:
    return Mappings.load(text, origin, env) if text.strip() else Mappings.empty()


def _executable(text: str, origin: str, env: Mapping[str, str]) -> str:
    path = expand_path(text.strip(), origin, env)
    if not path.is_file() or not os.access(path, os.X_OK):
        raise ConfigError(f"{origin}: {str(path)!r} is not an executable file")
    return str(path)


def _optional_executable(text: str, origin: str, env: Mapping[str, str]) -> str:
    return _executable(text, origin, env) if text.strip() else ""


def _provision_url(text: str, origin: str, env: Mapping[str, str]) -> str:
    value = text.strip()
    if not value:
        return ""
    if "://" in value:
        _split_url(value, origin)
        return value
    try:
        return _executable(value, origin, env)
    except ConfigError:
        hint = "give an http(s):// URL or the path of an executable script"
        raise ConfigError(f"{origin}: {value[:80]!r} is not an executable file; {hint}") from None


def _log_level(text: str, origin: str, _env: Mapping[str, str]) -> str:
    value = text.strip().lower()
    value = "warning" if value == "warn" else value
    if value not in LOG_LEVELS:
        raise ConfigError(f"{origin}: log level {text[:20]!r}; use one of {', '.join(LOG_LEVELS)}")
    return value


def _log_format(text: str, origin: str, _env: Mapping[str, str]) -> str:
    value = text.strip().lower()
    if value not in ("text", "json"):
        raise ConfigError(f"{origin}: log format {text[:20]!r}; use text or json")
    return value


def _distro(text: str, origin: str, _env: Mapping[str, str]) -> str:
    value = text.strip()
    if value and not _DISTRO.fullmatch(value):
        raise ConfigError(f"{origin}: {value[:40]!r} is not a distro series name like jammy")
    return value


def _concurrency(text: str, origin: str, _env: Mapping[str, str]) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ConfigError(f"{origin}: {text[:20]!r} is not a whole number") from None
    if not 1 <= value <= MAX_CONCURRENCY:
        raise ConfigError(f"{origin}: {value} is out of range; use 1 to {MAX_CONCURRENCY}")
    return value


def split_listen(text: str) -> tuple[str, int] | None:
    """`("127.0.0.1", 9410)` for "127.0.0.1:9410", `("::1", 80)` for "[::1]:80", else None."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        return None
    if host.startswith("[") and host.endswith("]"):
        try:
            return str(ipaddress.IPv6Address(host[1:-1])), int(port)
        except ValueError:
            return None
    return (host, int(port)) if _HOST.fullmatch(host) else None


def _listen(text: str, origin: str, _env: Mapping[str, str]) -> str:
    value = text.strip()
    if value and split_listen(value) is None:
        hint = "use host:port such as 127.0.0.1:9410 or [::1]:9410, or empty to turn it off"
        raise ConfigError(f"{origin}: {value[:60]!r} is not a listen address; {hint}")
    return value


def _path(text: str, origin: str, env: Mapping[str, str]) -> Path:
    if not text.strip():
        raise ConfigError(f"{origin}: the path is empty")
    return expand_path(text.strip(), origin, env)


def _state_dir(text: str, origin: str, env: Mapping[str, str]) -> Path:
    # systemd joins several StateDirectory= paths with ":"; the first one is ours.
    first = text.split(":")[0] if origin.endswith("STATE_DIRECTORY") else text
    return _path(first, origin, env)


def default_state_dir(env: Mapping[str, str]) -> Path:
    """`$XDG_STATE_HOME/maasflow`, else `~/.local/state/maasflow`."""
    base = env.get("XDG_STATE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".local/state")
    return Path(base) / "maasflow"


# --- the option table -------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """One setting: its field, flag and environment names, shown default, help, parser."""

    field: str
    flags: tuple[str, ...]
    env: tuple[str, ...]
    default: str
    help: str
    parse: Parse
    boolean: bool = False
    empty_is_value: bool = False


def _bool(text: str, origin: str, env: Mapping[str, str]) -> bool:
    return parse_bool(text, origin)


def _key(text: str, origin: str, env: Mapping[str, str]) -> SecretStr:
    return parse_api_key(text, origin)


def _token(text: str, origin: str, env: Mapping[str, str]) -> SecretStr:
    return parse_token(text, origin)


OPTIONS: tuple[Option, ...] = (
    Option("maas_url", ("maas",), ("MAAS_URL",), DEFAULT_MAAS_URL,
           "MAAS region URL, up to /MAAS", _maas_url),
    Option("api_key", ("apiKey", "apikey"), ("MAAS_API_KEY",), "(none)",
           "MAAS API key consumer:token:secret (on the command line it shows in process "
           "listings until the daemon renames its process: prefer a key file)", _key),
    Option("api_key_file", ("api-key-file",), ("MAAS_API_KEY_FILE",), DEFAULT_KEY_FILE,
           "file holding the API key when neither -apiKey nor MAAS_API_KEY is given; "
           "$CREDENTIALS_DIRECTORY/maas_api_key (systemd LoadCredential=) is tried first", _path),
    Option("api_version", ("apiVersion",), ("MAAS_API_VERSION",), "2.0",
           "MAAS API version; only 2.0 (MAAS 2.0+ answers 410 Gone to 1.0)", _api_version),
    Option("period", ("period",), ("MAAS_QUERY_INTERVAL",), "15s",
           "time between passes (Go duration: 15s, 1m30s, 500ms)", _positive_duration),
    Option("filter", ("filter",), ("HOST_FILTER_SPEC",), '{"zones":{"include":["^default$"]}}',
           "which machines to drive: filter JSON or @path ($VAR expanded); {} = all", _filter),
    Option("mappings", ("mappings",), ("MAC_TO_NAME_MAPPINGS",), "{}",
           "MAC to hostname JSON or @path ($VAR expanded)", _mappings),
    Option("provision_url", ("provision-url", "provisionURL"), ("PROVISION_URL",), "(none)",
           "after Deployed: run this script, or POST to this http(s) URL; none = Deployed "
           "is final", _provision_url),
    Option("provision_ttl", ("provision-ttl",), ("PROVISION_TTL",), "1h",
           "how long provisioning may run before it fails (Go duration)", _positive_duration),
    Option("provision_token_file", ("provision-token-file",), ("PROVISION_TOKEN_FILE",),
           "(none)", "file holding the Bearer token an http(s) PROVISION_URL requires "
           "(maasflow serve --provision-token-file)", _path),
    Option("provision_token", (), ("PROVISION_TOKEN",), "(none)",
           "the Bearer token itself (environment only; a token file named by flag wins)",
           _token),
    Option("preview", ("preview",), ("PREVIEW_ONLY",), "false",
           "print what one pass would do, change nothing, exit", _bool, boolean=True),
    Option("once", ("once",), (), "false", "run one pass, then exit", _bool, boolean=True),
    Option("always_rename", ("always-rename",), ("ALWAYS_RENAME",), "true",
           "rename mapped machines at every stage (false: only while New)", _bool, boolean=True),
    Option("power_helper_script", ("power-helper-script",), ("POWER_HELPER_SCRIPT",), "(none)",
           "script given a machine's MACs that prints its power parameters as JSON",
           _optional_executable),
    Option("log_level", ("log-level",), ("LOG_LEVEL",), "info",
           "debug, info, warning or error", _log_level),
    Option("log_format", ("log-format",), ("LOG_FORMAT",), "text",
           "text (key=value) or json (one object per line)", _log_format),
    Option("verbose", ("verbose",), (), "false",
           "maas-flow's flag: same as -log-level debug", _bool, boolean=True),
    Option("distro", ("distro",), ("DISTRO_SERIES",), "(MAAS default)",
           "deploy distro_series, e.g. jammy; empty = MAAS's default", _distro),
    Option("concurrency", ("concurrency",), ("CONCURRENCY",), "16",
           f"most actions running at once (1 to {MAX_CONCURRENCY})", _concurrency),
    Option("listen", ("listen",), ("LISTEN",), "127.0.0.1:9410",
           "health and metrics address host:port or [::1]:port; empty = off", _listen,
           empty_is_value=True),
    Option("state_dir", ("state-dir",), ("STATE_DIRECTORY",), "~/.local/state/maasflow",
           "directory for state ($XDG_STATE_HOME/maasflow when that is set)", _state_dir),
    Option("db", ("db",), ("MAASFLOW_DB",), "<state-dir>/maasflow.sqlite",
           "SQLite file of provisioning records", _path),
    Option("grace", ("grace",), ("SHUTDOWN_GRACE",), "30s",
           "on SIGTERM, how long running actions may take to finish", _non_negative_duration),
)  # fmt: skip
_BY_FLAG = {name: option for option in OPTIONS for name in option.flags}


def settings_reference() -> list[tuple[tuple[str, ...], tuple[str, ...], str, str]]:
    """(flags, environment names, default, help) per setting, flags with their dash."""
    return [
        (tuple(f"-{f}" for f in o.flags), o.env, o.default, o.help) for o in OPTIONS
    ]  # fmt: skip


def render_reference_markdown() -> str:
    """The configuration table as Markdown, for the README."""
    lines = ["| Flag | Environment | Default | Meaning |", "| --- | --- | --- | --- |"]
    for flags, env, default, text in settings_reference():
        cells = [", ".join(f"`{f}`" for f in flags) or "—", ", ".join(f"`{e}`" for e in env) or "—"]
        cells += [f"`{default}`".replace("|", "\\|"), text.replace("|", "\\|")]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "Precedence: flag > environment > default. Every variable is also read with the "
        f"`{ENV_PREFIX}` prefix (e.g. `{ENV_PREFIX}MAAS_URL`), which wins over the bare name."
    )
    return "\n".join(lines) + "\n"


def help_text() -> str:
    """Go-style usage text for `maasflow -h`."""
    lines = [
        "usage: maasflow [flags]            (maasflow <sub-command> -h for the tools)",
        "",
        "Drive MAAS machines from New to Deployed, then provision them. Flags take one or two",
        "dashes, -flag value or -flag=value; bool flags are bare or -flag=false.",
        "",
    ]
    for option in OPTIONS:
        names = ", ".join(f"-{f}" for f in option.flags) + ("" if option.boolean else " value")
        if not option.flags:
            names = f"(no flag) {', '.join(option.env)}"
        env = f"env {', '.join(option.env)}; " if option.env else ""
        text = f"{option.help} ({env}default {option.default})"
        lines += [
            f"  {names}",
            textwrap.fill(text, 88, initial_indent=" " * 8, subsequent_indent=" " * 8),
        ]
    lines += ["", f"Environment names are also read with the {ENV_PREFIX} prefix."]
    return "\n".join(lines) + "\n"


# --- the settings model -----------------------------------------------------------------


def _default_state_dir() -> Path:
    return default_state_dir(os.environ)


class Settings(BaseSettings):
    """The validated configuration of one daemon run; `repr`/`str` never show the key."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    maas_url: str = DEFAULT_MAAS_URL
    api_key: SecretStr
    api_key_origin: str = "argument"
    api_key_file: Path = Path(DEFAULT_KEY_FILE)
    api_version: str = "2.0"
    period: float = 15.0
    filter: FilterSpec = FilterSpec.default()
    mappings: Mappings = Mappings.empty()
    provision_url: str = ""
    provision_ttl: float = 3600.0
    provision_token_file: Path | None = None
    provision_token: SecretStr | None = None
    preview: bool = False
    once: bool = False
    always_rename: bool = True
    power_helper_script: str = ""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"
    verbose: bool = False
    distro: str = ""
    concurrency: int = 16
    listen: str = "127.0.0.1:9410"
    state_dir: Path = Path()
    db: Path = Path()
    grace: float = 30.0

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only what `load_settings` (or a test) passes in: it resolves flags and env itself."""
        return (init_settings,)

    @field_validator("api_key")
    @classmethod
    def _key_shape(cls, value: SecretStr) -> SecretStr:
        try:
            auth.parse_api_key(value.get_secret_value())
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="before")
    @classmethod
    def _derived_paths(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            data.setdefault("state_dir", _default_state_dir())
            data.setdefault("db", Path(data["state_dir"]) / "maasflow.sqlite")
        return data

    @property
    def listen_address(self) -> tuple[str, int] | None:
        """(host, port) to serve health and metrics on, or None when `listen` is empty."""
        return split_listen(self.listen) if self.listen else None

    @property
    def provision_is_url(self) -> bool:
        """True when `provision_url` is an http(s) URL, False for a script path or none."""
        return "://" in self.provision_url

    def describe(self) -> dict[str, Any]:
        """The effective configuration for one start-up log line; secrets masked."""
        shown: dict[str, Any] = {}
        for name in type(self).model_fields:
            shown[name] = _shown(getattr(self, name))
        # Named so that the log's secret redaction (any key containing "api_key") keeps them:
        # the shape, origin and file of the key are safe and what an operator needs to see.
        del shown["api_key"], shown["api_key_origin"], shown["api_key_file"]
        shown["key_shape"] = auth.mask_api_key(self.api_key.get_secret_value())
        shown["key_from"] = self.api_key_origin
        shown["key_file"] = str(self.api_key_file)
        shown["maas_url"] = display_url(self.maas_url)
        shown["provision_url"] = display_url(self.provision_url)
        shown["mappings"] = f"{len(self.mappings)} MAC(s)"
        # "provision_token" is a secret-looking key the log redacts; "bearer" is not.
        del shown["provision_token"]
        shown["provision_bearer"] = "set" if self.provision_token is not None else "unset"
        return shown


def _shown(value: object) -> object:
    if isinstance(value, FilterSpec):
        return value.to_json()
    if isinstance(value, Path):
        return str(value)
    return value


def display_url(url: str) -> str:
    """A URL safe to log: any password in it and its query string replaced by "***"."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = f"{parts.username}:***@{netloc.rpartition('@')[2]}"
    return parts._replace(netloc=netloc, query="***" if parts.query else "").geturl()


# --- resolution: flags, environment, key files ------------------------------------------

Raw = dict[str, tuple[str, str]]  # field -> (origin, raw text)


def _shown_arg(arg: str) -> str:
    return repr(arg) if len(arg) <= 24 and ":" not in arg else "(long value not shown)"


def _flag_name(arg: str, position: int) -> tuple[str, str | None]:
    """Split `-name`, `--name`, `-name=value`; ConfigError for anything that is not a flag."""
    dashes = len(arg) - len(arg.lstrip("-"))
    if dashes not in (1, 2) or len(arg) == dashes or arg[dashes] == "=":
        hint = "maasflow takes flags only; bool flags take -flag=false, not -flag false"
        raise ConfigError(f"unexpected argument {position} {_shown_arg(arg)}; {hint}")
    name, sep, value = arg[dashes:].partition("=")
    return name, value if sep else None


def parse_flags(argv: Sequence[str]) -> Raw:
    """The flags given, as field -> (flag as written, raw value); -h prints help and exits 0."""
    found: Raw = {}
    args = iter(enumerate(argv, start=1))
    for position, arg in args:
        if arg == "--":
            rest = [a for _, a in args]
            if rest:
                raise ConfigError(f"unexpected argument {_shown_arg(rest[0])} after --")
            break
        name, value = _flag_name(arg, position)
        if name in _HELP_FLAGS:
            sys.stdout.write(help_text())
            raise SystemExit(0)
        option = _BY_FLAG.get(name)
        if option is None:
            raise ConfigError(f"unknown flag -{name[:40]}; run 'maasflow -h' for the flags")
        if value is None:
            value = "true" if option.boolean else next(args, (0, None))[1]
        if value is None:
            raise ConfigError(f"flag -{name} needs a value, e.g. -{name}=VALUE")
        found[option.field] = (f"-{name}", value)
    return found


def env_values(environ: Mapping[str, str]) -> Raw:
    """The settings given in the environment, as field -> (variable name, raw value)."""
    found: Raw = {}
    for option in OPTIONS:
        for base in option.env:
            for name in (ENV_PREFIX + base, base):
                value = environ.get(name)
                if value is not None and (value != "" or option.empty_is_value):
                    found.setdefault(option.field, (name, value))
    return found


def _read_secret_file(path: Path, label: str, what: str) -> str:
    """A small secret file's text (capped at 4 KiB); errors name the file and the secret."""
    try:
        with path.open("rb") as handle:
            data = handle.read(_KEY_FILE_LIMIT + 1)
    except OSError as exc:
        raise ConfigError(f"{label}: cannot read the {what}: {exc.strerror}") from None
    if len(data) > _KEY_FILE_LIMIT:
        raise ConfigError(f"{label}: too large to hold a {what}")
    return data.decode("utf-8", errors="replace")


def _read_key_file(path: Path, origin: str) -> tuple[SecretStr, str]:
    label = f"{origin} file {str(path)!r}"
    text = _read_secret_file(path, label, "MAAS API key")
    if not text.strip():
        raise ConfigError(f"{label}: the file is empty; put the MAAS API key in it")
    return parse_api_key(text, label), str(path)


def _resolve_api_key(
    values: dict[str, Any], origins: dict[str, str], env: Mapping[str, str]
) -> None:
    if "api_key" in values:
        values["api_key_origin"] = origins["api_key"]
        return
    credentials = env.get("CREDENTIALS_DIRECTORY")
    if credentials and (Path(credentials) / CREDENTIAL_NAME).is_file():
        path = Path(credentials) / CREDENTIAL_NAME
        values["api_key"], values["api_key_origin"] = _read_key_file(path, "CREDENTIALS_DIRECTORY")
        return
    path = values.setdefault("api_key_file", Path(DEFAULT_KEY_FILE))
    if "api_key_file" in origins or path.exists():
        origin = origins.get("api_key_file", "MAAS_API_KEY_FILE")
        values["api_key"], values["api_key_origin"] = _read_key_file(path, origin)
        return
    raise ConfigError(
        "no MAAS API key: give -apiKey KEY, set MAAS_API_KEY, or put the key in a file named by "
        f"MAAS_API_KEY_FILE (default {DEFAULT_KEY_FILE}) or in systemd's LoadCredential="
        f"{CREDENTIAL_NAME}"
    )


def _read_token_file(path: Path, origin: str) -> SecretStr:
    label = f"{origin} file {str(path)!r}"
    return parse_token(_read_secret_file(path, label, "provisioning token"), label)


def _resolve_provision_token(values: dict[str, Any], origins: dict[str, str]) -> None:
    """Flag file > PROVISION_TOKEN > PROVISION_TOKEN_FILE; only with an http(s) PROVISION_URL."""
    file_origin = origins.get("provision_token_file", "")
    path = values.get("provision_token_file")
    if path is not None and (file_origin.startswith("-") or "provision_token" not in values):
        values["provision_token"] = _read_token_file(path, file_origin)
        origins["provision_token"] = file_origin
    if "provision_token" in values and "://" not in values.get("provision_url", ""):
        raise ConfigError(
            f"{origins['provision_token']}: a provisioning token is only sent to an http(s) "
            "PROVISION_URL; set PROVISION_URL to the service's URL or drop the token"
        )


def _parse_all(raw: Raw, env: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    by_field = {option.field: option for option in OPTIONS}
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for field, (origin, text) in raw.items():
        values[field] = by_field[field].parse(text, origin, env)
        origins[field] = origin
    return values, origins


def load_settings(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> Settings:
    """Resolve flags > environment > defaults into Settings; ConfigError on any bad input.

    `-h`/`-help` prints the help text to stdout and raises SystemExit(0).
    """
    env = dict(os.environ if environ is None else environ)
    raw = {**env_values(env), **parse_flags(argv)}
    values, origins = _parse_all(raw, env)
    _resolve_api_key(values, origins, env)
    _resolve_provision_token(values, origins)
    if values.get("verbose") and not origins.get("log_level", "").startswith("-"):
        values["log_level"] = "debug"
    values.setdefault("state_dir", default_state_dir(env))
    try:
        return Settings(**values)
    except ValidationError as exc:  # the parsers validate first; this is a safety net
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        raise ConfigError(f"{where}: {first['msg']}") from None
