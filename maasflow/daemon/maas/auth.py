"""The MAAS API key as an httpx auth: sign every request with it, redact it from answers.

A MAAS key is one string ``<consumer_key>:<token_key>:<token_secret>``; the OAuth consumer
secret is always empty. Every request is signed with OAuth 1.0a PLAINTEXT, whose signature is
``&<token_secret>`` whatever the URL, method or body (`maas-api-facts.md` §1; MAAS's own
`src/apiclient/creds.py` and `src/apiclient/maas_client.py`).

`MaasAuth.auth_flow` runs once per send, so every request, retries included, gets a fresh
nonce and timestamp: MAAS refuses a reused nonce and a timestamp older than 300 s.

The key is a secret: it never appears in a repr, an exception or a log. Its shape is checked
and masked by `maasflow.common.secrets` (`parse_api_key`; `mask_api_key` shows at most the
lengths of its parts), and `MaasAuth.redact` scrubs its parts out of text that came back from
MAAS (a 401 body quotes the token key). This module stops at signing: it sends nothing.
"""

from __future__ import annotations

from collections.abc import Generator

import httpx
from oauthlib import oauth1

from maasflow.common.secrets import mask_api_key, parse_api_key

_REDACTED = "<redacted>"
_MIN_REDACTED_LEN = 4  # shorter parts would blank out ordinary words in MAAS's messages


class MaasAuth(httpx.Auth):
    """httpx authentication that signs each request with OAuth 1.0a PLAINTEXT."""

    def __init__(self, api_key: str) -> None:
        consumer_key, token_key, token_secret = parse_api_key(api_key)
        self.masked = mask_api_key(api_key)
        self._parts = (consumer_key, token_key, token_secret)
        self._secrets = tuple(
            p for p in (token_secret, token_key, consumer_key) if len(p) >= _MIN_REDACTED_LEN
        )
        self._signer = oauth1.Client(
            consumer_key,
            client_secret="",
            resource_owner_key=token_key,
            resource_owner_secret=token_secret,
            signature_method=oauth1.SIGNATURE_PLAINTEXT,
        )

    def __repr__(self) -> str:
        return f"MaasAuth(key={self.masked})"

    def signs_with(self, api_key: str) -> bool:
        """Whether `api_key` is the key this auth signs with (a malformed one raises)."""
        return parse_api_key(api_key) == self._parts

    __str__ = __repr__

    def authorization(self, url: str, method: str) -> str:
        """A fresh ``Authorization`` header value (new nonce and timestamp) for one request."""
        # PLAINTEXT signs neither URL nor body, so the body is not handed to oauthlib (it would
        # try to parse form bodies for nothing).
        _, headers, _ = self._signer.sign(url, method)
        return str(headers["Authorization"])

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Sign `request`; httpx calls this once per send, so retries get a new nonce too."""
        request.headers["Authorization"] = self.authorization(str(request.url), request.method)
        yield request

    def redact(self, text: str) -> str:
        """`text` with every part of the key replaced by ``<redacted>``."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, _REDACTED)
        return text
