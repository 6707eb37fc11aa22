"""What every test shares: property-based tests that are deterministic and never timed.

Hypothesis's default 200 ms deadline fails a healthy example on a loaded machine (a timing
goal belongs in bench/, never in a test), and a random seed per run would let CI find on one
run what it missed on the last: `derandomize` makes each property test the same examples
every run, so a failure reproduces and the suite never flakes.
"""

from __future__ import annotations

from hypothesis import settings

settings.register_profile("maasflow", deadline=None, derandomize=True, print_blob=True)
settings.load_profile("maasflow")

# A real PostgreSQL for the tests that need one (`postgres_server`, `postgres_database`).
pytest_plugins = ("tests.postgres_cluster",)
