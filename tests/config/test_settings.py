"""Settings resolution: precedence, environment names, durations, key sources and masking."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from maasflow.common.errors import ConfigError
from maasflow.common.postgres import PostgresUrl
from maasflow.daemon.flags import OPTIONS, render_reference_markdown, settings_reference
from maasflow.daemon.provisioning import HttpProvisioner, ScriptProvisioner, provisioner_for
from maasflow.daemon.settings import Settings, display_url, load_settings
from maasflow.daemon.telemetry import parse_listen

KEY = "aaaaaaaaaaaaaaaaaa:bbbbbbbbbbbbbbbbbb:cccccccccccccccccccccccccccccccc"
OTHER_KEY = "xxxx:yyyy:zzzzzzzz"


def test_defaults(env: dict[str, str]) -> None:
    """With only a key, every setting takes its documented default."""
    s = load_settings([], env)
    assert s.maas_url == "http://localhost:5240/MAAS"
    assert (s.api_version, s.period, s.provision_ttl, s.grace) == ("2.0", 15.0, 3600.0, 30.0)
    assert s.filter.to_json() == {"zones": {"include": ["^default$"]}}
    assert len(s.mappings) == 0
    assert (s.preview, s.once, s.always_rename) == (False, False, True)
    assert (s.log_level, s.log_format, s.distro, s.provision_url) == ("info", "text", "", "")
    assert (s.concurrency, s.listen, parse_listen(s.listen)) == (
        16,
        "127.0.0.1:9410",
        ("127.0.0.1", 9410),
    )
    assert s.state_dir == Path(env["HOME"]) / ".local/state/maasflow"
    assert s.db == s.state_dir / "maasflow.sqlite"


def test_flag_beats_environment_beats_default(env: dict[str, str]) -> None:
    """A flag wins over its environment variable, which wins over the default."""
    env["MAAS_QUERY_INTERVAL"] = "30s"
    assert load_settings([], env).period == 30.0
    assert load_settings(["-period", "1m"], env).period == 60.0
    del env["MAAS_QUERY_INTERVAL"]
    assert load_settings([], env).period == 15.0


def test_automation_prefix_is_read_and_wins(env: dict[str, str]) -> None:
    """AUTOMATION_<NAME> is read like <NAME> and wins when both are set (envconfig's rule)."""
    env["AUTOMATION_MAAS_URL"] = "http://prefixed.test/MAAS"
    assert load_settings([], env).maas_url == "http://prefixed.test/MAAS"
    env["MAAS_URL"] = "http://bare.test/MAAS"
    assert load_settings([], env).maas_url == "http://prefixed.test/MAAS"
    assert load_settings(["-maas", "http://flag.test/MAAS"], env).maas_url.startswith("http://flag")


@pytest.mark.parametrize(
    ("variable", "value", "field", "expected"),
    [
        ("MAAS_URL", "https://maas.test/MAAS", "maas_url", "https://maas.test/MAAS"),
        ("MAAS_API_VERSION", "2.0", "api_version", "2.0"),
        ("MAAS_QUERY_INTERVAL", "500ms", "period", 0.5),
        ("PROVISION_TTL", "2h45m", "provision_ttl", 9900.0),
        ("PREVIEW_ONLY", "YES", "preview", True),
        ("ALWAYS_RENAME", "False", "always_rename", False),
        ("LOG_LEVEL", "WARN", "log_level", "warning"),
        ("LOG_FORMAT", "json", "log_format", "json"),
        ("DISTRO_SERIES", "jammy", "distro", "jammy"),
        ("CONCURRENCY", "4", "concurrency", 4),
        ("LISTEN", "[::1]:9999", "listen", "[::1]:9999"),
        ("LISTEN", "", "listen", ""),
        ("SHUTDOWN_GRACE", "0", "grace", 0.0),
        ("PROVISION_URL", "https://prov.test/provision/", "provision_url",
         "https://prov.test/provision/"),
        ("MAASFLOW_DB", "/var/lib/x.sqlite", "db", Path("/var/lib/x.sqlite")),
    ],
)  # fmt: skip
def test_environment_names(
    variable: str, value: str, field: str, expected: object, env: dict[str, str]
) -> None:
    """Each maas-flow compatible variable sets its field."""
    env[variable] = value
    assert getattr(load_settings([], env), field) == expected


def test_empty_variable_counts_as_unset(env: dict[str, str]) -> None:
    """An empty variable (docker-compose's `FOO=${FOO}`) leaves the default in place."""
    env.update(MAAS_QUERY_INTERVAL="", MAAS_URL="", HOST_FILTER_SPEC="")
    s = load_settings([], env)
    assert (s.period, s.maas_url) == (15.0, "http://localhost:5240/MAAS")
    assert s.filter.to_json() == {"zones": {"include": ["^default$"]}}


def test_empty_listen_turns_the_endpoint_off(env: dict[str, str]) -> None:
    """`-listen ""` means no health endpoint, unlike other empty values."""
    assert load_settings(["-listen", ""], env).listen == ""  # daemon.cli serves nothing then


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MAAS_URL", "ftp://maas.test/MAAS"),
        ("MAAS_URL", "localhost:5240"),
        ("MAAS_URL", "http://maas.test:99999/MAAS"),
        ("MAAS_API_VERSION", "3.0"),
        ("MAAS_QUERY_INTERVAL", "15x"),
        ("MAAS_QUERY_INTERVAL", "0s"),
        ("MAAS_QUERY_INTERVAL", "-5s"),
        ("MAAS_QUERY_INTERVAL", "1e3s"),
        ("MAAS_QUERY_INTERVAL", "9999999999h"),
        ("PROVISION_TTL", "soon"),
        ("PREVIEW_ONLY", "maybe"),
        ("ALWAYS_RENAME", "2"),
        ("LOG_LEVEL", "loud"),
        ("LOG_FORMAT", "xml"),
        ("DISTRO_SERIES", "jammy; rm -rf /"),
        ("CONCURRENCY", "0"),
        ("CONCURRENCY", "many"),
        ("CONCURRENCY", "100000"),
        ("LISTEN", "9410"),
        ("LISTEN", ":9410"),
        ("LISTEN", "[::1]"),
        ("LISTEN", "[zz::1]:80"),
        ("LISTEN", "host:65536"),
        ("SHUTDOWN_GRACE", "-1s"),
        ("PROVISION_URL", "file:///bin/true"),
        ("PROVISION_URL", "/no/such/script"),
        ("POWER_HELPER_SCRIPT", "/no/such/helper"),
        ("HOST_FILTER_SPEC", "{bad"),
        ("MAC_TO_NAME_MAPPINGS", "[]"),
        ("MAASFLOW_DB", "$NOT_SET_ANYWHERE/db"),
    ],
)
def test_bad_environment_value_names_the_variable(
    variable: str, value: str, env: dict[str, str]
) -> None:
    """A bad value is one ConfigError line that starts with the variable's name."""
    env[variable] = value
    with pytest.raises(ConfigError) as info:
        load_settings([], env)
    message = str(info.value)
    assert message.startswith(variable)
    assert "\n" not in message


def test_bad_prefixed_variable_is_named_with_its_prefix(env: dict[str, str]) -> None:
    """The error names the variable actually read, AUTOMATION_ prefix included."""
    env["AUTOMATION_CONCURRENCY"] = "0"
    with pytest.raises(ConfigError, match=r"^AUTOMATION_CONCURRENCY: "):
        load_settings([], env)


def test_bad_flag_value_names_the_flag(env: dict[str, str]) -> None:
    """A bad flag value is reported under the flag as written."""
    with pytest.raises(ConfigError, match=r"^-period: 'often' is not a duration"):
        load_settings(["-period=often"], env)


def test_events_is_on_by_default_and_takes_on_or_off(env: dict[str, str]) -> None:
    """Following MAAS's event log is on unless `-events off` (or MAAS_EVENTS=off) says not;
    full listings come every 5 minutes unless `-relist` says otherwise."""
    assert load_settings([], env).events is True
    assert load_settings(["-events", "off"], env).events is False
    assert load_settings(["-events=on", "-relist", "90s"], env).relist == 90.0
    assert load_settings([], env | {"MAAS_EVENTS": "off"}).events is False
    assert load_settings([], env).relist == 300.0


def test_an_events_value_other_than_on_or_off_is_one_line_naming_the_flag(
    env: dict[str, str],
) -> None:
    """`-events sometimes` is refused in one line that names the flag and the fix."""
    with pytest.raises(ConfigError) as info:
        load_settings(["-events", "sometimes"], env)
    assert str(info.value) == "-events: 'sometimes' is neither on nor off; use on or off"


def test_api_version_other_than_maas_flows_one_is_refused_with_the_reason(
    env: dict[str, str],
) -> None:
    """-apiVersion 1.5 (no MAAS ever had it) explains that MAAS 2.0+ answers 410 to 1.x."""
    with pytest.raises(ConfigError) as info:
        load_settings(["-apiVersion", "1.5"], env)
    assert str(info.value) == "-apiVersion: MAAS 2.0+ answers 410 Gone to the 1.x API; use 2.0"


# --- the API key -------------------------------------------------------------------------


def test_key_from_environment(env: dict[str, str]) -> None:
    """MAAS_API_KEY gives the key, whitespace stripped."""
    env["MAAS_API_KEY"] = f"  {KEY}\n"
    s = load_settings([], env)
    assert s.api_key.get_secret_value() == KEY
    assert s.api_key_origin == "MAAS_API_KEY"


def test_key_flag_beats_environment(env: dict[str, str]) -> None:
    """-apiKey wins over MAAS_API_KEY."""
    assert load_settings(["-apiKey", OTHER_KEY], env).api_key.get_secret_value() == OTHER_KEY


def test_key_from_key_file(env: dict[str, str], tmp_path: Path) -> None:
    """With no flag or variable, the file named by MAAS_API_KEY_FILE holds the key."""
    del env["MAAS_API_KEY"]
    (tmp_path / "key").write_text(KEY + "\n")
    env["MAAS_API_KEY_FILE"] = str(tmp_path / "key")
    s = load_settings([], env)
    assert s.api_key.get_secret_value() == KEY
    assert s.api_key_origin == str(tmp_path / "key")


def test_key_from_default_key_file(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default key file (/secrets/maas_api_key) is read when it exists."""
    del env["MAAS_API_KEY"]
    (tmp_path / "default-key").write_text(KEY)
    monkeypatch.setattr("maasflow.daemon.flags.DEFAULT_KEY_FILE", str(tmp_path / "default-key"))
    assert load_settings([], env).api_key.get_secret_value() == KEY


def test_credentials_directory_beats_key_file(env: dict[str, str], tmp_path: Path) -> None:
    """systemd's $CREDENTIALS_DIRECTORY/maas_api_key is read before MAAS_API_KEY_FILE."""
    del env["MAAS_API_KEY"]
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "maas_api_key").write_text(OTHER_KEY)
    (tmp_path / "key").write_text(KEY)
    env.update(CREDENTIALS_DIRECTORY=str(creds), MAAS_API_KEY_FILE=str(tmp_path / "key"))
    assert load_settings([], env).api_key.get_secret_value() == OTHER_KEY
    env["MAAS_API_KEY"] = KEY
    assert load_settings([], env).api_key.get_secret_value() == KEY


def test_empty_credentials_directory_falls_through(env: dict[str, str], tmp_path: Path) -> None:
    """A credentials directory without maas_api_key is skipped, not an error."""
    env["CREDENTIALS_DIRECTORY"] = str(tmp_path)
    del env["MAAS_API_KEY"]
    (tmp_path / "k").write_text(KEY)
    env["MAAS_API_KEY_FILE"] = str(tmp_path / "k")
    assert load_settings([], env).api_key.get_secret_value() == KEY


def test_missing_key_explains_every_way_to_give_it(env: dict[str, str]) -> None:
    """No key anywhere: one line naming the flag, the variable, the file and LoadCredential."""
    del env["MAAS_API_KEY"]
    with pytest.raises(ConfigError) as info:
        load_settings([], env)
    message = str(info.value)
    for way in ("-apiKey", "MAAS_API_KEY", "MAAS_API_KEY_FILE", "LoadCredential"):
        assert way in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "content", ["", "  \n", "onlyone", "a:b", "a::c", "a:b:c:d", "a:b c:d", "a:b:\x00c"]
)
def test_malformed_key_file(env: dict[str, str], tmp_path: Path, content: str) -> None:
    """An empty or malformed key file names the file and never echoes its content."""
    del env["MAAS_API_KEY"]
    (tmp_path / "key").write_text(content)
    env["MAAS_API_KEY_FILE"] = str(tmp_path / "key")
    with pytest.raises(ConfigError) as info:
        load_settings([], env)
    message = str(info.value)
    assert message.startswith("MAAS_API_KEY_FILE file ")
    assert str(tmp_path / "key") in message
    assert "\n" not in message
    if content.strip():
        assert content.strip() not in message


def test_unreadable_named_key_file(env: dict[str, str], tmp_path: Path) -> None:
    """A MAAS_API_KEY_FILE that does not exist is an error, not a silent fallback."""
    del env["MAAS_API_KEY"]
    env["MAAS_API_KEY_FILE"] = str(tmp_path / "absent")
    with pytest.raises(ConfigError, match=r"cannot read the MAAS API key: No such file"):
        load_settings([], env)


@pytest.mark.parametrize("bad", ["a:b", "a:b:c:d", ":b:c", "a:b:", "a:b:c d"])
def test_malformed_key_never_echoed(env: dict[str, str], bad: str) -> None:
    """A malformed key from a flag or variable is named by origin, its text never shown."""
    secret = bad.replace("a", "SECRETPART").replace("c", "TOKENSECRET")
    for argv, variable in (([f"-apiKey={secret}"], "-apiKey"), ([], "MAAS_API_KEY")):
        env["MAAS_API_KEY"] = secret
        with pytest.raises(ConfigError) as info:
            load_settings(argv, env)
        message = str(info.value)
        assert message.startswith(f"{variable}: MAAS API key <")
        assert "SECRETPART" not in message and "TOKENSECRET" not in message


def test_key_never_in_repr_str_or_describe(env: dict[str, str]) -> None:
    """repr, str and describe() show the key's shape at most."""
    s = load_settings([], env)
    secret = KEY.split(":")[2]
    for text in (repr(s), str(s), json.dumps(s.describe())):
        assert secret not in text
        assert KEY.split(":")[0] not in text
    assert s.describe()["key_shape"] == "<18:18:32 chars>"
    assert "api_key" not in s.describe()


def test_settings_refuses_a_malformed_key_when_built_directly() -> None:
    """Settings built in code (tests, tools) also refuse a key of the wrong shape."""
    with pytest.raises(ValidationError):
        Settings(api_key=SecretStr("nope"))
    assert Settings(api_key=SecretStr(KEY)).db.name == "maasflow.sqlite"


# --- paths, provisioning, describe ---------------------------------------------------------


def test_state_directory_from_systemd(env: dict[str, str], tmp_path: Path) -> None:
    """STATE_DIRECTORY sets the state dir (first of several), and the db follows it."""
    env["STATE_DIRECTORY"] = f"{tmp_path}/a:{tmp_path}/b"
    s = load_settings([], env)
    assert s.state_dir == tmp_path / "a"
    assert s.db == tmp_path / "a" / "maasflow.sqlite"
    assert load_settings(["-db", "/x/y.sqlite"], env).db == Path("/x/y.sqlite")


def test_a_postgresql_db_is_a_url_not_a_path(env: dict[str, str], tmp_path: Path) -> None:
    """-db postgresql://... (or MAASFLOW_DB) names a database as given, with its password file."""
    url = "postgresql://maasflow@db.example:5432/maasflow"
    settings = load_settings(["-db", url, "-db-password-file", str(tmp_path / "pw")], env)
    assert settings.db == PostgresUrl(url) and str(settings.db) == url
    assert settings.db_password_file == tmp_path / "pw"
    assert settings.describe()["db"] == url
    env["MAASFLOW_DB"] = "postgres://db.example/other"
    assert load_settings([], env).db == PostgresUrl("postgres://db.example/other")


def test_a_password_in_the_db_url_is_refused(env: dict[str, str]) -> None:
    """A -db URL with a password is bad input: one line naming -db and the file to use."""
    with pytest.raises(ConfigError) as caught:
        load_settings(["-db", "postgresql://maasflow:hunter2@db/maasflow"], env)
    assert str(caught.value).startswith("-db: the URL holds a password")
    assert "hunter2" not in str(caught.value)


def test_xdg_state_home(env: dict[str, str], tmp_path: Path) -> None:
    """$XDG_STATE_HOME/maasflow is the state dir when no STATE_DIRECTORY is set."""
    env["XDG_STATE_HOME"] = str(tmp_path / "xdg")
    assert load_settings([], env).state_dir == tmp_path / "xdg" / "maasflow"


def test_tilde_and_variables_expand_in_paths(env: dict[str, str]) -> None:
    """`~` and `$VAR` expand in path settings, from the given environment."""
    env["SPOT"] = "spot"
    s = load_settings(["-state-dir", "~/$SPOT"], env)
    assert s.state_dir == Path(env["HOME"]) / "spot"


def test_provision_script_must_be_executable(env: dict[str, str], tmp_path: Path) -> None:
    """A provisioning path must be an executable file; then it is kept as given."""
    script = tmp_path / "provision.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    with pytest.raises(ConfigError, match=r"^-provision-url: .* not an executable file"):
        load_settings(["-provision-url", str(script)], env)
    os.chmod(script, 0o700)
    s = load_settings(["-provisionURL", str(script)], env)
    assert s.provision_url == str(script)
    assert isinstance(provisioner_for(s.provision_url, s.provision_ttl), ScriptProvisioner)
    s = load_settings(["-provision-url", "http://127.0.0.1:4243/provision/"], env)
    assert isinstance(provisioner_for(s.provision_url, s.provision_ttl), HttpProvisioner)


def test_verbose_means_debug_unless_a_level_flag_is_given(env: dict[str, str]) -> None:
    """maas-flow's -verbose sets debug, over LOG_LEVEL but not over -log-level."""
    env["LOG_LEVEL"] = "error"
    assert load_settings(["-verbose"], env).log_level == "debug"
    assert load_settings(["-verbose", "-log-level", "warning"], env).log_level == "warning"


def test_describe_is_one_json_line_with_masked_urls(env: dict[str, str]) -> None:
    """describe() is JSON-serialisable and hides URL passwords and query strings."""
    env["PROVISION_URL"] = "https://u:hunter2@prov.test/p?token=abc"
    env["MAAS_URL"] = "http://admin:pw@maas.test/MAAS"
    shown = load_settings([], env).describe()
    text = json.dumps(shown)
    assert "hunter2" not in text and "abc" not in text and ":pw@" not in text
    assert shown["provision_url"] == "https://u:***@prov.test/p?***"
    assert shown["filter"] == {"zones": {"include": ["^default$"]}}
    renamed = {"api_key": "key_shape", "api_key_origin": "key_from", "api_key_file": "key_file"}
    renamed["api_key_path"] = "key_read_from"
    renamed["provision_token"] = "provision_bearer"
    derived = set(Settings.model_fields) - {"reload_from"}  # where SIGHUP reads them again
    assert set(shown) == {renamed.get(f, f) for f in derived}


def test_display_url_leaves_plain_urls_alone() -> None:
    """A URL with no secrets, or a script path, is shown unchanged."""
    assert display_url("http://maas.test:5240/MAAS") == "http://maas.test:5240/MAAS"
    assert display_url("/usr/local/bin/provision") == "/usr/local/bin/provision"


# --- the reference table -------------------------------------------------------------------


def test_reference_covers_every_field() -> None:
    """Every Settings field except the derived ones (key origin, key path, asked API, reload
    sources) has one reference row."""
    derived = {"api_key_origin", "api_key_path", "api_version_asked", "reload_from"}
    fields = set(Settings.model_fields) - derived
    assert sorted(o.field for o in OPTIONS) == sorted(fields)
    assert len(settings_reference()) == len(fields)


def test_reference_markdown_lists_every_flag_and_variable() -> None:
    """The Markdown table names every flag and every environment variable."""
    text = render_reference_markdown()
    for flags, env_names, _default, _help in settings_reference():
        for name in (*flags, *env_names):
            assert f"`{name}`" in text
    assert "AUTOMATION_" in text


def test_reference_env_names_are_maas_flow_compatible() -> None:
    """The maas-flow / opencord variable names are all present."""
    names = {e for _f, env_names, _d, _h in settings_reference() for e in env_names}
    required = {
        "MAAS_URL", "MAAS_API_KEY", "MAAS_API_KEY_FILE", "MAAS_API_VERSION",
        "MAAS_QUERY_INTERVAL", "HOST_FILTER_SPEC", "MAC_TO_NAME_MAPPINGS", "PROVISION_URL",
        "PROVISION_TTL", "PREVIEW_ONLY", "ALWAYS_RENAME", "POWER_HELPER_SCRIPT", "LOG_LEVEL",
        "LOG_FORMAT",
    }  # fmt: skip
    assert required <= names
