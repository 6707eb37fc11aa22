"""Bearer tokens on the serving side: reading the expected one, and checking a request's.

`maasflow serve` guards `/provision/*` with a token (`serve.provision_auth`) and the daemon
guards its control routes (`daemon.control`) with another; both read the token from a file
with `read_token_file` (the one rule of `common.secrets`: at most 4 KiB, one line of
printable ASCII without spaces) and check `Authorization: Bearer <token>` with `refusal`,
which compares in constant time (`hmac.compare_digest`) and answers why a request is refused,
never quoting what it sent. How a refusal becomes a 401 is each web framework's business.
"""

from __future__ import annotations

import hmac
from pathlib import Path

from maasflow.common.secrets import file_origin, parse_token, read_secret_file

MISSING = "missing bearer token (send Authorization: Bearer <token>)"
WRONG = "wrong bearer token"


def read_token_file(path: Path, origin: str, what: str) -> str:
    """The token (`what`, e.g. "control token") in `path`; ConfigError naming `origin`."""
    file = path.expanduser()
    text = read_secret_file(file, origin, what)
    return parse_token(text, file_origin(origin, file), what)


def credentials(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None for any other header."""
    if header is None:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def refusal(given: str | None, expected: str) -> str | None:
    """Why a request carrying token `given` (None: none sent) is refused; None when it may pass."""
    if given is None:
        return MISSING
    wanted = expected.encode("utf-8")
    if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), wanted):
        return WRONG
    return None
