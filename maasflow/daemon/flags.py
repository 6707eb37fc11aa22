"""The daemon's command line: the option table, maas-flow's Go-style flags, `-h`, the README table.

`OPTIONS` lists every setting once: its field in `settings.Settings`, its flags, its
environment names (each also read with the `AUTOMATION_` prefix, opencord maas-flow's
envconfig prefix, which wins over the bare name), the default as shown, and its help. The
settings model takes its environment names from here; `-h` and the README's configuration
table (`python -m maasflow.readme`) are rendered from here.

`parse_flags` reads Go-style flags as Go's `flag` package does: `-flag value`, `-flag=value`,
one or two dashes, the last of a repeated flag wins, bool flags bare (`-preview`) or with a
value (`-preview=false`; `-preview false` leaves a stray argument, refused with a hint), and
parsing stops at `--`. Bool values are checked here, as Go does, and handed on as "true" or
"false"; every other value is handed on as text for the settings model to check. Errors are
one-line `ConfigError`s that name the flag, never a value that could be a key. `-h` reached
while parsing prints `help_text()` and exits 0; `help_requested` tells the `maasflow` command
beforehand, so that it can print the help with its sub-commands listed first.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from maasflow.common.errors import ConfigError

ENV_PREFIX = "AUTOMATION_"
DEFAULT_MAAS_URL = "http://localhost:5240/MAAS"
DEFAULT_KEY_FILE = "/secrets/maas_api_key"
CREDENTIAL_NAME = "maas_api_key"  # systemd LoadCredential= name, under $CREDENTIALS_DIRECTORY
MAX_CONCURRENCY = 1024
DEFAULT_HELPER_USER, DEFAULT_HELPER_HOST = "cord", "127.0.0.1"  # maas-flow's defaults
_TRUE = frozenset({"true", "t", "1", "yes"})
_FALSE = frozenset({"false", "f", "0", "no"})
_HELP_FLAGS = ("h", "help")


@dataclass(frozen=True)
class Option:
    """One setting: its field, flag and environment names, shown default and help."""

    field: str
    flags: tuple[str, ...]
    env: tuple[str, ...]
    default: str
    help: str
    boolean: bool = False
    empty_is_value: bool = False  # an empty variable is a value ("" turns LISTEN off), not unset

    @property
    def env_names(self) -> tuple[str, ...]:
        """The variables read, in the order they win: `AUTOMATION_<NAME>`, then `<NAME>`."""
        return tuple(name for base in self.env for name in (ENV_PREFIX + base, base))


OPTIONS: tuple[Option, ...] = (
    Option("maas_url", ("maas",), ("MAAS_URL",), DEFAULT_MAAS_URL,
           "MAAS region URL, up to /MAAS"),
    Option("api_key", ("apiKey", "apikey"), ("MAAS_API_KEY",), "(none)",
           "MAAS API key consumer:token:secret (on the command line it shows in process "
           "listings until the daemon renames its process: prefer a key file)"),
    Option("api_key_file", ("api-key-file",), ("MAAS_API_KEY_FILE",), DEFAULT_KEY_FILE,
           "file holding the API key when neither -apiKey nor MAAS_API_KEY is given; "
           f"$CREDENTIALS_DIRECTORY/{CREDENTIAL_NAME} (systemd LoadCredential=) is tried first"),
    Option("api_version", ("apiVersion",), ("MAAS_API_VERSION",), "2.0",
           "MAAS API version: 2.0; maas-flow's 1.0 runs as 2.0 with a warning (MAAS 2.0+ "
           "has no 1.0 API)"),
    Option("show_key", (), ("MAAS_SHOW_API_KEY",), "false",
           "maas-flow's switch to log the key in clear; accepted, but the key is never "
           "shown (a warning says so): its shape is logged instead", boolean=True),
    Option("period", ("period",), ("MAAS_QUERY_INTERVAL",), "15s",
           "time from one pass's start to the next's (Go duration: 15s, 1m30s, 500ms)"),
    Option("events", ("events",), ("MAAS_EVENTS",), "on",
           "on: after a full listing, follow MAAS's event log about every second and re-read "
           "only the machines it names; off: a full listing every period"),
    Option("relist", ("relist",), ("MAAS_RELIST_INTERVAL",), "5m",
           "with -events on: time between full listings (Go duration), which catch what "
           "writes no event (tags, zones, deletions)"),
    Option("filter", ("filter",), ("HOST_FILTER_SPEC",), '{"zones":{"include":["^default$"]}}',
           "which machines to drive: filter JSON or @path ($VAR expanded); {} = all"),
    Option("mappings", ("mappings",), ("MAC_TO_NAME_MAPPINGS",), "{}",
           "MAC to hostname JSON or @path ($VAR expanded)"),
    Option("targets", ("targets",), ("MAASFLOW_TARGETS",), "(none: every machine Deployed)",
           "what each machine should be: a JSON list of rules or @path (first match wins; "
           "see the README's Targets)"),
    Option("provision_url", ("provision-url", "provisionURL"), ("PROVISION_URL",), "(none)",
           "after Deployed: run this script, or POST to this http(s) URL; none = Deployed "
           "is final"),
    Option("provision_ttl", ("provision-ttl",), ("PROVISION_TTL",), "1h",
           "how long provisioning may run before it fails (Go duration); 0 = no limit, "
           "as in maas-flow"),
    Option("provision_token_file", ("provision-token-file",), ("PROVISION_TOKEN_FILE",),
           "(none)", "file holding the Bearer token an http(s) PROVISION_URL requires "
           "(maasflow serve --provision-token-file); without it and PROVISION_TOKEN, "
           "$CREDENTIALS_DIRECTORY/provision_token when not blank"),
    Option("provision_token", (), ("PROVISION_TOKEN",), "(none)",
           "the Bearer token itself (environment only; a token file named by flag wins)"),
    Option("preview", ("preview",), ("PREVIEW_ONLY",), "false",
           "print what one pass would do, change nothing, exit", boolean=True),
    Option("once", ("once",), (), "false", "run one pass, then exit", boolean=True),
    Option("always_rename", ("always-rename",), ("ALWAYS_RENAME",), "true",
           "rename mapped machines at every stage (false: only while New)", boolean=True),
    Option("provision_existing", ("provision-existing",), ("PROVISION_EXISTING",), "false",
           "also provision (and rename) machines that were already Deployed when maasflow "
           "first saw them, as maas-flow did; false: such adopted machines are left as they "
           "run", boolean=True),
    Option("commission_unknown_power", ("commission-unknown-power",),
           ("COMMISSION_UNKNOWN_POWER",), "false",
           "commission a New machine whose power state MAAS cannot read (manual, WoL "
           "webhooks); MAAS then asks its power driver to power it on; false: wait",
           boolean=True),
    Option("power_helper_script", ("power-helper-script",), ("POWER_HELPER_SCRIPT",), "(none)",
           "script given a machine's MACs that prints its power parameters as JSON: run as "
           "SCRIPT MAC..., or as maas-flow did, SCRIPT USER HOST MAC..., when "
           "-power-helper-user or -power-helper-host is set"),
    Option("power_helper_user", ("power-helper-user",), ("POWER_HELPER_USER",),
           f"(none; {DEFAULT_HELPER_USER} when the host is set)",
           "first argument of the power helper (maas-flow: the user it logs in as)"),
    Option("power_helper_host", ("power-helper-host",), ("POWER_HELPER_HOST",),
           f"(none; {DEFAULT_HELPER_HOST} when the user is set)",
           "second argument of the power helper (maas-flow: the VirtualBox host)"),
    Option("log_level", ("log-level",), ("LOG_LEVEL",), "info",
           "debug, info, warning or error"),
    Option("log_format", ("log-format",), ("LOG_FORMAT",), "text",
           "text (logfmt: key=value) or json (one object per line)"),
    Option("verbose", ("verbose",), (), "false",
           "maas-flow's flag: same as -log-level debug", boolean=True),
    Option("distro", ("distro",), ("DISTRO_SERIES",), "(MAAS default)",
           "deploy distro_series, e.g. jammy; empty = MAAS's default"),
    Option("concurrency", ("concurrency",), ("CONCURRENCY",), "16",
           f"most actions running at once (1 to {MAX_CONCURRENCY})"),
    Option("retry_failed", ("retry-failed",), ("RETRY_FAILED",), "0",
           "retry a Failed commissioning (commission) or Failed deployment (release, deploy) "
           "machine up to N times, with backoff; then tag it (-quarantine-tag) and leave it "
           "alone; 0 = off"),
    Option("quarantine_tag", ("quarantine-tag",), ("QUARANTINE_TAG",), "maasflow-quarantine",
           "MAAS tag put on a machine whose retries ran out (created if missing); remove it "
           "in MAAS to give the machine a fresh budget"),
    Option("listen", ("listen",), ("LISTEN",), "127.0.0.1:9410",
           "health and metrics address host:port or [::1]:port; empty = off",
           empty_is_value=True),
    Option("control_token_file", ("control-token-file",), ("CONTROL_TOKEN_FILE",), "(none)",
           "file holding the Bearer token that maasflow pause, resume and retry send to "
           "-listen's /control routes; none = control off"),
    Option("desire_token_file", ("desire-token-file",), ("DESIRE_TOKEN_FILE",), "(none)",
           "file holding the Bearer token of -listen's /machines/<id>/desired routes "
           "(maasflow desire); opens those only; the control token opens them too"),
    Option("state_dir", ("state-dir",), ("STATE_DIRECTORY",), "~/.local/state/maasflow",
           "directory for state ($XDG_STATE_HOME/maasflow when that is set)"),
    Option("db", ("db",), ("MAASFLOW_DB",), "<state-dir>/maasflow.sqlite",
           "SQLite file of provisioning records, or postgresql://user@host/database "
           "(more than one host; no password in it)"),
    Option("db_password_file", ("db-password-file",), ("MAASFLOW_DB_PASSWORD_FILE",),
           "(none)", "file holding the PostgreSQL password; $CREDENTIALS_DIRECTORY/"
           "maasflow_db_password (systemd LoadCredential=) when unset; else ~/.pgpass"),
    Option("leader_lease", ("leader-lease",), ("MAASFLOW_LEADER_LEASE",), "10s",
           "with a postgresql:// -db: how long a silent leader keeps leading; a standby "
           "takes over within 1.25 leases of the leader's death"),
    Option("grace", ("grace",), ("SHUTDOWN_GRACE",), "30s",
           "on SIGTERM, how long running actions may take to finish"),
    Option("max_answer_bytes", ("max-answer-size",), ("MAAS_MAX_ANSWER_SIZE",), "256MiB",
           "largest MAAS answer read (bytes, KiB, MiB, GiB), checked while it streams; a "
           "machine is ~9 KB, so 10,000 list in ~87 MB"),
)  # fmt: skip
BY_FIELD = {option.field: option for option in OPTIONS}
_BY_FLAG = {name: option for option in OPTIONS for name in option.flags}

Flags = dict[str, tuple[str, str]]  # field -> (the flag as written, its raw value)


def parse_bool(text: str, origin: str) -> bool:
    """true/false/1/0/yes/no/t/f, case-insensitive; a ConfigError naming `origin` otherwise."""
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(f"{origin}: {text[:20]!r} is not a boolean; use true or false")


def parse_flags(argv: Sequence[str]) -> Flags:
    """The flags given, as field -> (flag as written, raw value); -h prints help and exits 0."""
    found = _read_flags(argv)
    if found is None:
        sys.stdout.write(help_text())
        raise SystemExit(0)
    return found


def help_requested(argv: Sequence[str]) -> bool:
    """Whether `parse_flags(argv)` would reach a help flag (before any error), as Go's does."""
    try:
        return _read_flags(argv) is None
    except ConfigError:
        return False


def _read_flags(argv: Sequence[str]) -> Flags | None:
    """The flags given, or None when a help flag is reached first."""
    found: Flags = {}
    args = iter(enumerate(argv, start=1))
    for position, arg in args:
        if arg == "--":
            rest = [a for _, a in args]
            if rest:
                raise ConfigError(f"unexpected argument {_shown_arg(rest[0])} after --")
            break
        name, value = _flag_name(arg, position)
        if name in _HELP_FLAGS:
            return None
        option = _option(name)
        if value is None:
            value = "true" if option.boolean else next(args, (0, None))[1]
        if value is None:
            raise ConfigError(f"flag -{name} needs a value, e.g. -{name}=VALUE")
        if option.boolean:
            value = str(parse_bool(value, f"-{name}")).lower()
        found[option.field] = (f"-{name}", value)
    return found


def _option(name: str) -> Option:
    option = _BY_FLAG.get(name)
    if option is None:
        raise ConfigError(f"unknown flag -{name[:40]}; run 'maasflow -h' for the flags")
    return option


def _shown_arg(arg: str) -> str:
    return repr(arg) if len(arg) <= 24 and ":" not in arg else "(long value not shown)"


def _flag_name(arg: str, position: int) -> tuple[str, str | None]:
    """Split `-name`, `--name`, `-name=value`; ConfigError for anything that is not a flag."""
    dashes = len(arg) - len(arg.lstrip("-"))
    if dashes not in (1, 2) or len(arg) == dashes or arg[dashes] == "=":
        hint = "maasflow takes flags only; bool flags take -flag=false, not -flag false"
        raise ConfigError(f"unexpected argument {position} {_shown_arg(arg)}; {hint}")
    name, sep, value = arg[dashes:].partition("=")
    return name, value if sep else None


# --- what the options are, for people ----------------------------------------------------


def settings_reference() -> list[tuple[tuple[str, ...], tuple[str, ...], str, str]]:
    """(flags, environment names, default, help) per setting, flags with their dash."""
    return [
        (tuple(f"-{f}" for f in o.flags), o.env, o.default, o.help) for o in OPTIONS
    ]  # fmt: skip


def render_reference_markdown() -> str:
    """The configuration table as Markdown, for the README."""
    lines = ["| Flag | Environment | Default | Meaning |", "| --- | --- | --- | --- |"]
    for flags, env, default, text in settings_reference():
        cells = [", ".join(f"`{f}`" for f in flags) or "—", ", ".join(f"`{e}`" for e in env) or "—"]
        cells += [f"`{default}`".replace("|", "\\|"), text.replace("|", "\\|")]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "Precedence: flag > environment > default. Every variable is also read with the "
        f"`{ENV_PREFIX}` prefix (e.g. `{ENV_PREFIX}MAAS_URL`), which wins over the bare name."
    )
    return "\n".join(lines) + "\n"


def help_text(commands: Mapping[str, str] | None = None) -> str:
    """Go-style usage text for `maasflow -h`; `commands` (name -> what it does) listed first."""
    lines = [
        "usage: maasflow [flags]            (maasflow <sub-command> -h for the tools)",
        "",
        "Drive MAAS machines from New to Deployed, then provision them. Flags take one or two",
        "dashes, -flag value or -flag=value; bool flags are bare or -flag=false.",
        "-version prints maasflow's version.",
        "",
    ]
    if commands:
        lines += [*_command_lines(commands), "", "flags:"]
    for option in OPTIONS:
        names = ", ".join(f"-{f}" for f in option.flags) + ("" if option.boolean else " value")
        if not option.flags:
            names = f"(no flag) {', '.join(option.env)}"
        env = f"env {', '.join(option.env)}; " if option.env else ""
        text = f"{option.help} ({env}default {option.default})"
        lines += [
            f"  {names}",
            textwrap.fill(text, 88, initial_indent=" " * 8, subsequent_indent=" " * 8),
        ]
    lines += ["", f"Environment names are also read with the {ENV_PREFIX} prefix."]
    return "\n".join(lines) + "\n"


def _command_lines(commands: Mapping[str, str]) -> list[str]:
    width = max(len(name) for name in commands)
    return ["sub-commands:", *(f"  {name:<{width}}  {text}" for name, text in commands.items())]
