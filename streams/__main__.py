"""`python -m streams COMMAND`: every asyncio process of the system.

up        the whole system (embedded Redis, consumers, simulators, push, web) for `make run`
consume   apply raw events to live state (consumer group)
simulate  simulated CAD, AVL, ShotSpotter and Mutualink feeds for Hartford
replay    replay a real data file into the raw streams through a mapping file
backfill  load a history export straight into closed calls and rollups
history   the history writer: closed calls to Parquet files for response-time queries
seed-history  seed simulated history on an empty Redis (what `make run` does first)
poll      poll a live Socrata or ArcGIS feed described by a mapping file
mapping   check a mapping against its data or feed (a dry run: writes nothing)
push      websocket push service for the dashboard
webhook   HTTP endpoint for vendor-pushed gunshot alerts
status    an operator's view: live counts, dead letters, feeds, partitions, processes
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from streams.core.settings import Settings
from streams.partition_count import PartitionCountMismatch
from streams.runtime import run_until_signalled, setup_logging

Command = Callable[[Settings, argparse.Namespace, asyncio.Event], Awaitable[int | None]]


async def _up(settings: Settings, args: argparse.Namespace, stop: asyncio.Event) -> int:
    from streams.launcher import run_up

    return await run_up(settings, stop)


async def _consume(settings: Settings, args: argparse.Namespace, stop: asyncio.Event) -> None:
    from streams.consumer import default_name, run_consumer

    await run_consumer(settings, args.name or default_name(), stop)


async def _simulate(settings: Settings, args: argparse.Namespace, stop: asyncio.Event) -> None:
    from streams.simulate import run_simulation

    seed = settings.sim_seed if args.seed is None else args.seed
    speed = settings.sim_speed if args.speed is None else args.speed
    await run_simulation(settings, seed, speed, stop, warmup_hours=args.warmup_hours)


async def _push(settings: Settings, args: argparse.Namespace, stop: asyncio.Event) -> None:
    from streams.push import run_push

    await run_push(settings, stop)


async def _replay(settings: Settings, args: argparse.Namespace, stop: asyncio.Event) -> int:
    from streams.replay import run_replay

    speed = 0.0 if args.fast else args.speed
    return await run_replay(settings, args.mapping, args.data, speed, stop, rebase=args.rebase)


async def _backfill(settings: Settings, args: argparse.Namespace, stop: asyncio.Event) -> int:
    from streams.backfill import run_backfill

    return await run_backfill(settings, args.mapping, args.data, stop, workers=args.workers)


async def _poll(settings: Settings, args: argparse.Namespace, stop: asyncio.Event) -> int:
    from streams.poll import run_poll

    return await run_poll(settings, args.mapping, stop, once=args.once)


async def _history(settings: Settings, args: argparse.Namespace, stop: asyncio.Event) -> int:
    from streams.history import run_history_writer

    return await run_history_writer(settings, stop)


async def _seed_history(settings: Settings, args: argparse.Namespace,
                        stop: asyncio.Event) -> int:
    from streams.seed import seed_history

    await asyncio.to_thread(seed_history, settings)
    return 0


async def _webhook(settings: Settings, args: argparse.Namespace, stop: asyncio.Event) -> int:
    from streams.webhook import run_webhook

    return await run_webhook(settings, stop)


async def _status(settings: Settings, args: argparse.Namespace, stop: asyncio.Event) -> int:
    from streams.status import run_status

    return await run_status(settings, args.json)


async def _mapping_check(settings: Settings, args: argparse.Namespace,
                         stop: asyncio.Event) -> int:
    from streams.check import run_check

    return await asyncio.to_thread(run_check, settings, args.mapping, args.data, args.url)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m streams", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("up", help="run everything").set_defaults(run=_up)
    consume = commands.add_parser("consume", help="apply events to live state")
    consume.add_argument("--name", default=None,
                         help="consumer name in the group, unique per process (default: "
                              "consumer-<host>-<pid>; run any number, one applies at a time)")
    consume.set_defaults(run=_consume)
    commands.add_parser("history", help="history writer (closed calls to Parquet)"
                        ).set_defaults(run=_history)
    commands.add_parser("seed-history", help="seed simulated history on an empty Redis"
                        ).set_defaults(run=_seed_history)
    simulate = commands.add_parser("simulate", help="simulated Hartford feeds")
    simulate.add_argument("--seed", type=int, help="random seed (default DISPATCH_SIM_SEED)")
    simulate.add_argument("--speed", type=float,
                          help="simulated seconds per second (default DISPATCH_SIM_SPEED)")
    simulate.add_argument("--warmup-hours", type=float, default=0.0,
                          help="publish this many hours of history first")
    simulate.set_defaults(run=_simulate)
    replay = commands.add_parser("replay", help="replay a real data file")
    replay.add_argument("--mapping", type=Path, required=True, help="mapping file (TOML)")
    replay.add_argument("--speed", type=float, default=0.0,
                        help="event-time seconds per second; 0 replays as fast as possible")
    replay.add_argument("--fast", action="store_true", help="as fast as possible (speed 0)")
    replay.add_argument("--rebase", action="store_true",
                        help="shift all times so the replay starts now")
    replay.add_argument("data", type=Path, nargs="+", help="data files")
    replay.set_defaults(run=_replay)
    backfill = commands.add_parser("backfill", help="load history into closed calls")
    backfill.add_argument("--mapping", type=Path, required=True, help="mapping file (TOML)")
    backfill.add_argument("--workers", type=int,
                          help="loader processes (default: one per core, at most 4)")
    backfill.add_argument("data", type=Path, nargs="+", help="data files")
    backfill.set_defaults(run=_backfill)
    poll = commands.add_parser("poll", help="poll a live feed")
    poll.add_argument("--mapping", type=Path, required=True, help="mapping file with [poll]")
    poll.add_argument("--once", action="store_true", help="poll once and exit")
    poll.set_defaults(run=_poll)
    mapping = commands.add_parser("mapping", help="work with mapping files")
    mapping_commands = mapping.add_subparsers(dest="mapping_command", required=True,
                                              metavar="SUBCOMMAND")
    check = mapping_commands.add_parser(
        "check", help="dry run: what the mapping makes of the data (writes nothing)")
    check.add_argument("mapping", type=Path, help="mapping file (TOML)")
    check.add_argument("data", type=Path, nargs="*",
                       help="data files; none reads the feed of the [poll] table")
    check.add_argument("--url", help="read this feed URL instead of [poll] url")
    check.set_defaults(run=_mapping_check)
    commands.add_parser("push", help="websocket push service").set_defaults(run=_push)
    commands.add_parser("webhook", help="gunshot alert webhook").set_defaults(run=_webhook)
    status = commands.add_parser("status", help="an operator's view of the Redis in use")
    status.add_argument("--json", action="store_true",
                        help="print JSON (keys: README, \"Operator's view\")")
    status.set_defaults(run=_status)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env(os.environ)
    except ValueError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level)
    command: Command = args.run
    try:
        return run_until_signalled(lambda stop: command(settings, args, stop))
    except PartitionCountMismatch as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
