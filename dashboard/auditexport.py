"""`python -m dashboard audit-export`: the audit trail as CSV from the server's command line.

The export is recorded in the trail before it is read, as the shell user who ran it.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO
from zoneinfo import ZoneInfo

from dashboard.audit import AuditLog
from streams.clients import close as close_client
from streams.clients import sync_client
from streams.core import audit as rules
from streams.core.settings import Settings


def query_of(args: argparse.Namespace, zone: ZoneInfo) -> rules.AuditQuery:
    """The search the command line asks for (ValueError naming what is wrong)."""
    return rules.AuditQuery(
        user=args.user, call_id=args.call_id, action=args.action,
        start=rules.parse_time(args.since, zone) if args.since else None,
        end=rules.parse_time(args.until, zone, end_of_day=True) if args.until else None)


def shell_actor() -> rules.Actor:
    """Whoever runs the command on this machine."""
    return rules.Actor(getpass.getuser(), rules.SHELL_ROLE, None, "localhost")


@contextmanager
def _output(path: str | None) -> Iterator[TextIO]:
    if path is None:
        yield sys.stdout
        return
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", newline="") as handle:
        yield handle


def export_to(settings: Settings, args: argparse.Namespace) -> int:
    """Write the matching entries as CSV to ``args.output`` (or stdout); returns how many."""
    zone = ZoneInfo(settings.timezone)
    query = query_of(args, zone)
    client = sync_client(settings.redis_address)
    try:
        log = AuditLog(client, settings.keys, settings.audit_max_age_s)
        count = -1  # the header line
        with _output(args.output) as out:
            for line in rules.csv_lines(log.export(query, shell_actor()), zone):
                out.write(line)
                count += 1
        return count
    finally:
        close_client(client)
