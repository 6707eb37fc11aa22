"""Decoders of MAAS success bodies: (response, method, shown path) → value.

The fast path validates a whole listing with one `TypeAdapter(list[Machine])` straight from
the bytes, in pydantic-core (about 0.6 s for 10,000 real-sized machines, 37 MB, on one
core; `json.loads` alone takes longer). Only when an entry fails validation does it fall back
to one `model_validate` per entry, skipping the bad ones with a warning naming their
system_id. A body that is not valid JSON raises `UnreadableAnswer`, a `TemporaryMaasError`
the client retries for GETs; valid JSON of the wrong shape is a `PermanentMaasError`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
import structlog
from pydantic import BaseModel, TypeAdapter, ValidationError

from maasflow.common.errors import PermanentMaasError, TemporaryMaasError
from maasflow.daemon.maas.models import Machine

log = structlog.get_logger(__name__)

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
Decoder = Callable[[httpx.Response, str, str], T]

_MACHINES = TypeAdapter(list[Machine])


class UnreadableAnswer(TemporaryMaasError):
    """A success status whose body is not the JSON expected (truncated, a proxy's page)."""


def ignore_body(response: httpx.Response, method: str, shown: str) -> None:
    """power_on/power_off answer the machine, or null for a driver that cannot stop."""


def _unreadable(response: httpx.Response, method: str, shown: str) -> UnreadableAnswer:
    return UnreadableAnswer(
        method,
        shown,
        response.status_code,
        f"answer is not valid JSON ({len(response.content)} bytes; truncated by a proxy "
        "or an overloaded MAAS?)",
    )


def _decode_json(response: httpx.Response, method: str, shown: str) -> Any:
    try:
        return json.loads(response.content)
    except (ValueError, RecursionError):
        raise _unreadable(response, method, shown) from None


def decode_object(response: httpx.Response, method: str, shown: str) -> dict[str, Any]:
    """A JSON object body as a dict."""
    data = _decode_json(response, method, shown)
    if not isinstance(data, dict):
        message = f"expected a JSON object, got a JSON {type(data).__name__}"
        raise PermanentMaasError(method, shown, response.status_code, message)
    return data


def model_decoder(model: type[M]) -> Decoder[M]:
    """A decoder that validates the body as one `model` (a Machine, a User)."""

    def decode(response: httpx.Response, method: str, shown: str) -> M:
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            if _is_bad_json(exc):
                raise _unreadable(response, method, shown) from None
            raise PermanentMaasError(
                method,
                shown,
                response.status_code,
                f"answer is not a {model.__name__}: " + _first_problem(exc),
            ) from None

    return decode


def decode_machines(response: httpx.Response, method: str, shown: str) -> list[Machine]:
    """Fast path: validate the whole listing at once; on a bad entry, go one by one."""
    try:
        return _MACHINES.validate_json(response.content)
    except ValidationError as exc:
        if _is_bad_json(exc):
            raise _unreadable(response, method, shown) from None
    entries = _decode_json(response, method, shown)
    if not isinstance(entries, list):
        raise PermanentMaasError(
            method,
            shown,
            response.status_code,
            f"expected a JSON list of machines, got a JSON {type(entries).__name__}",
        )
    return [m for m in (_machine_or_none(entry) for entry in entries) if m is not None]


def _machine_or_none(entry: Any) -> Machine | None:
    try:
        return Machine.model_validate(entry)
    except ValidationError as exc:
        raw_id = entry.get("system_id") if isinstance(entry, dict) else None
        system_id = "".join(c for c in str(raw_id) if c.isprintable())[:64] if raw_id else None
        log.warning("maas.machine_skipped", system_id=system_id, problem=_first_problem(exc))
        return None


def _is_bad_json(exc: ValidationError) -> bool:
    return any(error["type"] == "json_invalid" for error in exc.errors(include_input=False))


def _first_problem(exc: ValidationError) -> str:
    errors = exc.errors(include_input=False, include_url=False)
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top)"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first['msg']}{more}"[:300]
