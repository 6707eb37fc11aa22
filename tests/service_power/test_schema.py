"""schemathesis against the power router's own OpenAPI: no 5xx, answers as documented."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.service_power.helpers import power_service, wol_config

MAX_EXAMPLES = 25


@pytest.fixture(scope="module")
def live_url() -> Iterator[str]:
    """The power router (open auth, one WoL machine) served from a thread for the module."""
    ready: list[str] = []
    stop = threading.Event()

    async def run() -> None:
        async with power_service(wol_config(9, broadcast="127.0.0.1")) as (base, _):
            ready.append(base)
            while not stop.is_set():
                await asyncio.sleep(0.01)

    thread = threading.Thread(target=asyncio.run, args=(run(),), daemon=True)
    thread.start()
    while not ready and thread.is_alive():
        stop.wait(0.01)
    yield ready[0]
    stop.set()
    thread.join(timeout=10)


def test_openapi_documents_the_power_routes(live_url: str) -> None:
    """The schema lists each power route once (the trailing-slash twins are hidden)."""
    schema = schemathesis.openapi.from_url(f"{live_url}/openapi.json")
    paths = set(schema.raw_schema["paths"])
    assert paths == {
        "/power/",
        "/power/acks",
        "/power/{machine}/on",
        "/power/{machine}/off",
        "/power/{machine}/ack",
        "/power/{machine}",
    }


def test_no_power_operation_answers_a_server_error(live_url: str) -> None:
    """Generated requests never get a 5xx, and status codes and bodies match the schema.

    "Schema-valid data is accepted" is left out: a valid machine string that names no
    configured machine is rightly a 400.
    """
    schema = schemathesis.openapi.from_url(f"{live_url}/openapi.json")
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # our own schema always parses

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            derandomize=True,  # the same cases every run: a failure is a finding, not luck
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            case.call_and_validate(base_url=live_url, excluded_checks=[positive_data_acceptance])

        check()
