"""What every test shares: deterministic property tests, and logging as each test found it.

Hypothesis's default 200 ms deadline fails a healthy example on a loaded machine (a timing
goal belongs in bench/, never in a test), and a random seed per run would let CI find on one
run what it missed on the last: `derandomize` makes each property test the same examples
every run, so a failure reproduces and the suite never flakes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog
from hypothesis import settings

settings.register_profile("maasflow", deadline=None, derandomize=True, print_blob=True)
settings.load_profile("maasflow")

# A real PostgreSQL for the tests that need one (`postgres_server`, `postgres_database`).
pytest_plugins = ("tests.postgres_cluster",)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Each test leaves structlog's defaults and the root logger as it found them.

    A test that runs a program in-process configures logging for it (at `info`, say), and the
    tests run in whatever order pytest-xdist's workers take them: without this, a later test
    that captures `debug` events would pass or fail by which test its worker ran before it.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)
