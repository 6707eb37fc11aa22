"""The optional Bearer token guarding `/provision/*` of `maasflow serve`.

With a token configured, every provisioning route requires `Authorization: Bearer <token>`;
the check is `maasflow.common.bearer`'s (constant-time), shared with the daemon's control
routes. A missing or wrong token answers 401 `{"error": ...}` with `WWW-Authenticate:
Bearer realm="maasflow-provision"` (the app's exception handler gives the JSON shape on
provisioning paths). The scheme is declared in OpenAPI through FastAPI's `HTTPBearer`, so
`/openapi.json` tells clients to send it.

Where the token comes from: `--provision-token-file PATH`, else the env
`MAASFLOW_PROVISION_TOKEN`, else the credential `provision_token` in $CREDENTIALS_DIRECTORY
(systemd's LoadCredential=, the docker image's secrets; blank = none) (`token_from`), read
and checked once at start-up by `maasflow.common.secrets`. The token
never appears in logs, errors or reprs.

What this module stops at: it checks a header; `provision_api` defines the routes it guards.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from maasflow.common.bearer import read_token_file, refusal
from maasflow.common.secrets import CREDENTIALS_VARIABLE, parse_token, read_credential

TOKEN_ENV = "MAASFLOW_PROVISION_TOKEN"  # noqa: S105  # the variable's name, not a secret
TOKEN_FLAG = "--provision-token-file"  # noqa: S105  # a flag's name, not a secret
CREDENTIAL = "provision_token"  # its name in $CREDENTIALS_DIRECTORY
REALM = 'Bearer realm="maasflow-provision"'
_WHAT = "provisioning token"

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="provisionToken",
    description=f"the token of {TOKEN_FLAG} / {TOKEN_ENV}, when the service has one",
)


def token_from(path: str | None, env: Mapping[str, str]) -> str | None:
    """The token of `--provision-token-file`, `MAASFLOW_PROVISION_TOKEN` or the credential
    `provision_token` (the first given), or None.

    Read and checked by `maasflow.common.secrets`, as the daemon's side of the same token
    is: one line of printable ASCII without spaces, from a file of at most 4 KiB.
    """
    if path is not None:
        return read_token_file(Path(path), TOKEN_FLAG, _WHAT)
    value = env.get(TOKEN_ENV)
    if value is not None:
        return parse_token(value, TOKEN_ENV, _WHAT)
    value = read_credential(CREDENTIAL, _WHAT, env)
    return None if value is None else parse_token(value, f"{CREDENTIALS_VARIABLE}/{CREDENTIAL}")


def token_dependencies(token: str | None) -> list[Any]:
    """The router dependencies enforcing `token`; none when it is None (an open API)."""
    if token is None:
        return []

    async def require_token(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        why = refusal(None if credentials is None else credentials.credentials, token)
        if why is not None:
            raise _unauthorized(why)

    return [Depends(require_token)]


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": REALM})
