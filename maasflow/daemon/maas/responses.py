"""What a MAAS answer means: success, worth retrying, or a typed error with MAAS's message.

The rules come from `maas-api-facts.md` §1.3, §3 and §5 (MAAS `src/maasserver/exceptions.py`,
`src/maasserver/utils/views.py`, `src/maasserver/middleware.py`):

- 502/503/504 and a 429 from a proxy are temporary: retry, honouring ``Retry-After``.
  Except a 503 saying MAAS ran out of addresses (`StaticIPAddressExhaustion`, on deploy and
  power_on, §3.3/§3.4/§5.2): the same request fails the same way until a person frees
  addresses, so it is a `PermanentMaasError` (still status 503) with a hint saying so.
- 409 comes in two kinds. The HTML page (a database serialisation conflict, with
  ``Retry-After: 5`` since MAAS 3.2) is temporary; the text/plain sentence is a real state
  conflict (`Conflict`) that retrying cannot fix.
- 400/401/403/404 map to their typed errors; 410 means API 1.0 (gone since MAAS 2.0); every
  other status is a `PermanentMaasError`.

MAAS's message is made readable (JSON field errors flattened, HTML tags dropped, control
characters removed), stripped of any key part and cut to `MESSAGE_LIMIT` characters. This
module only reads responses (including how long a server asks us to wait); the client owns
the loop and `maasflow.common.backoff` the delays.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime

import httpx

from maasflow.common.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    MaasError,
    NotFound,
    PermanentMaasError,
    TemporaryMaasError,
    Unauthorized,
)

MESSAGE_LIMIT = 500
_SCAN_LIMIT = 64 * 1024  # never clean more of a hostile body than this
_TEMPORARY_STATUSES = frozenset({429, 502, 503, 504})
_TYPED: dict[int, type[PermanentMaasError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
}
_HINTS = {
    401: " (MAAS rejected the API key: wrong or deleted, or this clock is over 5 min slow)",
    403: " (the key's user lacks permission: commission and update need an admin key; "
    "a locked machine refuses every change)",
    410: " (MAAS 2.0+ answers 410 Gone to API 1.0; use API version 2.0)",
}
_EXHAUSTED = (
    "address exhaustion"  # MAAS: "<id>: Unable to allocate static IP due to address exhaustion."
)
_EXHAUSTED_HINT = (
    " (MAAS has no free IP address on the machine's subnet: retrying cannot help until "
    "addresses are freed or the subnet's ranges are widened)"
)
_TAG = re.compile(r"<[^<>]*>")
_SPACE = re.compile(r"\s+")


def is_temporary(response: httpx.Response) -> bool:
    """Whether this error status is worth the same request again after a pause."""
    if response.status_code in _TEMPORARY_STATUSES:
        return True
    if response.status_code != 409:
        return False
    return _is_html(response) or "retry-after" in response.headers


def _is_html(response: httpx.Response) -> bool:
    return "text/html" in response.headers.get("content-type", "").lower()


def retry_after(response: httpx.Response, now: Callable[[], float] = time.time) -> float | None:
    """Seconds the server asked us to wait (delta-seconds or HTTP-date), or None."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    seconds: float | None
    try:
        seconds = float(value)
    except ValueError:
        seconds = _seconds_until(value, now)
    if seconds is None or not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)


def _seconds_until(http_date: str, now: Callable[[], float]) -> float | None:
    try:
        return parsedate_to_datetime(http_date).timestamp() - now()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def message_of(response: httpx.Response, redact: Callable[[str], str] = str) -> str:
    """MAAS's error message from `response`, readable, key-free and at most MESSAGE_LIMIT long."""
    raw = response.content[:_SCAN_LIMIT].decode("utf-8", errors="replace")
    raw = _TAG.sub(" ", raw) if _is_html(response) else _flatten_json(raw)
    return _clean(raw, redact) or "(empty body)"


def _clean(raw: str, redact: Callable[[str], str] = str) -> str:
    """One line of printable text, key-free, cut to MESSAGE_LIMIT characters."""
    text = _SPACE.sub(" ", "".join(ch if ch.isprintable() else " " for ch in raw)).strip()
    text = redact(text)
    if len(text) > MESSAGE_LIMIT:
        text = text[: MESSAGE_LIMIT - 1] + "…"
    return text


def _flatten_json(raw: str) -> str:
    """`{"field": ["msg", ...]}` → ``field: msg; ...``; anything not a JSON object unchanged."""
    if not raw.lstrip().startswith("{"):
        return raw
    try:
        data = json.loads(raw)
    except ValueError:
        return raw
    if not isinstance(data, dict):
        return raw
    return "; ".join(_flatten_item(str(key), value) for key, value in data.items())


def _flatten_item(key: str, value: object) -> str:
    text = ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)
    return text if key == "__all__" else f"{key}: {text}"


def error_for(method: str, path: str, response: httpx.Response, message: str) -> MaasError:
    """The typed error for a final, non-success `response`."""
    status = response.status_code
    message += _HINTS.get(status, "")
    if status == 503 and _EXHAUSTED in message.lower():
        return PermanentMaasError(method, path, status, message + _EXHAUSTED_HINT)
    if is_temporary(response):
        return TemporaryMaasError(method, path, status, message, retry_after(response))
    if 300 <= status < 400:
        where = _clean(response.headers.get("location", "?")[:200])
        message = f"redirected to {where}; point the MAAS URL there ({message})"
    error_type = _TYPED.get(status, PermanentMaasError)
    return error_type(method, path, status, message)
