"""`maasflow enlist`: record machines that already run in MAAS as Deployed, once each.

    maasflow enlist --hostname H --mac M [--mac M2] [--arch amd64/generic] [--domain D]
                    [--power-type T --power-param k=v ...] [--dry-run]
    maasflow enlist --from inventory.json [--dry-run]

Each machine is created with `POST machines/ deployed=true` (facts §3.9): MAAS stores it as
Deployed without commissioning, powering or rebooting it. That needs an admin's key and
MAAS 3.1 or later; MAAS 3.0 silently ignores `deployed` and commissions the machine (power
cycling a live workload), so the version MAAS reports (`GET version/`, `version` such as
"3.6.1", served by `VersionHandler` in MAAS's `src/maasserver/api/version.py`) is checked
before anything is written, and anything older, or unreadable, is refused. Idempotent:
filtered listings (`hostname=`, `mac_address=`) tell which entries MAAS already has; those
are reported and skipped (`enlistment.plan`), so a second run creates nothing. `--dry-run`
checks the same and prints what it would create, sending only GETs. MAAS's URL and key are
found as the daemon finds them (`-maas`/`MAAS_URL`; `MAAS_API_KEY`, `--api-key-file`,
systemd's credential), never from this command's arguments. Bad input and a key or MAAS
that cannot enlist: one line, exit status 2; a machine MAAS refused: exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from maasflow.common.command_parser import CommandParser
from maasflow.common.errors import ConfigError, MaasError, Unauthorized
from maasflow.common.logs import add_logging_arguments, configure_logging, logging_options
from maasflow.daemon.enlistment import (
    DEFAULT_ARCH,
    Enlistee,
    Known,
    Planned,
    Verdict,
    distinct,
    enlistee,
    load_inventory,
    mac_address,
    plan,
    power_parameter,
)
from maasflow.daemon.maas.client import AnswerLost, MaasClient
from maasflow.daemon.settings import load_settings

BATCH = 100  # filter values per listing request
MIN_VERSION = (3, 1)  # the first MAAS whose create form has `deployed` (facts §3.9)
_VERSION = re.compile(r"^(\d+)\.(\d+)")
Write = Callable[[str], None]


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    configure_logging(*logging_options(args.log_level, args.log_format, os.environ))
    entries = _entries(args)
    flags = (["-maas", args.maas] if args.maas else []) + (
        ["-api-key-file", args.api_key_file] if args.api_key_file else []
    )
    settings = load_settings(flags)
    key = settings.api_key.get_secret_value()
    return asyncio.run(_run(settings.maas_url, key, settings.api_version, entries, args.dry_run))


async def _run(url: str, key: str, api_version: str, entries: list[Enlistee], dry: bool) -> int:
    async with MaasClient(url, key, api_version=api_version, read_only=dry) as client:
        try:
            return await enlist(client, entries, dry_run=dry)
        except Unauthorized as exc:
            raise ConfigError(f"enlist: MAAS refused the API key ({exc.message})") from None
        except MaasError as exc:
            print(f"maasflow enlist: {exc}", file=sys.stderr)
            return 1


async def enlist(
    client: MaasClient,
    entries: Sequence[Enlistee],
    *,
    dry_run: bool = False,
    write: Write = print,
) -> int:
    """Create each entry MAAS lacks, one line per entry; 1 if MAAS refused any, else 0."""
    await require_enlisting(client)
    refused = 0
    for item in plan(entries, await known_machines(client, entries)):
        if item.verdict is Verdict.SKIP:
            write(f"skipped {item.entry.hostname}: {item.reason}")
        elif dry_run:
            write(f"would create {item.entry.summary()}")
        else:
            refused += not await _create(client, item, write)
    return 1 if refused else 0


async def require_enlisting(client: MaasClient) -> None:
    """ConfigError unless the key is an admin's and MAAS is 3.1 or later."""
    user = await client.whoami()
    if not user.is_superuser:
        raise ConfigError(
            f"enlist: the API key's user {user.username!r} is not a MAAS admin; only admins "
            "may record deployed machines: use an admin's key"
        )
    reported = (await client.version()).get("version")
    found = _VERSION.match(reported) if isinstance(reported, str) else None
    if found is None or (int(found.group(1)), int(found.group(2))) < MIN_VERSION:
        raise ConfigError(
            f"enlist: MAAS reports version {reported!r}; recording deployed machines needs "
            "MAAS 3.1 or later (older MAAS would commission them): upgrade MAAS"
        )


async def known_machines(client: MaasClient, entries: Sequence[Enlistee]) -> Known:
    """MAAS's machines that share a hostname or a MAC with an entry: filtered GETs, one per
    `BATCH` names and one per `BATCH` MACs (the values travel in the query string)."""
    hostnames: dict[str, str] = {}
    macs: dict[str, str] = {}
    names = [e.hostname for e in entries]
    for batch in _batches(names):
        for machine in await client.list_machines(hostname=batch):
            hostnames[machine.hostname.lower()] = machine.system_id
    for batch in _batches([mac for e in entries for mac in e.macs]):
        for machine in await client.list_machines(mac_address=batch):
            macs.update({mac.lower(): machine.system_id for mac in machine.macs})
    return Known(hostnames, macs)


def _batches(values: list[str]) -> list[list[str]]:
    return [values[start : start + BATCH] for start in range(0, len(values), BATCH)]


async def _create(client: MaasClient, item: Planned, write: Write) -> bool:
    entry = item.entry
    try:
        machine = await client.create_deployed(entry.hostname, **entry.form())
    except AnswerLost:
        write(f"unknown {entry.hostname}: MAAS's answer was lost; run enlist again to check")
        return False
    except MaasError as exc:
        if isinstance(exc, Unauthorized):
            raise
        write(f"failed {entry.hostname}: {exc}")
        return False
    write(f"created {entry.hostname}: system_id {machine.system_id}, {machine.status_name}")
    return True


def _entries(args: argparse.Namespace) -> list[Enlistee]:
    one = [args.hostname, args.mac, args.domain, args.power_type, args.power_param]
    if args.inventory is not None:
        if any(one) or args.arch is not None:
            raise ConfigError("enlist: --from lists every machine; drop --hostname and the rest")
        return load_inventory(Path(args.inventory))
    if not args.hostname:
        raise ConfigError("enlist: give --hostname H --mac M ..., or --from inventory.json")
    raw = {
        "hostname": args.hostname,
        "macs": [mac_address(m, "--mac") for m in args.mac or []],
        "arch": args.arch or DEFAULT_ARCH,
        "domain": args.domain or "",
        "power_type": args.power_type or "",
        "power_parameters": dict(
            power_parameter(p, "--power-param") for p in args.power_param or []
        ),
    }
    return distinct([enlistee(raw, "enlist")], "enlist")


def _parser() -> CommandParser:
    parser = CommandParser(
        prog="maasflow enlist",
        description="Record machines that already run in MAAS as Deployed (MAAS 3.1+, "
        "admin key), without commissioning or rebooting them; machines MAAS has are "
        "skipped; logs go to stderr.",
    )
    parser.add_argument("--hostname", help="the machine's host name (no domain)")
    parser.add_argument("--mac", action="append", help="a MAC address (repeat for more)")
    parser.add_argument("--arch", help=f"architecture (default {DEFAULT_ARCH})")
    parser.add_argument("--domain", help="the DNS domain MAAS puts it in (default: MAAS's)")
    parser.add_argument("--power-type", help="MAAS power driver, e.g. ipmi (needs --mac)")
    parser.add_argument(
        "--power-param",
        action="append",
        metavar="NAME=VALUE",
        help="a power parameter (repeat); NAME=@FILE reads the value from a file, as secrets must",
    )
    parser.add_argument("--from", dest="inventory", metavar="FILE", help="a JSON inventory")
    parser.add_argument("--dry-run", action="store_true", help="print what would be created")
    parser.add_argument("--maas", help="MAAS URL (default: MAAS_URL or the daemon's default)")
    parser.add_argument("--api-key-file", help="file holding an admin's API key")
    add_logging_arguments(parser)
    return parser
