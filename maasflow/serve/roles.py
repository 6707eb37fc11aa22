"""Which role a machine gets, and which script provisions it.

The role is, in order: the request's own `role`; else the stripped body of a GET to the
role-selector URL (query `id`, `name`, `ip`, `mac`), the way the opencord provisioner meant it
but never read; else the default role. A selector that fails, times out or answers something
that is not a role name gives the default role and a logged warning, never a failed job.

The script is, in order: the request's `script`, which is only ever a NAME looked up in the
scripts configured on the service (`--role-script ROLE=PATH`, `--allow-script NAME=PATH`),
never a path from the network; else the script of the role; else `--script`.

What this module stops at: it runs nothing; the job pool calls it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import structlog

from maasflow.common.errors import ConfigError
from maasflow.serve.records import JobRequest

log = structlog.get_logger(__name__)

ROLE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
SELECTOR_TIMEOUT = 10.0
_MAX_SELECTOR_BODY = 4096


@dataclass(frozen=True)
class ScriptPicker:
    """The configured scripts and the role rules; see the module docstring."""

    script: Path | None = None
    named: dict[str, Path] = field(default_factory=dict)
    default_role: str = "compute"
    selector_url: str | None = None
    selector_timeout: float = SELECTOR_TIMEOUT

    def allows(self, name: str) -> bool:
        """True if a request may choose the script called `name`."""
        return name in self.named

    def script_for(self, request: JobRequest, role: str) -> Path | None:
        """The script to run for this request and role, or None if none is configured."""
        if request.script is not None:
            return self.named.get(request.script)
        return self.named.get(role, self.script)

    async def role_for(self, request: JobRequest) -> str:
        """The request's role, else the selector's answer, else the default role."""
        if request.role:
            return request.role
        if self.selector_url is None:
            return self.default_role
        return await self._ask_selector(request)

    async def _ask_selector(self, request: JobRequest) -> str:
        assert self.selector_url is not None
        params = {"id": request.id, "name": request.name, "ip": request.ip, "mac": request.mac}
        where = _redacted(self.selector_url)
        try:
            async with httpx.AsyncClient(timeout=self.selector_timeout) as client:
                url = httpx.URL(self.selector_url).copy_merge_params(params)
                response = await client.get(url)
            response.raise_for_status()
            role = response.content[:_MAX_SELECTOR_BODY].decode("utf-8", "replace").strip()
        except httpx.HTTPError as exc:
            log.warning("role.selector_failed", url=where, id=request.id, error=type(exc).__name__)
            return self.default_role
        if not ROLE_PATTERN.fullmatch(role):
            log.warning("role.selector_bad_answer", url=where, id=request.id, length=len(role))
            return self.default_role
        return role


def executable(flag: str, value: str) -> Path:
    """`value` as an absolute path to an executable file, or a ConfigError naming `flag`."""
    path = Path(value).expanduser().resolve()
    if not path.is_file() or not os.access(path, os.X_OK):
        raise ConfigError(f"{flag} {value}: not an executable file; check the path or chmod +x it")
    return path


def named_scripts(
    flag: str, pairs: list[str], known: dict[str, Path] | None = None
) -> dict[str, Path]:
    """Parse `NAME=PATH` pairs of `flag` and add them to a copy of the `known` names."""
    named = dict(known or {})
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not ROLE_PATTERN.fullmatch(name) or not value:
            raise ConfigError(
                f"{flag} {pair!r}: expected NAME=PATH with NAME made of letters, digits, . _ -"
            )
        path = executable(flag, value)
        if named.get(name, path) != path:
            raise ConfigError(f"{flag} {pair!r}: the name {name!r} is already given another path")
        named[name] = path
    return named


def selector_url(value: str) -> str:
    """`value` checked as an http(s) URL with a host, or a ConfigError."""
    try:
        parts = urlsplit(value)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        _ = parts.port
    except ValueError:
        ok = False
    if not ok:
        raise ConfigError(
            f"--role-selector-url {_redacted_or_blank(value)}: expected http(s)://host/..."
        )
    return value


def _redacted_or_blank(url: str) -> str:
    try:
        return _redacted(url)
    except ValueError:
        return "(unparsable URL)"


def _redacted(url: str) -> str:
    """The URL without credentials, query or fragment, safe to log."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
