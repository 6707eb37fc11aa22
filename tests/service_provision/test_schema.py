"""schemathesis, driven by the service's own /openapi.json, finds no server error."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from maasflow.serve import ServiceConfig, ServiceThread

MAX_EXAMPLES = 30


@pytest.fixture(scope="module")
def live_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A service with a quick script on 127.0.0.1, for the whole module."""
    script = tmp_path_factory.mktemp("schema") / "ok.sh"
    script.write_text("#!/bin/sh\necho ok\n")
    script.chmod(0o755)
    with ServiceThread(ServiceConfig(script=script, workers=2)) as svc:
        yield svc.url


def test_openapi_documents_the_provisioning_api(live_url: str) -> None:
    """/openapi.json lists every provisioning route and the health route."""
    paths = httpx.get(f"{live_url}/openapi.json").json()["paths"]
    assert {"/provision/", "/provision/{job_id}", "/provision/{job_id}/log", "/healthz"} <= set(
        paths
    )
    assert set(paths["/provision/{job_id}"]) == {"get", "delete"}


def test_no_operation_answers_a_server_error(live_url: str) -> None:
    """Generated requests for every operation never get a 5xx, and answers match the schema.

    All of schemathesis' default checks run (no 5xx, documented status codes, content types
    and bodies, invalid data rejected) except "schema-valid data is accepted": a valid body
    may still be refused with 400, e.g. a `script` naming no script configured on this
    service, or an `ip` string that is not an address, which JSON Schema cannot say.
    """
    schema = schemathesis.openapi.from_url(f"{live_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 6
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            derandomize=True,  # the same cases every run: a failure is a finding, not luck
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=live_url, excluded_checks=[positive_data_acceptance])

        check()
