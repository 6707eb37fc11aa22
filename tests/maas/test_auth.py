"""OAuth PLAINTEXT signing, key parsing and key masking."""

from __future__ import annotations

import time

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from maasflow.common.errors import ConfigError
from maasflow.common.secrets import mask_api_key, parse_api_key
from maasflow.daemon.maas.auth import MaasAuth

SIX = {
    "oauth_consumer_key",
    "oauth_token",
    "oauth_signature",
    "oauth_signature_method",
    "oauth_timestamp",
    "oauth_nonce",
}


def _sign(auth: MaasAuth, method: str = "GET") -> str:
    request = httpx.Request(method, "http://127.0.0.1:5240/MAAS/api/2.0/machines/?op=x")
    flow = auth.auth_flow(request)
    signed = next(flow)
    return signed.headers["Authorization"]


def test_header_is_plaintext_oauth_with_all_six_params(key, oauth_params) -> None:
    """The header carries the six OAuth params MAAS checks, PLAINTEXT, version 1.0, %26<secret>."""
    params = oauth_params(_sign(MaasAuth(key.full)))
    assert params.keys() >= SIX
    assert params["oauth_signature_method"] == "PLAINTEXT"
    assert params["oauth_version"] == "1.0"
    assert params["oauth_signature"] == f"%26{key.secret}"
    assert params["oauth_consumer_key"] == key.consumer
    assert params["oauth_token"] == key.token
    assert abs(int(params["oauth_timestamp"]) - time.time()) < 60


def test_every_signature_has_a_fresh_nonce(key, oauth_params) -> None:
    """Signing the same request twice gives two different nonces (MAAS refuses reuse)."""
    auth = MaasAuth(key.full)
    nonces = {oauth_params(_sign(auth, method))["oauth_nonce"] for method in ["GET"] * 5}
    assert len(nonces) == 5


def test_signature_is_the_same_for_every_method(key, oauth_params) -> None:
    """PLAINTEXT does not depend on method or URL, so POST and PUT sign like GET."""
    auth = MaasAuth(key.full)
    sigs = {oauth_params(_sign(auth, m))["oauth_signature"] for m in ("GET", "POST", "PUT")}
    assert sigs == {f"%26{key.secret}"}


def test_key_file_whitespace_is_ignored(key) -> None:
    """A key read from a file with a trailing newline parses to the same three parts."""
    assert parse_api_key(f"  {key.full}\n") == (key.consumer, key.token, key.secret)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "Qx7onlyonepartZ9",
        "Qx7twoQ:Z9partsZ",
        "a1:b2:c3:d4",
        "::",
        "Qx7consQ::Z9secretZ",
        "Qx7c onsQ:Z9tokZ:Y8secY",
        "Qx7consQ:Z9t\u00e9kZ:Y8secY",
    ],
)
def test_malformed_keys_raise_config_error_without_the_key(bad: str) -> None:
    """A key that is not three printable colon-separated parts is a ConfigError that never
    repeats the key."""
    with pytest.raises(ConfigError) as caught:
        parse_api_key(bad)
    message = str(caught.value)
    assert "API key" in message
    for part in bad.split(":"):
        if len(part) >= 4:
            assert part not in message


def test_wrong_part_count_message_explains_the_format() -> None:
    """The error for a wrong part count says what a MAAS key looks like."""
    with pytest.raises(ConfigError, match=r"three colon-separated parts \(consumer:token:secret\)"):
        parse_api_key("abcdefgh:ijklmnop")


def test_mask_shows_only_part_lengths(key) -> None:
    """The mask of a real-shaped key is its part lengths."""
    assert mask_api_key(key.full) == "<18:18:32 chars>"


def test_mask_of_odd_keys_reveals_no_content() -> None:
    """Empty and many-part keys are masked by size only."""
    assert mask_api_key("") == "<empty>"
    assert mask_api_key("aaaa:bbbb:cccc:dddd:eeee") == "<5 parts, 24 chars>"


@given(st.text(alphabet="0123456789abcdefXYZ:", min_size=12, max_size=80))
def test_no_key_ever_appears_in_its_mask_or_error(text: str) -> None:
    """Whatever the key, neither its mask nor the error for it contains it."""
    assert text.strip() not in mask_api_key(text)
    try:
        parse_api_key(text)
    except ConfigError as exc:
        assert text not in str(exc)


def test_auth_repr_hides_the_key(key) -> None:
    """repr() and str() of the auth object show the mask, no part of the key."""
    auth = MaasAuth(key.full)
    for shown in (repr(auth), str(auth)):
        assert "<18:18:32 chars>" in shown
        for part in (key.consumer, key.token, key.secret):
            assert part not in shown


def test_redact_scrubs_every_key_part(key) -> None:
    """Text quoting a key part (as MAAS's 401 body quotes the token) comes back without it."""
    auth = MaasAuth(key.full)
    text = f"Authorization Error: 'Invalid access token: {key.token}' ({key.secret})"
    cleaned = auth.redact(text)
    assert key.token not in cleaned and key.secret not in cleaned
    assert cleaned.count("<redacted>") == 2
