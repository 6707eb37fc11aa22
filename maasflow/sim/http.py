"""Requests and responses as the simulator's handlers see them, and form-body parsing.

A `Request` is built from an ASGI scope plus the whole body: query string and body
parameters become multi-dicts (`dict[str, list[str]]`, repeated keys keep every value, as
MAAS's Django forms do). Bodies may be `multipart/form-data` (what MAAS documents and its
own client sends) or `application/x-www-form-urlencoded`; multipart is parsed with the
standard library's `email` parser because `python-multipart` is not installed. A part
without a name is skipped, as Django's `MultiPartParser` skips it (so MAAS does too): an op
without parameters sent by python-libmaas is a multipart body whose only part has no name.
A `Response` is plain data; `ApiError` carries one so handlers can bail out anywhere.
Sending bytes over ASGI lives in `asgi.py`; what the answers mean lives in `api.py`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from email import policy
from email.message import Message
from email.parser import BytesParser
from typing import Any
from urllib.parse import parse_qsl

Params = dict[str, list[str]]

TEXT = "text/plain; charset=utf-8"
JSON = "application/json"
HTML = "text/html; charset=utf-8"


@dataclass
class Response:
    """Status, body and content type of one answer, plus any extra headers."""

    status: int
    body: bytes = b""
    content_type: str = TEXT
    headers: dict[str, str] = field(default_factory=dict)


class ApiError(Exception):
    """Raised by a handler to answer with `response` instead of a machine."""

    def __init__(self, response: Response) -> None:
        super().__init__(f"HTTP {response.status}")
        self.response = response


class BadBody(ValueError):
    """The request body could not be parsed as a form."""


def text(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """A text/plain answer, the way MAAS reports most errors."""
    return Response(status, message.encode("utf-8"), TEXT, dict(headers or {}))


def json_response(payload: Any, status: int = 200) -> Response:
    """A JSON answer built from plain Python data."""
    return Response(status, dump(payload), JSON)


def dump(payload: Any) -> bytes:
    """Compact JSON bytes (MAAS's answers carry no meaningful whitespace)."""
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")


def fail(status: int, message: str) -> ApiError:
    """An `ApiError` with a text/plain body."""
    return ApiError(text(status, message))


def field_errors(errors: dict[str, list[str]], status: int = 400) -> ApiError:
    """An `ApiError` with MAAS's JSON form-validation shape `{"field": ["msg", ...]}`."""
    return ApiError(json_response(errors, status))


@dataclass
class Request:
    """One HTTP request, decoded."""

    method: str
    path: str
    query: Params
    form: Params
    headers: dict[str, str]

    @property
    def op(self) -> str | None:
        """The named operation: query string first, then the body, as MAAS looks it up."""
        for source in (self.query, self.form):
            values = source.get("op")
            if values:
                return values[0]
        return None

    def params(self) -> Params:
        """Query and body parameters merged (body values after query values)."""
        merged: Params = {key: list(values) for key, values in self.query.items()}
        for key, values in self.form.items():
            merged.setdefault(key, []).extend(values)
        return merged


def parse_query(raw: bytes) -> Params:
    """Decode a query string into a multi-dict; undecodable bytes become U+FFFD."""
    text_form = raw.decode("utf-8", errors="replace")
    pairs = parse_qsl(text_form, keep_blank_values=True, encoding="utf-8", errors="replace")
    params: Params = {}
    for key, value in pairs:
        params.setdefault(key, []).append(value)
    return params


def parse_body(content_type: str, body: bytes) -> Params:
    """Decode a form body; raise `BadBody` when it cannot be understood."""
    if not body:
        return {}
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        return parse_query(body)
    if kind == "multipart/form-data":
        return _parse_multipart(content_type, body)
    return {}


def _parse_multipart(content_type: str, body: bytes) -> Params:
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1", "replace")
    try:
        message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    except Exception as exc:  # the email parser raises many types on garbage
        raise BadBody(str(exc)) from exc
    if not message.is_multipart() or message.defects:
        raise BadBody("malformed multipart body")
    params: Params = {}
    for part in message.get_payload():
        if isinstance(part, Message):
            _add_part(params, part)
    return params


def _add_part(params: Params, part: Message) -> None:
    name = part.get_param("name", header="content-disposition")
    if not isinstance(name, str):
        return  # Django's MultiPartParser skips a part without a name, so MAAS does too
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    params.setdefault(name, []).append(data.decode("utf-8", errors="replace"))
