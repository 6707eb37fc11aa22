"""The simulator's users, their API keys, and its OAuth 1.0a PLAINTEXT check.

Verified the way MAAS (piston3 under `src/maasserver/api/auth.py`) does it, from facts §1:
a request is an OAuth attempt only when all six `oauth_*` parameters are present (header or
query string); otherwise it is anonymous and the caller decides (`None` is returned). For an
attempt the checks run in piston's order: version, consumer, token, timestamp (more than
300 s old is refused), nonce (once per consumer+token), signature (`&<token_secret>` after
percent-decoding, since the consumer secret is empty). Every refusal is a 401 text/plain
with `WWW-Authenticate: OAuth realm="OAuth"`, worded as MAAS words it, except that a wrong
signature says only "Invalid signature." (piston appends the expected base string, which
for PLAINTEXT is the secret itself; the simulator never echoes a secret).
Permissions (who may do what to which machine) live in `world.py`.
"""

from __future__ import annotations

import hmac
import random
import string
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import unquote

from maasflow.sim.http import ApiError, Request, text

REQUIRED = (
    "oauth_consumer_key",
    "oauth_token",
    "oauth_signature",
    "oauth_signature_method",
    "oauth_timestamp",
    "oauth_nonce",
)
TIMESTAMP_THRESHOLD = 300
_ALPHABET = string.ascii_letters + string.digits
_CHALLENGE = {"WWW-Authenticate": 'OAuth realm="OAuth"'}
NonceKey = tuple[str, str, str]  # consumer key, token key, nonce


@dataclass(frozen=True)
class ApiKey:
    """`<consumer_key>:<token_key>:<token_secret>`; the repr hides the secret."""

    consumer: str
    token: str
    secret: str = field(repr=False)

    def __str__(self) -> str:
        return f"{self.consumer}:{self.token}:{self.secret}"

    @classmethod
    def parse(cls, value: str) -> ApiKey:
        """Split a key string; raise ValueError unless it has three non-empty parts."""
        parts = value.strip().split(":")
        if len(parts) != 3 or not all(parts):
            raise ValueError("an API key is consumer_key:token_key:token_secret")
        return cls(*parts)


def generate_key(rng: random.Random) -> ApiKey:
    """A fresh 18:18:32-character key drawn from `rng` (so a seed gives the same key)."""

    def draw(length: int) -> str:
        return "".join(rng.choice(_ALPHABET) for _ in range(length))

    return ApiKey(draw(18), draw(18), draw(32))


@dataclass(frozen=True)
class User:
    """A MAAS user with one API key."""

    username: str
    is_superuser: bool
    key: ApiKey
    email: str = ""

    def whoami(self) -> dict[str, object]:
        """The `users/?op=whoami` answer (also this user's entry in `users/`)."""
        email = self.email or f"{self.username}@example.com"
        return {
            "username": self.username,
            "email": email,
            "is_local": True,
            "is_superuser": self.is_superuser,
            "resource_uri": f"/MAAS/api/2.0/users/{self.username}/",
        }


class Authenticator:
    """Checks OAuth PLAINTEXT headers against known users; remembers nonces."""

    def __init__(self, users: list[User], clock: Callable[[], float] = time.time) -> None:
        self.users = list(users)
        self._by_consumer = {user.key.consumer: user for user in users}
        self._clock = clock
        self._nonces = NonceStore(clock)

    def authenticate(self, request: Request) -> User | None:
        """The caller's user, None when the request is no OAuth attempt; ApiError if refused."""
        params = oauth_params(request)
        if not all(params.get(name) for name in REQUIRED):
            return None
        version = params.get("oauth_version")
        if version is not None and version != "1.0":
            raise _refuse(repr(f"OAuth version {_clip(version)} not supported."))
        user = self._by_consumer.get(params["oauth_consumer_key"])
        if user is None:
            raise _refuse("Invalid API key.")
        if params["oauth_token"] != user.key.token:
            raise _refuse(repr(f"Invalid access token: {_clip(params['oauth_token'])}"))
        self._check_timestamp(params["oauth_timestamp"])
        self._check_nonce(user, params["oauth_nonce"])
        _check_signature(user, params)
        return user

    def _check_timestamp(self, raw: str) -> None:
        try:
            given = int(raw)
        except ValueError:
            message = repr(f"Bad Request: Invalid timestamp: {_clip(raw)}")
            raise ApiError(text(400, message)) from None
        now = int(self._clock())
        if now - given > TIMESTAMP_THRESHOLD:
            raise _refuse(
                repr(
                    f"Expired timestamp: given {given} and now {now} has a greater "
                    f"difference than threshold {TIMESTAMP_THRESHOLD}"
                )
            )

    def _check_nonce(self, user: User, nonce: str) -> None:
        if not self._nonces.add((user.key.consumer, user.key.token, nonce)):
            raise _refuse(repr(f"Nonce already used: {_clip(nonce)}"))


class NonceStore:
    """The nonces seen in the last `2 * TIMESTAMP_THRESHOLD` seconds, per consumer+token.

    A deque in arrival order lets each `add` forget expired nonces from its left end, so the
    cost per request stays constant however many nonces are young. A nonce older than the
    window may be forgotten: a request carrying it is refused anyway, because its timestamp
    is more than `TIMESTAMP_THRESHOLD` seconds old.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._order: deque[tuple[float, NonceKey]] = deque()
        self._seen: set[NonceKey] = set()

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, key: NonceKey) -> bool:
        """Remember `key`; False when it was already seen within the window."""
        now = self._clock()
        self._expire(now - 2 * TIMESTAMP_THRESHOLD)
        if key in self._seen:
            return False
        self._seen.add(key)
        self._order.append((now, key))
        return True

    def _expire(self, horizon: float) -> None:
        while self._order and self._order[0][0] < horizon:
            _, key = self._order.popleft()
            self._seen.discard(key)


def _check_signature(user: User, params: dict[str, str]) -> None:
    method = params["oauth_signature_method"]
    if method != "PLAINTEXT":
        raise _refuse(
            repr(
                f"Signature method {_clip(method)} not supported try one of the "
                "following: PLAINTEXT"
            )
        )
    expected = "&" + user.key.secret
    given = params["oauth_signature"]  # already percent-decoded by oauth_params()
    if not hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8")):
        raise _refuse(repr("Invalid signature."))


def oauth_params(request: Request) -> dict[str, str]:
    """The `oauth_*` parameters of the Authorization header, else of the query string."""
    header = request.headers.get("authorization", "")
    params: dict[str, str] = {}
    if header[:6].lower() == "oauth ":
        params = _parse_header(header[6:])
    for name, values in request.query.items():
        if name.startswith("oauth_") and values:
            params.setdefault(name, values[0])
    return params


def _parse_header(value: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in value.split(","):
        name, sep, raw = item.strip().partition("=")
        if not sep:
            continue
        params[name.strip()] = unquote(raw.strip().strip('"'))
    return params


def _refuse(message: str) -> ApiError:
    return ApiError(text(401, f"Authorization Error: {message}", _CHALLENGE))


def _clip(value: str) -> str:
    """Echo at most 64 characters of a client-supplied value."""
    return value[:64]
