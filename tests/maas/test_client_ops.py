"""Each client operation sends the right method, path, op and parameters, signed."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs

import httpx
import pytest
import respx

from maasflow.common.errors import ConfigError, MaasflowError, PermanentMaasError
from maasflow.daemon.maas.client import MaasClient, api_urls


def _form(request: httpx.Request) -> dict[str, list[str]]:
    return parse_qs(request.content.decode(), keep_blank_values=True)


def _query(request: httpx.Request) -> dict[str, list[str]]:
    return parse_qs(request.url.query.decode())


async def test_whoami_reads_the_user(client, router) -> None:
    """whoami GETs users/?op=whoami and returns the user."""
    route = router.get("users/").respond(json={"username": "maasflow", "is_superuser": True})
    user = await client.whoami()
    assert user.username == "maasflow" and user.is_superuser
    assert _query(route.calls.last.request) == {"op": ["whoami"]}


async def test_version_returns_the_json_object(client, router) -> None:
    """version GETs version/ and returns its JSON object."""
    router.get("version/").respond(json={"version": "3.6.1", "capabilities": ["x"]})
    assert (await client.version())["version"] == "3.6.1"


async def test_list_machines_is_one_get_with_repeated_filter_keys(client, router, machine) -> None:
    """Filters go in the query string, a list as repeated keys, in one GET machines/."""
    route = router.get("machines/").respond(json=[machine("a"), machine("b")])
    machines = await client.list_machines(zone="default", id=["a", "b"])
    assert [m.system_id for m in machines] == ["a", "b"]
    assert route.call_count == 1
    assert _query(route.calls.last.request) == {"zone": ["default"], "id": ["a", "b"]}


async def test_get_machine_reads_one_machine(client, router, machine) -> None:
    """get_machine GETs machines/<id>/."""
    router.get("machines/abc123/").respond(json=machine("abc123", status=6))
    assert (await client.get_machine("abc123")).status == 6


async def test_commission_posts_op_in_query_and_params_in_body(client, router, machine) -> None:
    """commission POSTs machines/<id>/?op=commission with its flags as a form body."""
    route = router.post("machines/abc123/").respond(json=machine("abc123", status=1))
    result = await client.commission("abc123", skip_networking=True, testing_scripts="none")
    request = route.calls.last.request
    assert result.status == 1
    assert _query(request) == {"op": ["commission"]}
    assert _form(request) == {"skip_networking": ["true"], "testing_scripts": ["none"]}
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"


async def test_allocate_names_exactly_one_machine_by_system_id(client, router, machine) -> None:
    """allocate POSTs machines/?op=allocate with system_id=, never name=."""
    route = router.post("machines/").respond(json=machine("abc123", status=10, owner="me"))
    result = await client.allocate("abc123")
    request = route.calls.last.request
    assert result.owner == "me"
    assert _query(request) == {"op": ["allocate"]}
    assert _form(request) == {"system_id": ["abc123"]}


async def test_deploy_sends_distro_and_base64_user_data_without_osystem(
    client, router, machine
) -> None:
    """deploy sends distro_series and base64 user_data; there is no osystem parameter."""
    route = router.post("machines/abc123/").respond(json=machine("abc123", status=9))
    script = b"#!/bin/sh\necho hi & exit 0\n"
    await client.deploy("abc123", distro_series="jammy", user_data=script)
    request = route.calls.last.request
    form = _form(request)
    assert _query(request) == {"op": ["deploy"]}
    assert form["distro_series"] == ["jammy"]
    assert base64.b64decode(form["user_data"][0]) == script
    assert "osystem" not in form


async def test_deploy_without_distro_lets_maas_choose(client, router, machine) -> None:
    """With no distro_series the form is empty, so MAAS uses its default series."""
    route = router.post("machines/abc123/").respond(json=machine("abc123", status=9))
    await client.deploy("abc123")
    assert route.calls.last.request.content == b""


async def test_power_off_defaults_to_soft_and_tolerates_a_null_answer(client, router) -> None:
    """power_off sends stop_mode=soft and accepts MAAS's null body."""
    route = router.post("machines/abc123/").respond(json=None)
    assert await client.power_off("abc123") is None
    request = route.calls.last.request
    assert _query(request) == {"op": ["power_off"]}
    assert _form(request) == {"stop_mode": ["soft"]}


async def test_power_off_refuses_an_unknown_stop_mode(client) -> None:
    """stop_mode is soft or hard; anything else is a programming error."""
    with pytest.raises(ValueError, match="stop_mode"):
        await client.power_off("abc123", "gentle")


async def test_power_on_posts_the_op(client, router, machine) -> None:
    """power_on POSTs machines/<id>/?op=power_on."""
    route = router.post("machines/abc123/").respond(json=machine("abc123"))
    await client.power_on("abc123")
    assert _query(route.calls.last.request) == {"op": ["power_on"]}


async def test_release_passes_its_params(client, router, machine) -> None:
    """release POSTs op=release with its parameters."""
    route = router.post("machines/abc123/").respond(json=machine("abc123", status=12))
    await client.release("abc123", comment="done", quick_erase=True)
    request = route.calls.last.request
    assert _query(request) == {"op": ["release"]}
    assert _form(request) == {"comment": ["done"], "quick_erase": ["true"]}


async def test_update_is_a_put_without_op(client, router, machine) -> None:
    """update PUTs machines/<id>/ with the fields as a form and no op."""
    route = router.put("machines/abc123/").respond(json=machine("abc123", hostname="new"))
    result = await client.update(
        "abc123", hostname="new", power_type="webhook", power_parameters_power_verify_ssl="n"
    )
    request = route.calls.last.request
    assert result.hostname == "new"
    assert _query(request) == {}
    assert _form(request) == {
        "hostname": ["new"],
        "power_type": ["webhook"],
        "power_parameters_power_verify_ssl": ["n"],
    }


async def test_every_request_is_signed_with_a_fresh_nonce(client, router, machine, key) -> None:
    """Each request carries a PLAINTEXT header with a nonce never used before."""
    router.get("machines/").respond(json=[])
    router.post("machines/abc123/").respond(json=machine("abc123"))
    await client.list_machines()
    await client.power_on("abc123")
    await client.list_machines()
    headers = [call.request.headers["authorization"] for call in router.calls]
    assert all(f'oauth_signature="%26{key.secret}"' in h for h in headers)
    nonces = {h.split('oauth_nonce="')[1].split('"')[0] for h in headers}
    assert len(nonces) == 3


async def test_read_only_client_refuses_every_write_before_sending(
    router, make_client, machine
) -> None:
    """A read-only client reads, but raises on any POST or PUT without sending it."""
    router.get("machines/").respond(json=[machine("abc123")])
    async with make_client(read_only=True) as maas:
        assert len(await maas.list_machines()) == 1
        for write in (
            maas.commission("abc123"),
            maas.allocate("abc123"),
            maas.deploy("abc123"),
            maas.power_off("abc123"),
            maas.power_on("abc123"),
            maas.release("abc123"),
            maas.update("abc123", hostname="x"),
        ):
            with pytest.raises(MaasflowError, match="read-only"):
                await write
    assert [call.request.method for call in router.calls] == ["GET"]


@pytest.mark.parametrize("bad_id", ["..", "../users", "a/b", "", "x?op=delete", "id\n"])
async def test_a_hostile_system_id_never_reaches_a_url(client, router, bad_id: str) -> None:
    """A system_id that is not a plain MAAS id is refused with a typed error, unsent."""
    with pytest.raises(PermanentMaasError, match="refusing system_id"):
        await client.deploy(bad_id)
    assert router.calls.call_count == 0


@pytest.mark.parametrize(
    "given",
    [
        "http://127.0.0.1:5240/MAAS",
        "http://127.0.0.1:5240/MAAS/",
        "http://127.0.0.1:5240/MAAS/api/2.0/",
        "http://127.0.0.1:5240/MAAS/api/2.0",
        " http://127.0.0.1:5240/MAAS ",
    ],
)
def test_base_url_forms_all_reach_the_same_api_root(given: str) -> None:
    """With or without a trailing slash or an /api/2.0/ suffix, the API root is the same."""
    assert api_urls(given) == ("http://127.0.0.1:5240/MAAS", "http://127.0.0.1:5240/MAAS/api/2.0/")


async def test_requests_go_under_the_api_root(router, make_client) -> None:
    """A base URL ending in /api/2.0/ does not double the suffix in requests."""
    route = router.get("machines/").respond(json=[])
    async with make_client(base_url="http://127.0.0.1:5240/MAAS/api/2.0/") as maas:
        await maas.list_machines()
    assert route.calls.last.request.url.path == "/MAAS/api/2.0/machines/"


@pytest.mark.parametrize(
    ("url", "version", "needle"),
    [
        ("http://127.0.0.1:5240/MAAS", "1.0", "410 Gone"),
        ("http://127.0.0.1:5240/MAAS/api/1.0/", "2.0", "410 Gone"),
        ("http://127.0.0.1:5240/MAAS", "3.0", "unknown"),
        ("ftp://127.0.0.1/MAAS", "2.0", "not an http"),
        ("127.0.0.1:5240/MAAS", "2.0", "not an http"),
        ("http://127.0.0.1:99999/MAAS", "2.0", "bad host or port"),
        ("http://127.0.0.1:5240/MAAS?x=1", "2.0", "without a query"),
    ],
)
def test_bad_url_or_version_is_a_one_line_config_error(
    key, url: str, version: str, needle: str
) -> None:
    """An unusable URL or API version raises ConfigError on one line saying what to use."""
    with pytest.raises(ConfigError) as caught:
        MaasClient(url, key.full, api_version=version)
    assert needle in str(caught.value)
    assert "\n" not in str(caught.value)


def test_url_with_credentials_is_refused_without_echoing_them(key) -> None:
    """A URL carrying user:password is refused and the password is not repeated."""
    with pytest.raises(ConfigError) as caught:
        MaasClient("http://admin:hunter2pw@127.0.0.1:5240/MAAS", key.full)
    assert "hunter2pw" not in str(caught.value)


def test_client_repr_shows_the_mask_not_the_key(key) -> None:
    """repr() of a client names the API root and the key's mask only."""
    maas = MaasClient("http://127.0.0.1:5240/MAAS", key.full)
    shown = repr(maas)
    assert "<18:18:32 chars>" in shown and maas.masked_key == "<18:18:32 chars>"
    assert key.secret not in shown and key.token not in shown and key.consumer not in shown


async def test_on_response_gets_one_record_per_request(client, router, recorder) -> None:
    """The metrics hook sees method, path, op, status, attempt and a duration."""
    router.get("users/").respond(json={"username": "u"})
    await client.whoami()
    (record,) = recorder.records
    assert (record.method, record.path, record.op, record.status, record.attempt) == (
        "GET",
        "users/",
        "whoami",
        200,
        1,
    )
    assert record.duration_s >= 0


async def test_a_failing_metrics_hook_does_not_break_calls(router, make_client) -> None:
    """An exception in on_response is logged, not raised into the MAAS call."""

    def broken(record: object) -> None:
        raise RuntimeError("metrics down")

    router.get("users/").respond(json={"username": "u"})
    async with make_client(on_response=broken) as maas:
        assert (await maas.whoami()).username == "u"


async def test_a_redirect_is_reported_not_followed(client, router) -> None:
    """A 3xx (say http→https) is not followed; the error says where MAAS points."""
    router.get("machines/").respond(301, headers={"Location": "https://127.0.0.1:5443/MAAS/"})
    with pytest.raises(PermanentMaasError, match=r"redirected to https://127\.0\.0\.1:5443"):
        await client.list_machines()
    assert router.calls.call_count == 1


def test_client_owns_one_http_client_reused_across_calls(key) -> None:
    """The client builds one httpx.AsyncClient and keeps it (connection reuse)."""
    maas = MaasClient("http://127.0.0.1:5240/MAAS", key.full)
    assert isinstance(maas._http, httpx.AsyncClient)
    assert maas._http.base_url == httpx.URL("http://127.0.0.1:5240/MAAS/api/2.0/")


@respx.mock(assert_all_called=False)
async def test_async_context_manager_closes_the_pool(key) -> None:
    """Leaving `async with` closes the underlying HTTP client."""
    async with MaasClient("http://127.0.0.1:5240/MAAS", key.full) as maas:
        pass
    assert maas._http.is_closed
