"""The daemon's settings: one pydantic-settings model, fed by flags, environment and secret files.

`load_settings(argv, environ)` returns a frozen, validated `Settings`. Where each value comes
from is a chain of pydantic-settings sources (`daemon.setting_sources`, the same chain
`Settings.settings_customise_sources` uses over `os.environ`), highest precedence first::

    flags          -flag value / -flag=value (`daemon.flags`); -verbose means -log-level debug
    token file     the file -provision-token-file names (a flag: it beats PROVISION_TOKEN)
    environment    AUTOMATION_<NAME>, then <NAME> (each field's validation_alias); an empty
                   variable counts as unset, except LISTEN where "" turns the endpoint off
    token file     the file PROVISION_TOKEN_FILE names, when no token was given above
    credential     $CREDENTIALS_DIRECTORY/provision_token, only with an http(s) PROVISION_URL
                   (blank = none: the unit's SetCredential= default)
    credential     $CREDENTIALS_DIRECTORY/maas_api_key (systemd LoadCredential=)
    key file       the file -api-key-file / MAAS_API_KEY_FILE names, else /secrets/maas_api_key
                   when it exists
    state dir      $XDG_STATE_HOME/maasflow, else ~/.local/state/maasflow
    defaults       the model's own

Every source hands the model a `Given`: the text, where it came from (the flag as written,
the variable actually read, or "<option> file '<path>'") and the environment `~` and `$VAR`
expand in. Each field's validator checks its value once (`daemon.setting_values`) and starts
any message with where it came from; `load_settings` turns the first into one `ConfigError`
line, never quoting the key. Secret files are read, and the key's shape is checked, by
`maasflow.common.secrets`: the key from the `api_key` validator only. This module and its two
helpers read files but talk to nobody.

maas-flow's settings that maasflow honours differently start it anyway: `MAAS_API_VERSION=1.0`
runs as 2.0 and `MAAS_SHOW_API_KEY=true` never shows the key; `Settings.warnings` names
each, for the daemon to log once at start-up.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    AliasGenerator,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from maasflow.common.errors import ConfigError
from maasflow.common.postgres import PostgresUrl
from maasflow.common.secrets import mask_api_key
from maasflow.daemon import flags
from maasflow.daemon import setting_values as check
from maasflow.daemon.flags import BY_FIELD, DEFAULT_MAAS_URL
from maasflow.daemon.mappings import Mappings
from maasflow.daemon.selection import FilterSpec
from maasflow.daemon.setting_sources import Given, setting_sources
from maasflow.daemon.setting_values import Parse
from maasflow.daemon.targets import Targets

_NO_KEY = (
    "no MAAS API key: give -apiKey KEY, set MAAS_API_KEY, or put the key in a file named by "
    f"MAAS_API_KEY_FILE (default {flags.DEFAULT_KEY_FILE}) or in systemd's LoadCredential="
    f"{flags.CREDENTIAL_NAME}"
)


RELOADABLE = ("filter", "mappings", "targets")  # the settings SIGHUP reads again (`daemon.reload`)
_OLD_API = "MAAS 2.0+ has no 1.0 API (it answers 410 Gone); using 2.0"
_KEY_NOT_SHOWN = (
    "the API key is never shown in logs: whoever reads them could act on MAAS as its user; "
    "key_shape in the configuration line shows its form"
)


def _given(value: object, name: str | None) -> Given | None:
    """`value` as a Given: sources give one; code may give text (or a SecretStr) instead."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, str):
        return Given(value, name or "settings", os.environ)
    return value if isinstance(value, Given) else None


def checked(parse: Parse) -> BeforeValidator:
    """A field validator running `parse` on a Given; typed values set in code pass as they are."""

    def validate(value: object, info: ValidationInfo) -> object:
        given = _given(value, info.field_name)
        return value if given is None else _run(parse, given)

    return BeforeValidator(validate)


def _run(parse: Parse, given: Given) -> Any:
    try:
        return parse(given.text, given.origin, given.environ)
    except ConfigError as exc:  # pydantic collects ValueErrors; load_settings unwraps them
        raise ValueError(str(exc)) from None


def env_aliases(name: str) -> AliasChoices:
    """A field's validation aliases: its own name (for code), then its variables in the order
    they win (`AUTOMATION_<NAME>`, `<NAME>`), from the option table."""
    option = BY_FIELD.get(name)
    return AliasChoices(name, *(option.env_names if option else ()))


# --- the settings model ----------------------------------------------------------------------


class Settings(BaseSettings):
    """The validated configuration of one daemon run; `repr`/`str` never show the key."""

    model_config = SettingsConfigDict(
        alias_generator=AliasGenerator(validation_alias=env_aliases),
        case_sensitive=True,
        frozen=True,
        extra="forbid",
        arbitrary_types_allowed=True,
    )

    maas_url: Annotated[str, checked(check.maas_url)] = DEFAULT_MAAS_URL
    api_key: Annotated[SecretStr, checked(check.api_key)]
    api_key_origin: str = "argument"
    api_key_path: Path | None = None  # the file the key was read from, read again after a 401
    api_key_file: Annotated[Path, checked(check.path)] = Path(flags.DEFAULT_KEY_FILE)
    api_version: Annotated[str, checked(check.api_version)] = "2.0"
    api_version_asked: str = ""  # "<where>=1.0" when maas-flow's 1.0 was taken as 2.0
    show_key: Annotated[bool, checked(check.boolean)] = False
    period: Annotated[float, checked(check.positive_duration)] = 15.0
    events: Annotated[bool, checked(check.on_off)] = True
    relist: Annotated[float, checked(check.positive_duration)] = 300.0
    filter: Annotated[FilterSpec, checked(check.filter_spec)] = FilterSpec.default()
    mappings: Annotated[Mappings, checked(check.mappings)] = Mappings.empty()
    targets: Annotated[Targets, checked(check.targets)] = Targets()
    provision_url: Annotated[str, checked(check.provision_url)] = ""
    provision_ttl: Annotated[float, checked(check.non_negative_duration)] = 3600.0  # 0: none
    provision_token_file: Annotated[Path | None, checked(check.path)] = None
    provision_token: SecretStr | None = None  # checked by _token_for_a_url, below
    preview: Annotated[bool, checked(check.boolean)] = False
    once: Annotated[bool, checked(check.boolean)] = False
    always_rename: Annotated[bool, checked(check.boolean)] = True
    provision_existing: Annotated[bool, checked(check.boolean)] = False
    commission_unknown_power: Annotated[bool, checked(check.boolean)] = False
    power_helper_script: Annotated[str, checked(check.optional_executable)] = ""
    power_helper_user: Annotated[str, checked(check.helper_user)] = ""
    power_helper_host: Annotated[str, checked(check.helper_host)] = ""
    log_level: Annotated[check.LogLevel, checked(check.log_level)] = "info"
    log_format: Annotated[check.LogFormat, checked(check.log_format)] = "text"
    verbose: Annotated[bool, checked(check.boolean)] = False
    distro: Annotated[str, checked(check.distro)] = ""
    concurrency: Annotated[int, checked(check.concurrency)] = 16
    retry_failed: Annotated[int, checked(check.retry_failed)] = 0
    quarantine_tag: Annotated[str, checked(check.quarantine_tag)] = "maasflow-quarantine"
    listen: Annotated[str, checked(check.listen)] = "127.0.0.1:9410"
    control_token_file: Annotated[Path | None, checked(check.path)] = None
    desire_token_file: Annotated[Path | None, checked(check.path)] = None
    state_dir: Annotated[Path, checked(check.state_dir)] = Path()  # StateDirectorySource sets it
    db: Annotated[Path | PostgresUrl, checked(check.database)] = Field(
        Path(), validate_default=True
    )  # see below
    db_password_file: Annotated[Path | None, checked(check.path)] = None
    leader_lease: Annotated[float, checked(check.positive_duration)] = 10.0
    grace: Annotated[float, checked(check.non_negative_duration)] = 30.0
    max_answer_bytes: Annotated[int, checked(check.answer_size)] = 256 * 1024 * 1024
    # Where the filter and the mappings were given (setting name -> its Given), so SIGHUP
    # can read an @file again (`daemon.reload`); derived, like api_key_origin.
    reload_from: dict[str, Given] = Field(default_factory=dict, repr=False)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Values set in code, then the daemon's chain without flags, over `os.environ`."""
        return (init_settings, *setting_sources(settings_cls, (), os.environ))

    @model_validator(mode="before")
    @classmethod
    def _key_origin(cls, data: Any) -> Any:
        key = data.get("api_key") if isinstance(data, dict) else None
        if not isinstance(key, Given):
            return data
        return {**data, "api_key_origin": key.where, "api_key_path": key.file}

    @model_validator(mode="before")
    @classmethod
    def _reload_from(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        given = {name: data.get(name) for name in RELOADABLE}
        found = {name: value for name, value in given.items() if isinstance(value, Given)}
        return {**data, "reload_from": found}

    @model_validator(mode="before")
    @classmethod
    def _api_version_asked(cls, data: Any) -> Any:
        given = _given(data.get("api_version"), "api_version") if isinstance(data, dict) else None
        if given is None or given.text.strip() not in check.MAAS_FLOW_API_VERSIONS:
            return data
        return {**data, "api_version_asked": f"{given.origin}={given.text.strip()}"}

    @field_validator("provision_token", mode="before")
    @classmethod
    def _token_for_a_url(cls, value: object, info: ValidationInfo) -> object:
        """A Bearer token, sent only to an http(s) PROVISION_URL (declared above it)."""
        given = _given(value, info.field_name)
        if given is None:
            return value
        if "://" not in info.data.get("provision_url", ""):
            raise ValueError(
                f"{given.origin}: a provisioning token is only sent to an http(s) "
                "PROVISION_URL; set PROVISION_URL to the service's URL or drop the token"
            )
        return _run(check.provision_token, given)

    @field_validator("db", mode="after")
    @classmethod
    def _db_in_state_dir(
        cls, value: Path | PostgresUrl, info: ValidationInfo
    ) -> Path | PostgresUrl:
        if value == Path() and "state_dir" in info.data:
            return Path(info.data["state_dir"]) / "maasflow.sqlite"
        return value

    @property
    def key_on_command_line(self) -> bool:
        """Whether the key came from -apiKey/-apikey, and so shows in process listings."""
        return self.api_key_origin in {f"-{name}" for name in BY_FIELD["api_key"].flags}

    @property
    def power_helper_args(self) -> tuple[str, ...]:
        """What the power helper gets before the MACs: maas-flow's USER HOST, or nothing.

        maas-flow always passed both (defaults cord and 127.0.0.1); maasflow passes them when
        either is set, the other taking maas-flow's default, and none when neither is, so a
        helper written for maasflow's `<script> MAC...` keeps working.
        """
        if not (self.power_helper_user or self.power_helper_host):
            return ()
        user = self.power_helper_user or flags.DEFAULT_HELPER_USER
        return user, self.power_helper_host or flags.DEFAULT_HELPER_HOST

    @property
    def warnings(self) -> tuple[tuple[str, str], ...]:
        """(setting, what maasflow does instead) for each maas-flow setting honoured differently."""
        found: list[tuple[str, str]] = []
        if self.api_version_asked:
            found.append((self.api_version_asked, _OLD_API))
        if self.show_key:
            found.append(("MAAS_SHOW_API_KEY=true", _KEY_NOT_SHOWN))
        return tuple(found)

    def describe(self) -> dict[str, Any]:
        """The effective configuration for one start-up log line; secrets masked."""
        shown = {name: _shown(getattr(self, name)) for name in type(self).model_fields}
        # Named so that the log's secret redaction (any key containing "api_key") keeps them:
        # the shape, origin and file of the key are safe and what an operator needs to see.
        del shown["api_key"], shown["api_key_origin"], shown["api_key_file"], shown["reload_from"]
        del shown["api_key_path"]
        shown["key_shape"] = mask_api_key(self.api_key.get_secret_value())
        shown["key_from"] = self.api_key_origin
        shown["key_file"] = str(self.api_key_file)
        shown["key_read_from"] = None if self.api_key_path is None else str(self.api_key_path)
        shown["maas_url"] = display_url(self.maas_url)
        shown["provision_url"] = display_url(self.provision_url)
        shown["mappings"] = f"{len(self.mappings)} MAC(s)"
        shown["targets"] = f"{len(self.targets.rules)} rule(s)"
        # "provision_token" is a secret-looking key the log redacts; "bearer" is not.
        del shown["provision_token"]
        shown["provision_bearer"] = "set" if self.provision_token is not None else "unset"
        return shown


def _shown(value: object) -> object:
    if isinstance(value, FilterSpec):
        return value.to_json()
    if isinstance(value, Path | PostgresUrl):
        return str(value)
    return value


def display_url(url: str) -> str:
    """A URL safe to log: any password in it and its query string replaced by "***"."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = f"{parts.username}:***@{netloc.rpartition('@')[2]}"
    return parts._replace(netloc=netloc, query="***" if parts.query else "").geturl()


def load_settings(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> Settings:
    """Resolve flags > environment > secret files > defaults into Settings, or a ConfigError.

    `-h`/`-help` prints the help text to stdout and raises SystemExit(0).
    """
    env = dict(os.environ if environ is None else environ)
    try:
        return Settings(_build_sources=(setting_sources(Settings, argv, env), {}))
    except ValidationError as exc:
        raise ConfigError(_first_problem(exc)) from None


def _first_problem(exc: ValidationError) -> str:
    """One line for the first error: our own message, else the field and pydantic's words."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "settings"
    if first["type"] == "missing":
        return _NO_KEY if where == "api_key" else f"{where}: missing"
    error = first.get("ctx", {}).get("error")
    return str(error) if isinstance(error, ValueError) else f"{where}: {first['msg']}"
