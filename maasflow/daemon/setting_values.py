"""The check each daemon setting's text goes through: (text, origin, environment) → value.

One function per kind of value, each raising a one-line `ConfigError` that starts with
`origin` (the flag as written, the variable read, or "<option> file '<path>'") and never
quotes a secret. `settings.Settings` runs them from its field validators, once per value;
`environ` is the environment `~` and `$VAR` expand in (a path, a filter's @file). The API
key's shape and the token's are checked by `maasflow.common.secrets`, called from here.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import SplitResult, urlsplit

from pydantic import SecretStr

from maasflow.common.errors import ConfigError
from maasflow.common.logs import format_named, level_named
from maasflow.common.options import (
    STATE_DIRECTORY,
    Bound,
    first_state_directory,
    parse_duration,
)
from maasflow.common.postgres import PostgresUrl, is_postgres_url
from maasflow.common.secrets import parse_api_key, parse_token
from maasflow.daemon.flags import MAX_CONCURRENCY, parse_bool
from maasflow.daemon.mappings import Mappings
from maasflow.daemon.selection import FilterSpec, expand_path
from maasflow.daemon.targets import Targets

LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["text", "json"]
LOG_LEVELS: tuple[LogLevel, ...] = get_args(LogLevel)
_DISTRO = re.compile(r"[a-z0-9][a-z0-9._/+-]{0,63}")
_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")

Parse = Callable[[str, str, Mapping[str, str]], Any]


def split_url(text: str, origin: str) -> SplitResult:
    """The parts of an http(s) URL; a ConfigError naming `origin` for anything else."""
    value = text.strip()
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        raise ConfigError(f"{origin}: {value[:80]!r} is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or " " in value:
        raise ConfigError(f"{origin}: {value[:80]!r} is not an http:// or https:// URL")
    return parts


def maas_url(text: str, origin: str, _env: Mapping[str, str]) -> str:
    split_url(text, origin)
    return text.strip().rstrip("/")


def api_key(text: str, origin: str, _env: Mapping[str, str]) -> SecretStr:
    try:
        parse_api_key(text)  # the one check of the key's shape
    except ConfigError as exc:
        raise ConfigError(f"{origin}: {exc}") from None
    return SecretStr(text.strip())


MAAS_FLOW_API_VERSIONS = ("1.0", "1")  # maas-flow's default: run as 2.0, with a warning


def api_version(text: str, origin: str, _env: Mapping[str, str]) -> str:
    """Always "2.0": MAAS 2.0+ has only that API; maas-flow's 1.0 is taken as 2.0."""
    value = text.strip()
    if value in ("2.0", "2", *MAAS_FLOW_API_VERSIONS):
        return "2.0"
    if value.startswith("1"):
        raise ConfigError(f"{origin}: MAAS 2.0+ answers 410 Gone to the 1.x API; use 2.0")
    raise ConfigError(f"{origin}: API version {value[:20]!r} is not supported; use 2.0")


def positive_duration(text: str, origin: str, _env: Mapping[str, str]) -> float:
    return parse_duration(text, origin, Bound.POSITIVE)


def non_negative_duration(text: str, origin: str, _env: Mapping[str, str]) -> float:
    return parse_duration(text, origin, Bound.NON_NEGATIVE)


def boolean(text: str, origin: str, _env: Mapping[str, str]) -> bool:
    return parse_bool(text, origin)


def on_off(text: str, origin: str, _env: Mapping[str, str]) -> bool:
    """on/off (or a boolean spelling): True for on."""
    lowered = text.strip().lower()
    if lowered in ("on", "off"):
        return lowered == "on"
    try:
        return parse_bool(text, origin)
    except ConfigError:
        raise ConfigError(f"{origin}: {text[:20]!r} is neither on nor off; use on or off") from None


def filter_spec(text: str, origin: str, env: Mapping[str, str]) -> FilterSpec:
    return FilterSpec.load(text, origin, env) if text.strip() else FilterSpec.default()


def targets(text: str, origin: str, env: Mapping[str, str]) -> Targets:
    return Targets.load(text, origin, env) if text.strip() else Targets()


def mappings(text: str, origin: str, env: Mapping[str, str]) -> Mappings:
    return Mappings.load(text, origin, env) if text.strip() else Mappings.empty()


def executable(text: str, origin: str, env: Mapping[str, str]) -> str:
    path = expand_path(text.strip(), origin, env)
    if not path.is_file() or not os.access(path, os.X_OK):
        raise ConfigError(f"{origin}: {str(path)!r} is not an executable file")
    return str(path)


def optional_executable(text: str, origin: str, env: Mapping[str, str]) -> str:
    return executable(text, origin, env) if text.strip() else ""


def provision_url(text: str, origin: str, env: Mapping[str, str]) -> str:
    value = text.strip()
    if not value:
        return ""
    if "://" in value:
        split_url(value, origin)
        return value
    try:
        return executable(value, origin, env)
    except ConfigError:
        hint = "give an http(s):// URL or the path of an executable script"
        raise ConfigError(f"{origin}: {value[:80]!r} is not an executable file; {hint}") from None


def helper_user(text: str, origin: str, _env: Mapping[str, str]) -> str:
    """A user name for the power helper's first argument: never an option (no leading -)."""
    value = text.strip()
    if value and not _USER.fullmatch(value):
        hint = "letters, digits, '.', '_' and '-', not starting with '-'"
        raise ConfigError(f"{origin}: {value[:40]!r} is not a user name; use {hint}")
    return value


def helper_host(text: str, origin: str, _env: Mapping[str, str]) -> str:
    """A host name or IP address for the power helper's second argument."""
    value = text.strip()
    if value and not (_HOST.fullmatch(value) or _is_ip(value)):
        raise ConfigError(f"{origin}: {value[:60]!r} is not a host name or IP address")
    return value


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def log_level(text: str, origin: str, _env: Mapping[str, str]) -> str:
    return level_named(text, origin)  # one rule for all three programs


def log_format(text: str, origin: str, _env: Mapping[str, str]) -> str:
    return format_named(text, origin)


def distro(text: str, origin: str, _env: Mapping[str, str]) -> str:
    value = text.strip()
    if value and not _DISTRO.fullmatch(value):
        raise ConfigError(f"{origin}: {value[:40]!r} is not a distro series name like jammy")
    return value


def concurrency(text: str, origin: str, _env: Mapping[str, str]) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ConfigError(f"{origin}: {text[:20]!r} is not a whole number") from None
    if not 1 <= value <= MAX_CONCURRENCY:
        raise ConfigError(f"{origin}: {value} is out of range; use 1 to {MAX_CONCURRENCY}")
    return value


MAX_RETRY_FAILED = 100
_TAG = re.compile(r"[a-zA-Z0-9_-]{1,256}")  # MAAS's tag names (src/maasserver/models/tag.py)


def retry_failed(text: str, origin: str, _env: Mapping[str, str]) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ConfigError(
            f"{origin}: {text[:20]!r} is not a whole number; 0 turns it off"
        ) from None
    if not 0 <= value <= MAX_RETRY_FAILED:
        raise ConfigError(f"{origin}: {value} is out of range; use 0 (off) to {MAX_RETRY_FAILED}")
    return value


def quarantine_tag(text: str, origin: str, _env: Mapping[str, str]) -> str:
    value = text.strip()
    if not _TAG.fullmatch(value):
        hint = "MAAS tag names use letters, digits, - and _ only, e.g. maasflow-quarantine"
        raise ConfigError(f"{origin}: {value[:40]!r} is not a MAAS tag name; {hint}")
    return value


_SIZE = re.compile(r"(\d{1,12})\s*(KiB|MiB|GiB)?")
_SIZE_UNITS = {None: 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}
MIN_ANSWER_BYTES = 1024 * 1024


def answer_size(text: str, origin: str, _env: Mapping[str, str]) -> int:
    found = _SIZE.fullmatch(text.strip())
    if found is None:
        raise ConfigError(f"{origin}: {text[:20]!r} is not a size; use bytes, or e.g. 512MiB, 1GiB")
    size = int(found.group(1)) * _SIZE_UNITS[found.group(2)]
    if size < MIN_ANSWER_BYTES:
        raise ConfigError(
            f"{origin}: {size} bytes is too small for a MAAS listing; use 1MiB or more"
        )
    return size


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


def listen(text: str, origin: str, _env: Mapping[str, str]) -> str:
    value = text.strip()
    if value and split_listen(value) is None:
        hint = "use host:port such as 127.0.0.1:9410 or [::1]:9410, or empty to turn it off"
        raise ConfigError(f"{origin}: {value[:60]!r} is not a listen address; {hint}")
    return value


def path(text: str, origin: str, env: Mapping[str, str]) -> Path:
    if not text.strip():
        raise ConfigError(f"{origin}: the path is empty")
    return expand_path(text.strip(), origin, env)


def database(text: str, origin: str, env: Mapping[str, str]) -> Path | PostgresUrl:
    """Where the records live: a PostgreSQL URL (no password in it), else an SQLite file."""
    if is_postgres_url(text):
        return PostgresUrl.parse(text, origin)
    return path(text, origin, env)


def state_dir(text: str, origin: str, env: Mapping[str, str]) -> Path:
    named_by_systemd = origin.endswith(STATE_DIRECTORY)
    return path(first_state_directory(text) if named_by_systemd else text, origin, env)


def provision_token(text: str, origin: str, _env: Mapping[str, str]) -> SecretStr:
    """A provisioning Bearer token (whether a URL will take it is the model's check)."""
    return SecretStr(parse_token(text, origin, "provisioning token"))
