"""Where the real MAAS machine JSON lies: `../shared/maas-samples/` beside the repository root.

That folder is beside the checkout in CI and on developers' machines, never on a user's; tests
that read it skip, saying so, where it is absent. Found relative to the repository, never by an
absolute path.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO.parent / "shared" / "maas-samples"
ABSENT = f"the MAAS samples folder {SAMPLES} (../shared/maas-samples) is absent here"
