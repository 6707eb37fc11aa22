"""Decoders of MAAS success bodies: (response, method, shown path) → value.

Small answers (one machine, a user, the version) are read whole and validated by pydantic.
The machine listing is not decoded here but streamed (`Streamed`, `maas.listing`): it is
MAAS's largest answer, and holding it whole cost hundreds of megabytes at 10,000 machines.
A body that is not valid JSON raises `UnreadableAnswer`, a `TemporaryMaasError` the client
retries for GETs; valid JSON of the wrong shape is a `PermanentMaasError`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from maasflow.common.errors import PermanentMaasError, TemporaryMaasError

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
Decoder = Callable[[httpx.Response, str, str], T]


@dataclass(frozen=True, slots=True)
class Streamed(Generic[T]):
    """A decoder that reads a success answer as it arrives, chunk by chunk.

    `read(chunks, method, shown path, status)`; the chunks come size-capped by the client.
    """

    read: Callable[[AsyncIterator[bytes], str, str, int], Awaitable[T]]


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


def _is_bad_json(exc: ValidationError) -> bool:
    return any(error["type"] == "json_invalid" for error in exc.errors(include_input=False))


def _first_problem(exc: ValidationError) -> str:
    errors = exc.errors(include_input=False, include_url=False)
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top)"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first['msg']}{more}"[:300]
