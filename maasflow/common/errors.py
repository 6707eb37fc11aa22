"""The exception hierarchy of maasflow.

Errors are how a layer tells the loop what to do next, so the tree is small and each
branch says one thing about retrying::

    MaasflowError
    ├── ConfigError              bad flag, env var, filter, regex, key or file: exit 2
    ├── MaasError                MAAS answered badly (carries method, path, status, message)
    │   ├── TemporaryMaasError   connection error, 502/503/504, HTML 409: retried by the client
    │   └── PermanentMaasError   never retried as is; the next pass re-decides
    │       ├── BadRequest       400 (e.g. commission from a wrong state)
    │       ├── Unauthorized     401: the key is wrong or was deleted
    │       ├── Forbidden        403: not admin, or the machine is locked
    │       ├── NotFound         404
    │       └── Conflict         text/plain 409: a real state conflict
    ├── ProvisionError           provisioning failed; retried with capped exponential backoff
    ├── StoreError               a state store could not be read or written (disk full, I/O
    │                            error); the write is retried, health names the store
    ├── NotLeader                this daemon does not lead (any more): the write is not sent
    └── PowerError               a power backend of `maasflow serve` failed

Nothing here imports httpx: the MAAS client maps transport failures onto these types.
"""

from __future__ import annotations


class MaasflowError(Exception):
    """Base of every error maasflow raises on purpose."""


class ConfigError(MaasflowError):
    """Invalid configuration; the CLI prints the message on one line and exits 2."""


class MaasError(MaasflowError):
    """MAAS answered with an error, or could not be reached."""

    def __init__(self, method: str, path: str, status: int | None, message: str) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.message = message
        shown = "no response" if status is None else f"HTTP {status}"
        super().__init__(f"{method} {path}: {shown}: {message}")


class TemporaryMaasError(MaasError):
    """Worth retrying: the connection failed, MAAS was busy (502/503/504, HTML 409)."""

    def __init__(
        self,
        method: str,
        path: str,
        status: int | None,
        message: str,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(method, path, status, message)
        self.retry_after = retry_after


class PermanentMaasError(MaasError):
    """Retrying the same request would fail the same way."""


class BadRequest(PermanentMaasError):
    """400: validation failed or the op is not allowed from the machine's state."""


class Unauthorized(PermanentMaasError):
    """401: the API key is malformed, unknown, deleted or its signature is wrong."""


class Forbidden(PermanentMaasError):
    """403: the key's user lacks permission (commission needs admin) or the machine is locked."""


class NotFound(PermanentMaasError):
    """404: no such machine, or not visible to this user."""


class Conflict(PermanentMaasError):
    """409 text/plain: the machine's state forbids the op; the next pass re-decides."""


class ProvisionError(MaasflowError):
    """Provisioning failed; carries its evidence (exit code, output tail, HTTP status)."""

    def __init__(
        self, message: str, *, exit_code: int | None = None, output_tail: str = ""
    ) -> None:
        self.exit_code = exit_code
        self.output_tail = output_tail
        super().__init__(message)


class StoreError(MaasflowError):
    """A state store refused a read or a write (disk full, I/O error, locked); nothing changed."""


class NotLeader(MaasflowError):
    """Fencing: this daemon is not the leader, or its lease ran out; it must not write."""


class PowerError(MaasflowError):
    """A power backend (wol, dli, command) could not do what was asked."""
