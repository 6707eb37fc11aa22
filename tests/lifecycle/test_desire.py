"""A desired state is parsed once, field by field, and every refusal names its field."""

from __future__ import annotations

import base64

import pytest

from maasflow.common.errors import ConfigError
from maasflow.daemon.desire import Desire, Erase, Power
from maasflow.daemon.lifecycle import Target


def test_an_empty_desire_is_the_default_deployed_and_on() -> None:
    """No fields means maasflow's default: Deployed, powered on, nothing to send with deploy."""
    desire = Desire.parse({}, "rule 1")
    assert (desire.target, desire.power, desire.deploy_form()) == (Target.DEPLOYED, Power.ON, {})


def test_targets_are_read_in_maas_capitals_or_lower_case() -> None:
    """`Ready` and `ready` name the same target."""
    assert Desire.parse({"target": "Ready"}, "r").target is Target.READY
    assert Desire.parse({"target": "ignore"}, "r").target is Target.IGNORE


def test_deploy_parameters_are_sent_as_maas_deploy_op_takes_them() -> None:
    """Booleans become true/false, user data is base64-encoded, unset fields are not sent."""
    desire = Desire.parse(
        {"distro_series": "centos/centos70", "install_kvm": False, "user_data": "#cloud-config\n"},
        "rule 1",
    )
    form = desire.deploy_form()
    assert form == {
        "distro_series": "centos/centos70",
        "install_kvm": "false",
        "user_data": base64.b64encode(b"#cloud-config\n").decode(),
    }


def test_release_flags_only_send_what_is_set() -> None:
    """A quick erase sends quick_erase alone."""
    desire = Desire.parse({"target": "Ready", "release": {"quick_erase": True}}, "r")
    assert desire.release == Erase(quick_erase=True)
    assert desire.release.form() == {"quick_erase": "true"}


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({"target": "Deploy"}, "rule 3: target: 'Deploy' is not one of Deployed"),
        ({"colour": "red"}, "rule 3: unknown field 'colour'"),
        ({"power": 1}, "rule 3: power: 1 is not one of on, off"),
        ({"install_kvm": "yes"}, "rule 3: install_kvm: 'yes' is not true or false"),
        ({"distro_series": "jammy; rm -rf /"}, "rule 3: distro_series:"),
        ({"release": {"erase": True}}, "rule 3: release: only a Ready target"),
        ({"target": "Ready", "release": {"wipe": True}}, "rule 3: release: unknown field 'wipe'"),
        ({"target": "Allocated", "power": "off"}, "rule 3: power: only a Deployed target"),
        ({"install_kvm": True, "ephemeral_deploy": True}, "rule 3: install_kvm: MAAS refuses"),
        ({"provision": {"role": "db"}}, "rule 3: provision: give exactly one of script or url"),
        ({"provision": {"url": "ftp://x"}}, "rule 3: provision.url:"),
    ],
)
def test_a_bad_field_is_refused_with_its_rule_and_name(raw: dict[str, object], named: str) -> None:
    """Each refusal is one line that starts with the label and the field."""
    with pytest.raises(ConfigError) as error:
        Desire.parse(raw, "rule 3")
    assert str(error.value).startswith(named)
    assert "\n" not in str(error.value)


def test_a_desire_round_trips_through_json() -> None:
    """`to_json` gives back exactly what `parse` reads, defaults left out."""
    raw = {
        "distro_series": "jammy",
        "power": "off",
        "redeploy": True,
        "provision": {"url": "http://127.0.0.1:4243/provision/", "role": "db"},
    }
    desire = Desire.parse(raw, "r")
    assert desire.to_json() == raw
    assert Desire.parse(desire.to_json(), "r") == desire
