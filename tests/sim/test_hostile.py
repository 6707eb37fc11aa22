"""Hostile or broken requests get 4xx answers, never a 500 or a dead server."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maasflow.sim import Simulator, demo_machines
from maasflow.sim.auth import ApiKey, User
from maasflow.sim.events import EventLog
from maasflow.sim.http import ApiError, BadBody, parse_body, parse_query
from maasflow.sim.query import select
from maasflow.sim.world import World


async def test_garbage_multipart_is_400(admin: httpx.AsyncClient, sim: Simulator) -> None:
    """A multipart body without proper parts answers 400, not 500."""
    target = sim.find("node-01").system_id
    response = await admin.put(
        f"machines/{target}/",
        content=b"--xyz\r\nnot a header\r\n\r\nhello",
        headers={"Content-Type": "multipart/form-data"},
    )
    assert response.status_code == 400


async def test_invalid_utf8_in_query_is_handled(admin: httpx.AsyncClient) -> None:
    """Undecodable bytes in a filter value are replaced, then refused as an unknown zone."""
    response = await admin.get("machines/?zone=%ff%fe")
    assert response.status_code == 400
    assert "zone" in response.json()


@pytest.mark.parametrize(
    "authorization",
    [
        "OAuth",
        "OAuth ,,,,",
        'OAuth oauth_consumer_key="',
        "Basic Zm9vOmJhcg==",
        "OAuth " + "x=" * 500,
    ],
)
async def test_weird_authorization_headers_never_500(
    anonymous: httpx.AsyncClient, authorization: str
) -> None:
    """Malformed Authorization headers are anonymous or refused, never a server error."""
    response = await anonymous.get(
        "users/", params={"op": "whoami"}, headers={"Authorization": authorization}
    )
    assert response.status_code in (400, 401)


@pytest.mark.parametrize(
    "path", ["machines/..%2f..%2fetc/", "machines/%00/", "machines/a/b/", "events/x/"]
)
async def test_odd_paths_are_404(admin: httpx.AsyncClient, path: str) -> None:
    """Strange machine ids and paths are not found, not errors."""
    response = await admin.get(path)
    assert response.status_code == 404


async def test_huge_op_name_is_clipped(admin: httpx.AsyncClient, sim: Simulator) -> None:
    """An enormous op name is refused and not echoed in full."""
    target = sim.find("node-01").system_id
    response = await admin.post(f"machines/{target}/", params={"op": "x" * 5000})
    assert response.status_code == 400
    assert len(response.text) < 200


async def test_body_over_the_limit_is_413(admin: httpx.AsyncClient, sim: Simulator) -> None:
    """A body over 16 MiB is refused before parsing."""
    target = sim.find("node-01").system_id
    response = await admin.put(
        f"machines/{target}/",
        content=b"a" * (16 * 1024 * 1024 + 1),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 413


def test_multipart_parser_reads_repeated_fields() -> None:
    """Repeated multipart fields keep every value, in order."""
    body = (
        b'--b\r\nContent-Disposition: form-data; name="mac_addresses"\r\n\r\naa\r\n'
        b'--b\r\nContent-Disposition: form-data; name="mac_addresses"\r\n\r\nbb\r\n--b--\r\n'
    )
    assert parse_body("multipart/form-data; boundary=b", body) == {"mac_addresses": ["aa", "bb"]}


def test_multipart_part_without_name_is_skipped() -> None:
    """A part with no name is skipped, as Django's MultiPartParser skips it; named ones stay."""
    body = (
        b"--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n"
        b'--b\r\nContent-Disposition: form-data; name="comment"\r\n\r\nhi\r\n--b--\r\n'
    )
    assert parse_body("multipart/form-data; boundary=b", body) == {"comment": ["hi"]}


def test_multipart_body_with_one_headerless_part_is_empty() -> None:
    """python-libmaas's body for an op without parameters (one bare part) has no fields."""
    body = b"--===============1==\r\n\r\n--===============1==--"
    assert parse_body('multipart/form-data; boundary="===============1=="', body) == {}


async def test_op_without_parameters_from_libmaas_is_accepted(
    admin: httpx.AsyncClient, sim: Simulator
) -> None:
    """python-libmaas's commission (one nameless part) is a commission, not a 400."""
    target = sim.find("node-01").system_id
    response = await admin.post(
        f"machines/{target}/",
        params={"op": "commission"},
        content=b"--===============7==\r\n\r\n--===============7==--",
        headers={"Content-Type": 'multipart/form-data; boundary="===============7=="'},
    )
    assert response.status_code == 200
    assert sim.find("node-01").status_name == "Commissioning"


def test_multipart_garbage_is_still_bad_body() -> None:
    """A body that is no multipart message at all stays a BadBody (400)."""
    with pytest.raises(BadBody):
        parse_body("multipart/form-data; boundary=b", b"no boundary anywhere")


@given(st.binary(max_size=200))
def test_query_parser_never_raises(raw: bytes) -> None:
    """Any bytes at all parse into a multi-dict of strings."""
    params = parse_query(raw)
    assert all(isinstance(v, str) for values in params.values() for v in values)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "zone",
                    "tags",
                    "status",
                    "mac_address",
                    "cpu_count",
                    "id",
                    "op",
                    "limit",
                    "colour",
                ]
            ),
            st.text(max_size=12),
        ),
        max_size=4,
    )
)
def test_filters_never_crash(params: list[tuple[str, str]]) -> None:
    """Any combination of filter names and values answers 200 or 400 from the selector."""
    world = World(1, EventLog())
    for spec in demo_machines(1):
        world.add(spec)
    multi: dict[str, list[str]] = {}
    for name, value in params:
        multi.setdefault(name, []).append(value)
    admin = User("admin", True, ApiKey("c", "t", "s"))
    try:
        select(world, admin, multi)
    except ApiError as exc:
        assert exc.response.status == 400
