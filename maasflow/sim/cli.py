"""`maasflow sim`: run the MAAS simulator from the command line until SIGINT/SIGTERM.

Prints the API URL and the keys to use (they are this simulator's own keys, so printing
them is the point), then serves until stopped and exits 0. Its log lines (to stderr) follow
`--log-level` and `--log-format`, else LOG_LEVEL and LOG_FORMAT, as every maasflow
program's do. Bad flags raise `ConfigError` with one line naming the flag, which the
top-level CLI turns into exit status 2. Durations
(`--latency`, `--retry-after-503`, `--retry-after-409`) take the syntax every maasflow
program takes (`maasflow.common.options`: `50ms`, `1m`, or a bare number of seconds);
`--latency-ms` keeps taking a plain number of milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal

from maasflow.common.command_parser import CommandParser
from maasflow.common.errors import ConfigError
from maasflow.common.logs import add_logging_arguments, configure_logging, logging_options
from maasflow.common.options import Bound, duration_type
from maasflow.sim.config import SimConfig
from maasflow.sim.faults import Faults
from maasflow.sim.scenario import demo_machines, generate_machines
from maasflow.sim.server import Simulator, serve_simulator

FAULT_FLAGS = {
    "latency_ms": "milliseconds added to every API answer",
    "error_500_rate": "share of API requests answered 500",
    "error_503_rate": "share answered 503 with Retry-After",
    "retry_after_503": "Retry-After on those 503s (whole seconds: 10s, 1m or 10)",
    "conflict_409_rate": "share answered MAAS's HTML 409 with Retry-After",
    "retry_after_409": "Retry-After on those 409s (whole seconds)",
    "drop_rate": "share whose connection is closed without an answer (the op did not happen)",
    "drop_after_rate": "share closed without an answer after the op took effect",
    "truncate_rate": "share answered with truncated JSON",
    "malformed_rate": "share answered with malformed JSON",
    "ip_exhaustion_share": "share of machines whose deploy always gets the address-exhaustion 503",
}


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="maasflow sim", description="Run the built-in MAAS 2.0 simulator.")
    parser.add_argument("--machines", type=int, default=12, help="how many machines (default 12)")
    parser.add_argument("--scenario", choices=("generated", "demo"), default="generated")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=5240, help="port (0 = any free port)")
    parser.add_argument("--seed", type=int, default=0, help="seed for ids, keys and outcomes")
    parser.add_argument("--admin-key", help="use this consumer:token:secret as the admin key")
    parser.add_argument("--time-factor", type=float, default=1.0, help="scale every duration")
    parser.add_argument("--commission-fail-rate", type=float, default=0.0)
    parser.add_argument("--deploy-fail-rate", type=float, default=0.0)
    for name, text in FAULT_FLAGS.items():
        kind = _whole_seconds if name.startswith("retry_after") else float
        parser.add_argument("--" + _flag(name), type=kind, help=text)
    parser.add_argument(
        "--latency",
        dest="latency_ms",
        type=_milliseconds,
        metavar="DURATION",
        help="added to every API answer, as a duration (50ms); the same as --latency-ms",
    )
    add_logging_arguments(parser)
    return parser


_seconds = duration_type(Bound.NON_NEGATIVE)


def _milliseconds(text: str) -> float:
    """A non-negative duration, in the milliseconds `Faults.latency_ms` holds."""
    return _seconds(text) * 1000.0


def _whole_seconds(text: str) -> int:
    """A non-negative duration of whole seconds: what a Retry-After header can say."""
    seconds = _seconds(text)
    if seconds != int(seconds):
        raise argparse.ArgumentTypeError(f"{text.strip()!r}: Retry-After takes whole seconds")
    return int(seconds)


def config_from(args: argparse.Namespace) -> SimConfig:
    """A SimConfig from parsed flags; ConfigError for values out of range."""
    _check_flags(args)
    given = {name: getattr(args, name) for name in FAULT_FLAGS if getattr(args, name) is not None}
    machines = (
        demo_machines(args.seed)
        if args.scenario == "demo"
        else generate_machines(args.machines, args.seed)
    )
    return SimConfig(
        seed=args.seed,
        time_factor=args.time_factor,
        faults=Faults(**given),
        machines=machines,
        admin_key=args.admin_key,
        commission_fail_rate=args.commission_fail_rate,
        deploy_fail_rate=args.deploy_fail_rate,
    )


def _check_flags(args: argparse.Namespace) -> None:
    """Refuse out-of-range values, naming the flag as the user typed it."""
    if args.machines < 0:
        raise ConfigError("sim: --machines must be 0 or more")
    if not 0 <= args.port <= 65535:
        raise ConfigError("sim: --port must be between 0 and 65535")
    if not args.time_factor > 0:
        raise ConfigError("sim: --time-factor must be greater than 0 (1 = real time)")
    rates = ["commission_fail_rate", "deploy_fail_rate"]
    rates += [name for name in FAULT_FLAGS if name.endswith("_rate")]
    for name in rates:
        value = getattr(args, name)
        if value is not None and not 0.0 <= value <= 1.0:
            raise ConfigError(f"sim: --{_flag(name)} {value}: a rate must be between 0 and 1")
    share = args.ip_exhaustion_share
    if share is not None and not 0.0 <= share <= 1.0:
        raise ConfigError(f"sim: --ip-exhaustion-share {share}: a share must be between 0 and 1")
    for name in ("latency_ms", "retry_after_503", "retry_after_409"):
        value = getattr(args, name)
        if value is not None and value < 0:
            raise ConfigError(f"sim: --{_flag(name)} must not be negative")
    fault_rates = [getattr(args, name) or 0.0 for name in FAULT_FLAGS if name.endswith("_rate")]
    if sum(fault_rates) > 1.0:
        raise ConfigError("sim: the fault rates add up to more than 1; lower some of them")


def _flag(name: str) -> str:
    return name.replace("_", "-")


def main(argv: list[str]) -> int:
    """Entry point of `maasflow sim`."""
    args = build_parser().parse_args(argv)
    config = config_from(args)
    configure_logging(*logging_options(args.log_level, args.log_format, os.environ))
    asyncio.run(_serve(config, args.host, args.port))
    return 0


async def _serve(config: SimConfig, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with serve_simulator(config, host, port) as sim:
            _announce(sim)
            await stop.wait()
    except OSError as exc:
        raise ConfigError(
            f"sim: cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --port"
        ) from None


def _announce(sim: Simulator) -> None:
    config = sim.config
    print(f"MAAS simulator listening on {sim.url}", flush=True)
    print(f"admin API key: {sim.admin_key}", flush=True)
    print(f"non-admin API key ({sim.user_username}): {sim.user_key}", flush=True)
    print(
        f"machines: {len(sim.machines)}  seed: {config.seed}  time factor: {config.time_factor}"
        f"  faults: {config.faults.describe()}",
        flush=True,
    )
    print("Stop with Ctrl-C.", flush=True)
