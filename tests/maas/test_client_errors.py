"""Retries (what, how often, how long) and the typed errors MAAS answers become."""

from __future__ import annotations

import httpx
import pytest
from structlog.testing import capture_logs

from maasflow.common.backoff import Backoff
from maasflow.common.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PermanentMaasError,
    TemporaryMaasError,
    Unauthorized,
)
from maasflow.daemon.maas.responses import retry_after

HTML_409 = "<html><head><title>409</title></head><body><h1>Conflict error.</h1><p>Try again.</p>"


def _nonce(request: httpx.Request) -> str:
    return request.headers["authorization"].split('oauth_nonce="')[1].split('"')[0]


async def test_503_with_retry_after_is_retried_after_that_many_seconds(
    client, router, recorder, machine
) -> None:
    """A 503 carrying Retry-After: 10 is retried after exactly 10 s (the injected sleep)."""
    router.get("machines/").mock(
        side_effect=[
            httpx.Response(503, text="No connections available.", headers={"Retry-After": "10"}),
            httpx.Response(200, json=[machine("a")]),
        ]
    )
    assert len(await client.list_machines()) == 1
    assert recorder.sleeps == [10.0]
    assert [r.status for r in recorder.records] == [503, 200]
    assert [r.attempt for r in recorder.records] == [1, 2]


async def test_retry_after_is_capped_by_backoff_cap(router, make_client, recorder) -> None:
    """A huge Retry-After never makes the client wait longer than backoff_cap."""
    router.get("users/").mock(
        side_effect=[
            httpx.Response(503, headers={"Retry-After": "3600"}),
            httpx.Response(200, json={"username": "u"}),
        ]
    )
    async with make_client(backoff_cap=7.0) as maas:
        await maas.whoami()
    assert recorder.sleeps == [7.0]


async def test_retries_get_a_fresh_nonce_each(client, router, machine) -> None:
    """Every retry is re-signed: no two attempts share a nonce."""
    route = router.get("machines/").mock(
        side_effect=[httpx.Response(502), httpx.Response(504), httpx.Response(200, json=[])]
    )
    await client.list_machines()
    nonces = [_nonce(call.request) for call in route.calls]
    assert len(nonces) == 3 and len(set(nonces)) == 3


async def test_html_409_is_retried(client, router, recorder, machine) -> None:
    """MAAS's HTML 409 (a database conflict) is retried and the op then succeeds."""
    route = router.post("machines/abc123/").mock(
        side_effect=[
            httpx.Response(409, html=HTML_409, headers={"Retry-After": "5"}),
            httpx.Response(200, json=machine("abc123", status=9)),
        ]
    )
    assert (await client.deploy("abc123")).status == 9
    assert route.call_count == 2
    assert recorder.sleeps == [5.0]


async def test_html_409_without_retry_after_is_retried_with_backoff(
    client, router, recorder, machine
) -> None:
    """MAAS 2.9 to 3.1 send the HTML 409 without Retry-After: still retried, with backoff."""
    router.post("machines/abc123/").mock(
        side_effect=[
            httpx.Response(409, html=HTML_409),
            httpx.Response(200, json=machine("abc123")),
        ]
    )
    await client.commission("abc123")
    assert len(recorder.sleeps) == 1 and 0.25 <= recorder.sleeps[0] <= 0.5


async def test_text_plain_409_is_a_conflict_never_retried(client, router, recorder) -> None:
    """A text/plain 409 is a real state conflict: Conflict at once, one request only."""
    route = router.post("machines/").respond(
        409, text="No machine with system ID abc123 available."
    )
    with pytest.raises(Conflict) as caught:
        await client.allocate("abc123")
    assert route.call_count == 1
    assert recorder.sleeps == []
    error = caught.value
    assert (error.method, error.path, error.status) == ("POST", "machines/?op=allocate", 409)
    assert error.message == "No machine with system ID abc123 available."


async def test_connection_errors_are_retried_then_raise_temporary(client, router, recorder) -> None:
    """A refused connection is retried up to max_attempts, then TemporaryMaasError, no status."""
    route = router.get("machines/").mock(side_effect=httpx.ConnectError("Connection refused"))
    with pytest.raises(TemporaryMaasError) as caught:
        await client.list_machines()
    assert route.call_count == 4
    assert len(recorder.sleeps) == 3
    assert caught.value.status is None
    assert "ConnectError" in caught.value.message
    assert [r.status for r in recorder.records] == [None] * 4


async def test_timeouts_are_retried(client, router) -> None:
    """A read timeout is retried like a connection error."""
    router.get("users/").mock(
        side_effect=[httpx.ReadTimeout("slow"), httpx.Response(200, json={"username": "u"})]
    )
    assert (await client.whoami()).username == "u"


async def test_a_write_whose_answer_was_lost_is_not_sent_again(client, router) -> None:
    """A commission cut off after sending may have happened: no second POST, the pass re-decides."""
    route = router.post("machines/abc123/").mock(side_effect=httpx.ReadError("reset by peer"))
    with pytest.raises(TemporaryMaasError, match="ReadError"):
        await client.commission("abc123")
    assert route.call_count == 1


async def test_a_write_that_never_connected_is_retried(client, router, machine) -> None:
    """Connection refused means MAAS never saw the POST: sending it again is safe."""
    answer = httpx.Response(200, json=machine("abc123", status=1))
    route = router.post("machines/abc123/").mock(
        side_effect=[httpx.ConnectError("refused"), answer]
    )
    assert (await client.commission("abc123")).system_id == "abc123"
    assert route.call_count == 2


def test_backoff_grows_and_stays_capped() -> None:
    """Delays double per attempt, carry jitter within [half, full] and never pass the cap."""

    def delay(attempt: int, jitter: float) -> float:
        return Backoff(0.5, 30, rand=lambda: jitter).delay(attempt)

    assert delay(1, 0.0) == 0.25
    assert delay(1, 1.0) == 0.5
    assert delay(4, 1.0) == 4.0
    assert delay(50, 1.0) == 30.0
    assert delay(5000, 0.0) == 15.0


def test_retry_after_reads_seconds_and_http_dates() -> None:
    """Retry-After works as delta-seconds and HTTP-date; junk is ignored."""

    def answer(value: str) -> httpx.Response:
        return httpx.Response(503, headers={"Retry-After": value})

    assert retry_after(answer("10")) == 10.0
    assert retry_after(answer("-3")) == 0.0
    assert retry_after(answer("nan")) is None
    assert retry_after(answer("soon")) is None
    date = "Wed, 21 Oct 2015 07:28:00 GMT"
    assert retry_after(answer(date), now=lambda: 1445412480.0 - 20) == pytest.approx(20.0)


@pytest.mark.parametrize(
    ("status", "body", "error_type"),
    [
        (400, "Unrecognised signature: method=POST op=frobnicate", BadRequest),
        (401, "Authorization Error: Invalid API key.", Unauthorized),
        (403, "This method is reserved for admin users.", Forbidden),
        (404, "No Machine matches the given query.", NotFound),
        (
            500,
            "Unconfigured power type. Please configure the power type and try again.",
            PermanentMaasError,
        ),
    ],
)
async def test_error_statuses_become_typed_errors_with_their_evidence(
    client, router, recorder, status: int, body: str, error_type
) -> None:
    """400/401/403/404/500 raise their type at once, carrying method, path, status, message."""
    router.post("machines/abc123/").respond(status, text=body)
    with pytest.raises(PermanentMaasError) as caught:
        await client.commission("abc123")
    error = caught.value
    assert type(error) is error_type
    assert (error.method, error.path, error.status) == (
        "POST",
        "machines/abc123/?op=commission",
        status,
    )
    assert error.message.startswith(body)
    assert recorder.sleeps == []


async def test_403_explains_admin_keys_and_locks(client, router) -> None:
    """A 403 message adds that commission needs an admin key and locked machines refuse."""
    router.post("machines/abc123/").respond(403, text="")
    with pytest.raises(Forbidden, match="admin key") as caught:
        await client.commission("abc123")
    assert "locked" in caught.value.message


async def test_410_says_api_1_0_is_gone(client, router) -> None:
    """A 410 is permanent and its message points at API 2.0."""
    router.get("machines/").respond(410, text="The 1.0 API is no longer available.")
    with pytest.raises(PermanentMaasError, match=r"use API version 2\.0") as caught:
        await client.list_machines()
    assert caught.value.status == 410


async def test_json_field_errors_are_flattened(client, router) -> None:
    """A JSON dict of field errors becomes one readable line."""
    router.post("machines/abc123/").respond(
        400,
        json={
            "__all__": ["Commission is not available because of the current state of the node."],
            "distro_series": ["'x' is not a valid distro_series.", "Second."],
        },
    )
    with pytest.raises(BadRequest) as caught:
        await client.commission("abc123")
    assert caught.value.message == (
        "Commission is not available because of the current state of the node.; "
        "distro_series: 'x' is not a valid distro_series., Second."
    )


async def test_long_and_hostile_messages_are_cut_and_cleaned(client, router) -> None:
    """A huge body with control characters becomes one printable line of ~500 chars."""
    router.get("machines/abc123/").respond(500, text="\x1b[31mboom\r\n" + "x" * 5000)
    with pytest.raises(PermanentMaasError) as caught:
        await client.get_machine("abc123")
    message = caught.value.message
    assert len(message) <= 500
    assert message.startswith("[31mboom x")
    assert all(ch.isprintable() for ch in message)


async def test_the_key_never_appears_in_an_error(client, router, key) -> None:
    """MAAS's 401 quotes the token key; the error and its str carry <redacted> instead."""
    router.get("users/").respond(
        401, text=f"Authorization Error: 'Invalid access token: {key.token}'"
    )
    with pytest.raises(Unauthorized) as caught:
        await client.whoami()
    for shown in (str(caught.value), caught.value.message, repr(caught.value)):
        assert key.token not in shown and key.secret not in shown
    assert "<redacted>" in caught.value.message


async def test_temporary_error_after_the_last_attempt_keeps_the_status(
    client, router, recorder
) -> None:
    """After max_attempts 503s the TemporaryMaasError carries 503 and MAAS's message."""
    router.get("machines/").respond(503, text="Unable to connect to any rack controller.")
    with pytest.raises(TemporaryMaasError) as caught:
        await client.list_machines()
    assert caught.value.status == 503
    assert "rack controller" in caught.value.message
    assert len(recorder.records) == 4


async def test_malformed_json_from_a_get_is_retried(client, router, machine) -> None:
    """A truncated 200 listing is retried (MAAS under load or a proxy cut it)."""
    route = router.get("machines/").mock(
        side_effect=[
            httpx.Response(200, content=b'[{"system_id": "a", "sta', headers=_json_type()),
            httpx.Response(200, json=[machine("a")]),
        ]
    )
    assert len(await client.list_machines()) == 1
    assert route.call_count == 2


async def test_malformed_json_everywhere_ends_as_temporary_error(client, router) -> None:
    """A GET answered with garbage every time ends in TemporaryMaasError, not a crash."""
    router.get("users/").respond(200, html="<html>proxy login</html>")
    with pytest.raises(TemporaryMaasError, match="not valid JSON"):
        await client.whoami()


async def test_garbled_answer_to_a_write_is_read_back_never_resent(client, router, machine) -> None:
    """When a deploy's 200 body is unreadable, the machine is re-read by GET; no second POST."""
    post = router.post("machines/abc123/").respond(200, content=b"{trunc", headers=_json_type())
    get = router.get("machines/abc123/").respond(json=machine("abc123", status=9))
    with capture_logs() as logs:
        result = await client.deploy("abc123")
    assert result.status == 9
    assert post.call_count == 1 and get.call_count == 1
    assert any(e["event"] == "maas.unreadable_answer" for e in logs)


async def test_a_retry_is_logged_with_its_evidence(client, router) -> None:
    """Each retry logs one warning with method, path, status, attempt and delay."""
    router.get("users/").mock(
        side_effect=[httpx.Response(502), httpx.Response(200, json={"username": "u"})]
    )
    with capture_logs() as logs:
        await client.whoami()
    (retry,) = [e for e in logs if e["event"] == "maas.retry"]
    assert retry["status"] == 502 and retry["attempt"] == 1 and retry["path"] == "users/?op=whoami"


async def test_429_from_a_proxy_is_retried(client, router) -> None:
    """A 429 from a proxy in front of MAAS is temporary, like 503."""
    route = router.get("users/").mock(
        side_effect=[httpx.Response(429), httpx.Response(200, json={"username": "u"})]
    )
    assert (await client.whoami()).username == "u"
    assert route.call_count == 2


def _json_type() -> dict[str, str]:
    return {"Content-Type": "application/json"}


async def test_no_log_line_ever_carries_the_key(client, router, key) -> None:
    """Across retries, rejections and skipped entries, no log event contains a key part."""
    router.get("users/").mock(
        side_effect=[
            httpx.Response(503, text=f"busy {key.token}"),
            httpx.Response(401, text=f"Invalid access token: {key.token} {key.secret}"),
        ]
    )
    router.get("machines/").respond(json=[{"system_id": "bad01", "status": "x"}])
    with capture_logs() as logs:
        with pytest.raises(Unauthorized):
            await client.whoami()
        await client.list_machines()
    text = repr(logs)
    assert logs and all(part not in text for part in (key.token, key.secret))
