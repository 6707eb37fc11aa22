"""OAuth 1.0a PLAINTEXT is checked the way MAAS checks it (facts §1.3)."""

from __future__ import annotations

import time

import httpx
import pytest

from maasflow.sim import SimConfig, Simulator, serve_simulator
from maasflow.sim.auth import ApiKey, NonceStore

CHALLENGE = 'OAuth realm="OAuth"'


def header(key: str, *, nonce: str = "n1", timestamp: int | None = None, **override: str) -> str:
    consumer, token, secret = key.split(":")
    fields = {
        "oauth_consumer_key": consumer,
        "oauth_token": token,
        "oauth_signature_method": "PLAINTEXT",
        "oauth_signature": "%26" + secret,
        "oauth_timestamp": str(int(time.time()) if timestamp is None else timestamp),
        "oauth_nonce": nonce,
        "oauth_version": "1.0",
    } | override
    return "OAuth " + ", ".join(f'{name}="{value}"' for name, value in fields.items())


async def whoami(client: httpx.AsyncClient, authorization: str) -> httpx.Response:
    return await client.get(
        "users/", params={"op": "whoami"}, headers={"Authorization": authorization}
    )


async def test_good_oauthlib_signature_is_accepted(
    admin: httpx.AsyncClient, sim: Simulator
) -> None:
    """A request signed by oauthlib with the admin key is the admin user."""
    response = await admin.get("users/", params={"op": "whoami"})
    assert response.status_code == 200
    assert response.json() == {
        "resource_uri": "/MAAS/api/2.0/users/admin/",
        "username": sim.admin_username,
        "email": f"{sim.admin_username}@example.com",
        "is_local": True,
        "is_superuser": True,
    }


async def test_hand_built_header_with_realm_is_accepted(
    anonymous: httpx.AsyncClient, sim: Simulator
) -> None:
    """A header with a realm parameter (as python-libmaas sends) authenticates the user."""
    response = await whoami(anonymous, header(sim.user_key, realm="OAuth"))
    assert response.status_code == 200
    assert response.json()["username"] == sim.user_username
    assert response.json()["is_superuser"] is False


async def test_unknown_consumer_is_401_invalid_api_key(
    anonymous: httpx.AsyncClient, sim: Simulator
) -> None:
    """An unknown consumer key answers MAAS's "Invalid API key." with the OAuth challenge."""
    response = await whoami(anonymous, header(sim.admin_key, oauth_consumer_key="nobody"))
    assert response.status_code == 401
    assert response.text == "Authorization Error: Invalid API key."
    assert response.headers["www-authenticate"] == CHALLENGE
    assert response.headers["content-type"].startswith("text/plain")


async def test_unknown_token_is_401_invalid_access_token(
    anonymous: httpx.AsyncClient, sim: Simulator
) -> None:
    """A known consumer with a foreign token answers "Invalid access token: <token>"."""
    response = await whoami(anonymous, header(sim.admin_key, oauth_token="tok3n"))
    assert response.status_code == 401
    assert response.text == "Authorization Error: 'Invalid access token: tok3n'"
    assert response.headers["www-authenticate"] == CHALLENGE


async def test_wrong_secret_is_401_and_never_echoes_the_secret(
    anonymous: httpx.AsyncClient, sim: Simulator
) -> None:
    """A wrong signature is refused without showing the expected secret."""
    response = await whoami(anonymous, header(sim.admin_key, oauth_signature="%26wrong"))
    assert response.status_code == 401
    assert response.text == "Authorization Error: 'Invalid signature.'"
    assert ApiKey.parse(sim.admin_key).secret not in response.text


async def test_signature_without_ampersand_is_refused(
    anonymous: httpx.AsyncClient, sim: Simulator
) -> None:
    """The bare secret is not a PLAINTEXT signature: it must be `&<secret>`."""
    secret = ApiKey.parse(sim.admin_key).secret
    response = await whoami(anonymous, header(sim.admin_key, oauth_signature=secret))
    assert response.status_code == 401


async def test_timestamp_older_than_300_seconds_is_401(
    anonymous: httpx.AsyncClient, sim: Simulator
) -> None:
    """A timestamp more than 300 s in the past is an expired timestamp."""
    stale = int(time.time()) - 301
    response = await whoami(anonymous, header(sim.admin_key, timestamp=stale))
    assert response.status_code == 401
    assert response.text.startswith(f"Authorization Error: 'Expired timestamp: given {stale}")
    assert response.headers["www-authenticate"] == CHALLENGE


async def test_timestamp_within_300_seconds_is_accepted(
    anonymous: httpx.AsyncClient, sim: Simulator
) -> None:
    """A timestamp 200 s old is still fine."""
    response = await whoami(anonymous, header(sim.admin_key, timestamp=int(time.time()) - 200))
    assert response.status_code == 200


async def test_malformed_timestamp_is_400_bad_request(
    anonymous: httpx.AsyncClient, sim: Simulator
) -> None:
    """A non-numeric timestamp inside an OAuth attempt is a 400 'Bad Request: ...'."""
    response = await whoami(anonymous, header(sim.admin_key, oauth_timestamp="soon"))
    assert response.status_code == 400
    assert response.text.startswith("'Bad Request:")


async def test_reused_nonce_is_401(anonymous: httpx.AsyncClient, sim: Simulator) -> None:
    """The same nonce twice for one consumer+token is refused the second time."""
    first = await whoami(anonymous, header(sim.admin_key, nonce="once"))
    second = await whoami(anonymous, header(sim.admin_key, nonce="once"))
    assert first.status_code == 200
    assert second.status_code == 401
    assert second.text == "Authorization Error: 'Nonce already used: once'"


async def test_same_nonce_for_another_token_is_fine(
    anonymous: httpx.AsyncClient, sim: Simulator
) -> None:
    """Nonces are remembered per consumer+token, not globally."""
    assert (await whoami(anonymous, header(sim.admin_key, nonce="shared"))).status_code == 200
    assert (await whoami(anonymous, header(sim.user_key, nonce="shared"))).status_code == 200


async def test_other_signature_method_is_refused(
    anonymous: httpx.AsyncClient, sim: Simulator
) -> None:
    """Only PLAINTEXT is accepted."""
    response = await whoami(anonymous, header(sim.admin_key, oauth_signature_method="HMAC-SHA1"))
    assert response.status_code == 401
    assert "Signature method HMAC-SHA1 not supported" in response.text


async def test_wrong_oauth_version_is_refused(anonymous: httpx.AsyncClient, sim: Simulator) -> None:
    """oauth_version, when present, must be 1.0."""
    response = await whoami(anonymous, header(sim.admin_key, oauth_version="2.0"))
    assert response.status_code == 401


async def test_missing_header_on_users_is_401_forbidden(anonymous: httpx.AsyncClient) -> None:
    """An endpoint without an anonymous handler answers piston's 401 "Forbidden"."""
    response = await anonymous.get("users/", params={"op": "whoami"})
    assert response.status_code == 401
    assert response.text == "Forbidden"


async def test_missing_header_on_machines_list_is_400_unrecognised(
    anonymous: httpx.AsyncClient,
) -> None:
    """Anonymous GET machines/ reaches the anonymous handler, which has no list."""
    response = await anonymous.get("machines/")
    assert response.status_code == 400
    assert response.text == "Unrecognised signature: method=GET op=None"


async def test_incomplete_oauth_header_counts_as_anonymous(
    anonymous: httpx.AsyncClient, sim: Simulator
) -> None:
    """A header lacking one of the six oauth_* parameters is no OAuth attempt at all."""
    consumer = sim.admin_key.split(":")[0]
    response = await whoami(anonymous, f'OAuth oauth_consumer_key="{consumer}"')
    assert response.status_code == 401
    assert response.text == "Forbidden"


async def test_anonymous_machine_read_is_401(anonymous: httpx.AsyncClient, sim: Simulator) -> None:
    """Reading one machine needs a key."""
    system_id = next(iter(sim.machines))
    response = await anonymous.get(f"machines/{system_id}/")
    assert response.status_code == 401


@pytest.mark.parametrize("bad", ["a:b", "a:b:c:d", "::", "a::c"])
def test_admin_key_must_have_three_non_empty_parts(bad: str) -> None:
    """ApiKey.parse refuses anything but consumer:token:secret."""
    with pytest.raises(ValueError):
        ApiKey.parse(bad)


def test_api_key_repr_hides_the_secret() -> None:
    """The secret never shows up in a repr (logs, tracebacks)."""
    key = ApiKey("consumer", "token", "s3cr3t")
    assert "s3cr3t" not in repr(key)
    assert str(key) == "consumer:token:s3cr3t"


async def test_configured_admin_key_is_used() -> None:
    """SimConfig.admin_key replaces the generated admin key."""
    key = "c" * 18 + ":" + "t" * 18 + ":" + "s" * 32
    async with serve_simulator(SimConfig(admin_key=key)) as sim:
        assert sim.admin_key == key


async def test_keys_are_18_18_32_and_follow_the_seed() -> None:
    """Generated keys have MAAS's lengths and the same seed gives the same keys."""
    async with serve_simulator(SimConfig(seed=3)) as first:
        keys = (first.admin_key, first.user_key, first.other_key)
    async with serve_simulator(SimConfig(seed=3)) as second:
        assert (second.admin_key, second.user_key, second.other_key) == keys
    assert [len(part) for part in keys[0].split(":")] == [18, 18, 32]
    assert len(set(keys)) == 3


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_nonce_store_refuses_reuse_within_the_window() -> None:
    """A nonce seen 599 s ago is still refused for the same consumer+token."""
    clock = FakeClock()
    store = NonceStore(clock)
    assert store.add(("c", "t", "n"))
    clock.now += 599
    assert not store.add(("c", "t", "n"))
    assert store.add(("c", "other-token", "n"))


def test_nonce_store_forgets_expired_nonces_at_once() -> None:
    """Nonces older than twice the timestamp threshold are dropped on the next add."""
    clock = FakeClock()
    store = NonceStore(clock)
    for index in range(1000):
        store.add(("c", "t", f"old-{index}"))
    clock.now += 601
    store.add(("c", "t", "fresh"))
    assert len(store) == 1


def test_nonce_store_keeps_only_the_young_under_steady_load() -> None:
    """At 100 requests a second the store holds about one window's worth of nonces."""
    clock = FakeClock()
    store = NonceStore(clock)
    for index in range(100_000):
        clock.now += 0.01
        assert store.add(("c", "t", str(index)))
    assert 59_000 < len(store) <= 60_001
