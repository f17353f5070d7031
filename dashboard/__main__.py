"""`python -m dashboard serve | adduser NAME --role ROLE [--district D] [--password-stdin]
| audit-export [--user U] [--call-id C] [--action A] [--since T] [--until T] [--output F]`."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
from collections.abc import Sequence

from streams.core.access import ROLES
from streams.core.settings import Settings, redacted

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m dashboard", description=__doc__)
    commands = top.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the dashboard with gunicorn")
    serve.add_argument("--listen-fd", type=int, help=argparse.SUPPRESS)
    serve.add_argument("--notify-fd", type=int, help=argparse.SUPPRESS)  # both: the launcher
    add = commands.add_parser("adduser", help="add or replace a user (stored in Redis)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--district", help="district of a cso or sro (North, Central, South)")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from the first line of standard input")
    commands.add_parser("demo-users", help="create the demo users if there are no users")
    export = commands.add_parser(
        "audit-export", help="write the audit trail (or the part asked for) as CSV; "
        "the export is itself recorded in the trail")
    export.add_argument("--user", default="", help="only this user's entries")
    export.add_argument("--call-id", default="", help="only entries about this call")
    export.add_argument("--action", default="", help="only this action (e.g. call_detail)")
    export.add_argument("--since", help="from this date or date-time (local time zone)")
    export.add_argument("--until", help="up to this date (inclusive) or date-time")
    export.add_argument("--output", help="CSV file to write (owner-only); default stdout")
    return top


def read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise ValueError("the two passwords differ")
    return first


def main(argv: Sequence[str], settings: Settings) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=settings.log_level.upper(), format=LOG_FORMAT)
    from dashboard import auth  # noqa: PLC0415 - keeps `--help` fast

    if args.command == "serve":
        from dashboard.server import Handover, serve  # noqa: PLC0415

        return serve(settings, Handover(args.listen_fd, args.notify_fd))
    if args.command == "audit-export":
        from dashboard.auditexport import export_to  # noqa: PLC0415

        try:
            count = export_to(settings, args)
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(f"exported {count} audit entries", file=sys.stderr)
        return 0
    import redis  # noqa: PLC0415

    try:
        if args.command == "demo-users":
            created = auth.ensure_demo_users(settings)
            print(f"created {len(created)} demo users" if created else "users exist")
            return 0
        user = auth.open_users(settings).add(
            args.name, args.role, read_password(args.password_stdin), args.district)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except redis.ConnectionError as error:
        print(f"error: cannot reach Redis at {redacted(settings.redis_address)} ({error}); start "
              "`make run` first or set REDIS_URL", file=sys.stderr)
        return 1
    print(f"user {user.name} ({user.role}) saved in Redis "
          f"({redacted(settings.redis_address)})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], Settings.from_env(os.environ)))
