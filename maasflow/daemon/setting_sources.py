"""Where the daemon's settings come from: the pydantic-settings sources, in precedence order.

`setting_sources(settings_cls, argv, environ)` is the chain `settings.Settings` is built
from, highest precedence first (the table in `settings`' docstring): Go-style flags, a token
file a flag names, the environment (each field's validation aliases: `AUTOMATION_<NAME>`,
then `<NAME>`), a token file a variable names, systemd's credentials (the provisioning
token, used only with an http(s) PROVISION_URL; the API key), the API key file, the state
directory nobody named. Each source hands the model a `Given` (text, origin,
environment) and leaves checking to the model's validators; secret files are read here, by
`maasflow.common.secrets`' one rule. The sources read the environment mapping they are given,
never `os.environ` behind the caller's back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import AliasChoices
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource
from pydantic_settings.sources import PydanticBaseEnvSettingsSource

from maasflow.common.options import state_directory
from maasflow.common.secrets import (
    CREDENTIALS_VARIABLE,
    credential_path,
    file_origin,
    read_credential,
    read_secret_file,
)
from maasflow.daemon import flags
from maasflow.daemon import setting_values as check
from maasflow.daemon.flags import BY_FIELD


@dataclass(frozen=True)
class Given:
    """A value as a source found it: text, where from, the environment to expand it in."""

    text: str = field(repr=False)
    origin: str
    environ: Mapping[str, str] = field(repr=False, compare=False)
    file: Path | None = None

    @property
    def where(self) -> str:
        """The file it was read from, else the flag or variable."""
        return str(self.file) if self.file is not None else self.origin


class FlagSource(PydanticBaseSettingsSource):
    """The command line's Go-style flags: the highest-precedence source."""

    def __init__(
        self, settings_cls: type[BaseSettings], argv: Sequence[str], environ: Mapping[str, str]
    ) -> None:
        super().__init__(settings_cls)
        self.flags = flags.parse_flags(argv)  # -h prints the help and exits here
        self.environ = environ

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """The flag's Given, or None when the command line does not set the field."""
        found = self.flags.get(field_name)
        if found is None and field_name == "log_level" and "verbose" in self.flags:
            found = ("-verbose", "debug") if self.flags["verbose"][1] == "true" else None
        value = None if found is None else Given(found[1], found[0], self.environ)
        return value, field_name, False

    def __call__(self) -> dict[str, Any]:
        fields = self.settings_cls.model_fields.items()
        values = {name: self.get_field_value(info, name)[0] for name, info in fields}
        return {name: value for name, value in values.items() if value is not None}


class EnvironmentSource(PydanticBaseEnvSettingsSource):
    """Each field's environment names (its validation aliases), in the order they win."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls, case_sensitive=True)
        self.environ = environ

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """The first variable set (an empty one counts as unset unless "" is a value)."""
        aliases = field.validation_alias
        choices = aliases.choices if isinstance(aliases, AliasChoices) else []
        names = [name for name in choices if isinstance(name, str) and name != field_name]
        keep_empty = field_name in BY_FIELD and BY_FIELD[field_name].empty_is_value
        for name in names:
            value = self.environ.get(name)
            if value is not None and (value or keep_empty):
                return Given(value, name, self.environ), field_name, False
        return None, field_name, False

    def prepare_field_value(
        self, field_name: str, field: FieldInfo, value: Any, value_is_complex: bool
    ) -> Any:
        """The Given as found: the model's validators parse it (no JSON decoding here)."""
        return value


Locate = Callable[[Mapping[str, Any], Mapping[str, str]], tuple[Path, str] | None]


class _OneSecretSource(PydanticBaseSettingsSource):
    """A source that knows one secret setting and reads it in `__call__`."""

    def __init__(
        self, settings_cls: type[BaseSettings], environ: Mapping[str, str], secret: str, what: str
    ) -> None:
        super().__init__(settings_cls)
        self.environ, self.secret, self.what = environ, secret, what

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """Unused: `__call__` reads the one secret this source knows."""
        return None, field_name, False


class SecretFileSource(_OneSecretSource):
    """A secret read from a file (`maasflow.common.secrets`' rule) when none is given above."""

    def __init__(
        self,
        settings_cls: type[BaseSettings],
        environ: Mapping[str, str],
        secret: str,
        what: str,
        locate: Locate,
    ) -> None:
        super().__init__(settings_cls, environ, secret, what)
        self.locate = locate

    def __call__(self) -> dict[str, Any]:
        if self.secret in self.current_state:
            return {}
        found = self.locate(self.current_state, self.environ)
        if found is None:
            return {}
        path, origin = found
        text = read_secret_file(path, origin, self.what)
        return {self.secret: Given(text, file_origin(origin, path), self.environ, file=path)}


class CredentialSource(_OneSecretSource):
    """An optional secret from $CREDENTIALS_DIRECTORY (blank = none) when none is given above
    and `wanted` says the settings found so far have a use for it."""

    def __init__(
        self,
        settings_cls: type[BaseSettings],
        environ: Mapping[str, str],
        secret: str,
        what: str,
        wanted: Callable[[Mapping[str, Any]], bool],
    ) -> None:
        super().__init__(settings_cls, environ, secret, what)
        self.wanted = wanted

    def __call__(self) -> dict[str, Any]:
        if self.secret in self.current_state or not self.wanted(self.current_state):
            return {}
        text = read_credential(self.secret, self.what, self.environ)
        path = credential_path(self.secret, self.environ)
        if text is None or path is None:
            return {}
        origin = file_origin(CREDENTIALS_VARIABLE, path)
        return {self.secret: Given(text, origin, self.environ, file=path)}


def _provisions_over_http(state: Mapping[str, Any]) -> bool:
    """Whether the PROVISION_URL given so far is an http(s) URL (a token goes only there)."""
    url = state.get("provision_url")
    text = url.text if isinstance(url, Given) else str(url or "")
    return "://" in text


def _named_file(name: str) -> Locate:
    """The file the setting `name` names, wherever (flag, variable, code) it was given."""

    def locate(state: Mapping[str, Any], environ: Mapping[str, str]) -> tuple[Path, str] | None:
        named = state.get(name)
        if isinstance(named, Given):
            return check.path(named.text, named.origin, named.environ), named.origin
        return None if named is None else (Path(str(named)), name)

    return locate


def _credential(state: Mapping[str, Any], environ: Mapping[str, str]) -> tuple[Path, str] | None:
    directory = environ.get("CREDENTIALS_DIRECTORY")
    file = Path(directory) / flags.CREDENTIAL_NAME if directory else None
    return (file, "CREDENTIALS_DIRECTORY") if file is not None and file.is_file() else None


def _key_file(state: Mapping[str, Any], environ: Mapping[str, str]) -> tuple[Path, str] | None:
    named = _named_file("api_key_file")(state, environ)
    default = Path(flags.DEFAULT_KEY_FILE)
    return named or ((default, "MAAS_API_KEY_FILE") if default.exists() else None)


class StateDirectorySource(PydanticBaseSettingsSource):
    """The state directory nobody named: `maasflow.common.options.state_directory`."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self.environ = environ

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """The resolved directory for `state_dir`; nothing for other fields."""
        value = state_directory(self.environ) if field_name == "state_dir" else None
        return value, field_name, False

    def __call__(self) -> dict[str, Any]:
        return {"state_dir": state_directory(self.environ)}


def setting_sources(
    settings_cls: type[BaseSettings], argv: Sequence[str], environ: Mapping[str, str]
) -> tuple[PydanticBaseSettingsSource, ...]:
    """The sources, highest precedence first (the table in the module docstring)."""
    token, key = "provisioning token", "MAAS API key"
    token_file = _named_file("provision_token_file")
    return (
        FlagSource(settings_cls, argv, environ),
        SecretFileSource(settings_cls, environ, "provision_token", token, token_file),
        EnvironmentSource(settings_cls, environ),
        SecretFileSource(settings_cls, environ, "provision_token", token, token_file),
        CredentialSource(settings_cls, environ, "provision_token", token, _provisions_over_http),
        SecretFileSource(settings_cls, environ, "api_key", key, _credential),
        SecretFileSource(settings_cls, environ, "api_key", key, _key_file),
        StateDirectorySource(settings_cls, environ),
    )
