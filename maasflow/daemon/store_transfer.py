"""`maasflow migrate-store --from sqlite:PATH --to postgresql://...`: move the daemon's records.

An installation that outgrows one host moves its daemon's state (provisioning records with
their deploy ids and script runs, setbacks, retry counts, history, the deploy parameters
last sent each machine, the desires stored over HTTP) from its SQLite file into
PostgreSQL, without losing a record:

1. the SQLite file's instance lock is taken, so no daemon writes it meanwhile (a running
   one makes this exit 2: stop it first); the file is opened by the SQLite store, which
   brings an older file up to the current schema;
2. the PostgreSQL store is opened (its tables made) and filled in one transaction, only if
   it holds nothing yet (else exit 2: two installations are never mixed);
3. everything is read back from PostgreSQL and compared with what was read from SQLite;
   any difference is exit 1. The SQLite file is left as it was, a backup.

Then point every daemon at the database (`-db postgresql://...`). The PostgreSQL password
comes from `--password-file`, else systemd's credential, else ~/.pgpass, as for the daemon.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from dataclasses import dataclass, field
from pathlib import Path

from maasflow.common.command_parser import CommandParser
from maasflow.common.errors import ConfigError
from maasflow.common.instance_lock import InstanceLock
from maasflow.common.postgres import PostgresUrl, read_password
from maasflow.daemon.adoption import Sighting
from maasflow.daemon.history import Event
from maasflow.daemon.postgres_store import PostgresStore
from maasflow.daemon.retry_budget import Recovery
from maasflow.daemon.setbacks import Setback
from maasflow.daemon.store import ProvisionRecord, ProvisionStore, SqliteStore
from maasflow.daemon.stored_desire import StoredDesire

PROG = "maasflow migrate-store"
SQLITE_PREFIX = "sqlite:"


@dataclass(frozen=True)
class Snapshot:
    """Everything one store holds, in a comparable order."""

    records: list[ProvisionRecord]
    setbacks: list[Setback]
    recoveries: list[Recovery]
    events: list[Event]
    applied: dict[str, dict[str, str]] = field(default_factory=dict)  # last sent, by system_id
    desires: list[StoredDesire] = field(default_factory=list)
    sightings: list[Sighting] = field(default_factory=list)

    @classmethod
    def of(cls, store: ProvisionStore) -> Snapshot:
        return cls(
            store.all(),
            sorted(store.setbacks(), key=lambda s: s.system_id),
            sorted(store.recoveries(), key=lambda r: r.system_id),
            store.histories(),
            store.applied_deploys(),
            store.desires(),
            sorted(store.sightings(), key=lambda s: s.system_id),
        )

    def summary(self) -> str:
        return (
            f"{len(self.records)} provisioning records, {len(self.setbacks)} setbacks, "
            f"{len(self.recoveries)} retry counts, {len(self.events)} history events, "
            f"{len(self.applied)} applied deploys, {len(self.desires)} stored desires, "
            f"{len(self.sightings)} first sightings"
        )


def _parser() -> argparse.ArgumentParser:
    p = CommandParser(prog=PROG, description="Copy the daemon's records into PostgreSQL.")
    p.add_argument("--from", dest="source", metavar="sqlite:PATH",
                   help="the daemon's SQLite file (its -db), e.g. sqlite:/var/lib/maasflow/"
                        "maasflow.sqlite")  # fmt: skip
    p.add_argument("--to", dest="target", metavar="postgresql://...",
                   help="an empty PostgreSQL database, without a password in the URL")  # fmt: skip
    p.add_argument("--password-file", type=Path, metavar="FILE",
                   help="the PostgreSQL password (default: $CREDENTIALS_DIRECTORY/"
                        "maasflow_db_password, else ~/.pgpass)")  # fmt: skip
    return p


def main(argv: list[str]) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.source is None or args.target is None:
        parser.error("both --from sqlite:PATH and --to postgresql://... are needed")
    source = sqlite_path(args.source)
    target = PostgresUrl.parse(args.target, "--to")
    password = read_password(args.password_file, "--password-file")
    with InstanceLock.hold(source, hint="stop the daemon using it, then migrate"):
        moved, found = transfer(source, target, password)
    if moved != found:
        print(f"{PROG}: what {target} holds differs from {source}; not done", file=sys.stderr)
        return 1
    print(f"moved {moved.summary()} from {source} to {target}")
    return 0


def sqlite_path(text: str) -> Path:
    """The file `--from sqlite:PATH` names; it must exist (a typo must not look empty)."""
    if not text.startswith(SQLITE_PREFIX) or not text.removeprefix(SQLITE_PREFIX):
        raise ConfigError(f"--from {text!r}: expected sqlite:PATH, the daemon's -db file")
    path = Path(text.removeprefix(SQLITE_PREFIX)).expanduser()
    if not path.is_file():
        raise ConfigError(f"--from {text!r}: no such file; give the daemon's -db file")
    return path


def transfer(source: Path, target: PostgresUrl, password: str | None) -> tuple[Snapshot, Snapshot]:
    """Copy `source` into the empty `target`; (what was read, what the target then holds)."""
    with contextlib.closing(SqliteStore(source)) as sqlite:
        moved = Snapshot.of(sqlite)
    with contextlib.closing(PostgresStore(target, password)) as postgres:
        try:
            postgres.fill(
                moved.records,
                moved.setbacks,
                moved.recoveries,
                moved.events,
                moved.applied,
                moved.desires,
                moved.sightings,
            )
        except ValueError as exc:
            raise ConfigError(f"--to {target}: {exc}") from None
        return moved, Snapshot.of(postgres)
