"""Secrets: the one place that reads, validates and hides every secret maasflow handles.

The daemon's MAAS API key, the provisioning Bearer token, and `maasflow serve`'s power
passwords and tokens are read here (one capped file reader), checked here (each shape once),
and kept out of children's environments here (one scrub, used by the one child runner).
It does not log and does not decide where a secret comes from: settings do that.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Collection, Mapping
from pathlib import Path

from maasflow.common.errors import ConfigError
from maasflow.common.text_file import read_capped_text

# --- reading and validating -------------------------------------------------------------
# One rule for every secret file (the daemon's key and token files, systemd credentials,
# serve's token, password and power-token files): at most 4 KiB is read, the text must be
# UTF-8, surrounding whitespace (a trailing newline, CRLF, indentation) is stripped, and what
# is left must be one non-empty line. A file breaking the rule is refused with one line naming
# the option and the file, never the content: a second line is never silently dropped, and an
# empty file never silently means "no secret". Shapes: a MAAS API key is consumer:token:secret
# (`parse_api_key`); a Bearer token is printable ASCII without spaces (`parse_token`), so it
# fits an Authorization header as is; `mask_api_key` is the only form of a key ever shown.

SECRET_FILE_LIMIT = 4096  # bytes; a key, token or password is far smaller
_KEY_HOW_TO_FIX = (
    "MAAS API key {mask} must be three colon-separated parts (consumer:token:secret), "
    "as printed by `maas apikey --username=<user>`; check -apiKey, MAAS_API_KEY or "
    "MAAS_API_KEY_FILE"
)


def file_origin(origin: str, path: Path) -> str:
    """How errors name a secret file: the option that named it, then the file."""
    return f"{origin} file {str(path)!r}"


def read_secret_file(path: Path, origin: str, what: str) -> str:
    """The one-line secret (`what`, e.g. "MAAS API key") in `path`, by the module's rule.

    `origin` is the flag or variable that named the file; every error starts with it and the
    file's path, and none quotes the file's content.
    """
    label = file_origin(origin, path)
    text = _stripped_text(path, label, what)
    if not text:
        raise ConfigError(f"{label}: the file is empty; put the {what} in it")
    return _one_line(text, label, what)


def _stripped_text(path: Path, label: str, what: str) -> str:
    """The file's text, stripped, after the size and UTF-8 checks; errors start with `label`."""
    return read_capped_text(path, label, SECRET_FILE_LIMIT, subject=f"the {what}").strip()


def readable_by_others(path: Path) -> bool:
    """Whether users other than the file's owner and group may read `path` (mode o+r)."""
    try:
        return bool(path.stat().st_mode & stat.S_IROTH)
    except OSError:
        return False


# --- credentials ----------------------------------------------------------------------------
# A credential is a secret file named by its purpose in one directory, $CREDENTIALS_DIRECTORY:
# systemd's LoadCredential= puts it there under the unit's dynamic user, and the docker
# image's entrypoint copies docker secrets there before dropping root. Names: maas_api_key,
# provision_token, power_token, power_pass, power_ack_pass. A blank credential (whitespace
# only) means "none": the units' `SetCredential=<name>:\n` default, which lets a unit start
# when the optional file /etc/maasflow/<name> is absent. Anything else follows the file rule.

CREDENTIALS_VARIABLE = "CREDENTIALS_DIRECTORY"


def credential_path(name: str, environ: Mapping[str, str]) -> Path | None:
    """$CREDENTIALS_DIRECTORY/<name> when that directory is set and the file exists."""
    directory = environ.get(CREDENTIALS_VARIABLE)
    path = Path(directory) / name if directory else None
    return path if path is not None and path.is_file() else None


def read_credential(name: str, what: str, environ: Mapping[str, str]) -> str | None:
    """The credential `name` by the file rule, or None: no such credential, or a blank one."""
    path = credential_path(name, environ)
    if path is None:
        return None
    label = file_origin(CREDENTIALS_VARIABLE, path)
    text = _stripped_text(path, label, what)
    return _one_line(text, label, what) if text else None


def parse_secret(text: str, origin: str, what: str) -> str:
    """A secret given as text (an environment variable): stripped, one line, not empty."""
    value = text.strip()
    if not value:
        raise ConfigError(f"{origin}: empty; give the {what} or unset it")
    return _one_line(value, origin, what)


def _one_line(text: str, origin: str, what: str) -> str:
    if "\n" in text or "\r" in text:
        raise ConfigError(f"{origin}: the {what} must be one line; remove the other lines")
    return text


def parse_token(text: str, origin: str, what: str = "token") -> str:
    """A Bearer token: a one-line secret of printable ASCII without spaces (a header value)."""
    token = parse_secret(text, origin, what)
    if not _is_printable_ascii(token):
        raise ConfigError(f"{origin}: the {what} must be printable ASCII without spaces")
    return token


def mask_api_key(key: str) -> str:
    """Describe `key` by the lengths of its parts only, e.g. ``<18:18:32 chars>``."""
    key = key.strip()
    if not key:
        return "<empty>"
    parts = key.split(":")
    if len(parts) > 3:
        return f"<{len(parts)} parts, {len(key)} chars>"
    return "<" + ":".join(str(len(part)) for part in parts) + " chars>"


def parse_api_key(key: str) -> tuple[str, str, str]:
    """Split `key` into (consumer_key, token_key, token_secret) or raise ConfigError.

    Surrounding whitespace (a key file's trailing newline) is ignored. The error message
    names the problem and the key's mask, never the key; callers prefix where it came from.
    """
    stripped = key.strip()
    parts = stripped.split(":")
    if len(parts) != 3 or not all(parts):
        raise ConfigError(_KEY_HOW_TO_FIX.format(mask=mask_api_key(stripped)))
    if not all(_is_printable_ascii(part) for part in parts):
        raise ConfigError(
            f"MAAS API key {mask_api_key(stripped)} contains spaces or characters that are "
            "not printable ASCII; copy it again from the MAAS UI or `maas apikey`"
        )
    return parts[0], parts[1], parts[2]


def _is_printable_ascii(text: str) -> bool:
    return all("!" <= char <= "~" for char in text)


# --- keeping secrets out of children ------------------------------------------------------

# Every variable that holds a secret of maasflow's, by name (each also prefixed `AUTOMATION_`).
SECRET_NAMES = frozenset(
    {
        "MAAS_API_KEY",  # the daemon's MAAS API key
        "PROVISION_TOKEN",  # the daemon's Bearer token for an HTTP provisioner
        "MAASFLOW_PROVISION_TOKEN",  # serve's provisioning API token
        "MAASFLOW_POWER_TOKEN",  # serve's power target: MAAS's Bearer token
        "MAASFLOW_POWER_PASS",  # serve's power target: MAAS's Basic auth password
        "MAASFLOW_POWER_ACK_PASS",  # serve's power target: the acknowledgement page's password
    }
)
MAAS_KEY_SUFFIX = "MAAS_API_KEY"  # any spelling of a MAAS key: PROD_MAAS_API_KEY, ...
_DAEMON_PREFIX = "AUTOMATION_"  # the daemon reads every variable with this prefix too


def is_secret_name(name: str, hidden: Collection[str] = ()) -> bool:
    """Whether the variable `name` holds a secret: a known one, a MAAS key, or in `hidden`."""
    upper = name.upper()
    return (
        name in hidden
        or upper in SECRET_NAMES
        or upper.removeprefix(_DAEMON_PREFIX) in SECRET_NAMES
        or upper.endswith(MAAS_KEY_SUFFIX)
    )


def scrubbed_environ(
    hidden: Collection[str] = (), environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """A copy of `environ` (default `os.environ`) without any secret's variable.

    `hidden` names more: serve's power config `password_env` names, say. The child runner
    applies this to every environment it starts a program with.
    """
    source = os.environ if environ is None else environ
    return {key: value for key, value in source.items() if not is_secret_name(key, hidden)}
