"""The scrub: children's environments lose every secret maasflow knows, and nothing else."""

from __future__ import annotations

import pytest

from maasflow.common.secrets import is_secret_name, scrubbed_environ

SECRETS = [
    "MAAS_API_KEY",
    "AUTOMATION_MAAS_API_KEY",
    "PROD_MAAS_API_KEY",
    "PROVISION_TOKEN",
    "AUTOMATION_PROVISION_TOKEN",
    "MAASFLOW_PROVISION_TOKEN",
    "MAASFLOW_POWER_TOKEN",
    "MAASFLOW_POWER_PASS",
]
KEPT = ["PATH", "HOME", "PROVISION_TOKEN_FILE", "MAAS_URL", "MAASFLOW_SYSTEM_ID", "TOKENISER"]


@pytest.mark.parametrize("name", SECRETS)
def test_every_known_secret_is_removed(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each secret variable of the daemon and of serve is gone from the scrubbed copy."""
    monkeypatch.setenv(name, "s3cret")
    assert is_secret_name(name)
    assert name not in scrubbed_environ()


def test_names_the_caller_hides_are_removed_and_the_rest_kept() -> None:
    """`hidden` names (a power config's password_env) go too; harmless variables stay."""
    environ = {name: "v" for name in [*KEPT, "DLI_OUTLET_SECRET", *SECRETS]}
    scrubbed = scrubbed_environ({"DLI_OUTLET_SECRET"}, environ)
    assert scrubbed == {name: "v" for name in KEPT}


def test_the_scrub_returns_a_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Changing the scrubbed environment leaves os.environ alone."""
    monkeypatch.setenv("KEEP_ME", "yes")
    scrubbed = scrubbed_environ()
    scrubbed["KEEP_ME"] = "changed"
    assert scrubbed_environ()["KEEP_ME"] == "yes"
