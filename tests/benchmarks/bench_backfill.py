"""Benchmark: backfill 1,000,000 SF Fire rows into a fresh embedded Redis.

The rows are the real SF sample repeated with dates shifted by a week per copy and unique
call numbers, written to a temporary CSV. Prints rows/s, wall time, CPU time,
peak RSS of this process and of the worker processes, and RSS at 25/50/75/100% of the rows
(flat = memory does not grow with the file). Target: <= 60 s on the 2-core machine.
Last line: JSON.

Usage: python tests/benchmarks/bench_backfill.py [--rows N] [--workers N]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from streams.backfill import backfill_files, default_workers  # noqa: E402
from streams.core.keys import Keys  # noqa: E402
from streams.core.settings import Settings  # noqa: E402
from streams.redis_server import EmbeddedRedis, free_port  # noqa: E402

SF_FORMAT = "%m/%d/%Y %I:%M:%S %p"
TIME_COLUMNS = ("Received DtTm", "Entry DtTm", "Dispatch DtTm", "Response DtTm",
                "On Scene DtTm", "Transport DtTm", "Hospital DtTm", "Available DtTm")
TARGET_SECONDS = 60.0


def status_mb(pid: int | str, field: str) -> float:
    """VmRSS / VmHWM of a process in MB (nan if it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def python_children() -> list[int]:
    """Pids of this process's Python children (the backfill workers, not redis-server)."""
    me, found = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:]
        if int(rest.split()[1]) == me and name.startswith("python"):
            found.append(int(entry.name))
    return found


def generate(source: Path, target: Path, rows: int) -> int:
    """Write ``rows`` rows: copies of the sample with dates shifted and ids made unique."""
    with source.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        originals = list(reader)
    index = {name: header.index(name) for name in TIME_COLUMNS}
    call, row_id = header.index("Call Number"), header.index("RowID")
    parsed = [{column: (datetime.strptime(row[at], SF_FORMAT) if row[at] != "null" else None)
               for column, at in index.items()} for row in originals]
    written = 0
    with target.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        copy = 0
        while written < rows:
            shift = timedelta(days=7 * copy)
            cache: dict[datetime, str] = {}
            for row, times in zip(originals, parsed, strict=True):
                if written >= rows:
                    break
                new = list(row)
                new[call] = f"{copy:04d}{row[call]}"
                new[row_id] = f"{new[call]}-{row[row_id].rpartition('-')[2]}"
                for column, value in times.items():
                    if value is not None:
                        shifted = value + shift
                        text = cache.get(shifted)
                        if text is None:
                            text = cache[shifted] = shifted.strftime(SF_FORMAT)
                        new[index[column]] = text
                writer.writerow(new)
                written += 1
            copy += 1
    return written


class Progress:
    """Rows read so far (the backfill's slowest worker), updated by backfill_files."""

    value = 0


class Sampler(threading.Thread):
    """Every 0.2 s: rows read, RSS of this process and of each worker, workers' peaks."""

    def __init__(self, progress: Progress) -> None:
        super().__init__(daemon=True)
        self.progress = progress
        self.samples: list[tuple[int, float, float]] = []  # rows, own RSS, max worker RSS
        self.worker_peak = 0.0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.2):
            workers = python_children()
            rss = [status_mb(pid, "VmRSS") for pid in workers]
            peaks = [status_mb(pid, "VmHWM") for pid in workers]
            self.worker_peak = max([self.worker_peak, *(p for p in peaks if p == p)])
            self.samples.append((self.progress.value, status_mb("self", "VmRSS"),
                                 max((r for r in rss if r == r), default=0.0)))

    def at(self, total: int) -> dict[str, list[float]]:
        """[own RSS, largest worker RSS] at 25/50/75/100% of the rows."""
        marks = {}
        for percent in (25, 50, 75, 100):
            wanted = total * percent / 100
            sample = next((s for s in self.samples if s[0] >= wanted and s[2] > 0),
                          next((s for s in reversed(self.samples) if s[2] > 0),
                               (0, 0.0, 0.0)))
            marks[str(percent)] = [round(sample[1], 1), round(sample[2], 1)]
        return marks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=default_workers())
    args = parser.parse_args()
    settings = Settings()
    mapping_path = ROOT / "streams" / "mappings" / "sf_fire_calls.toml"
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        data = tmp / "sf_1m.csv"
        started = time.perf_counter()
        rows = generate(settings.shared_data_dir / "sf_fire_calls" / "data_sample.csv",
                        data, args.rows)
        print(f"generated {rows:,} rows ({data.stat().st_size / 1e6:.0f} MB) in "
              f"{time.perf_counter() - started:.1f} s")
        with EmbeddedRedis(tmp / "redis", free_port()) as server:
            progress = Progress()
            sampler = Sampler(progress)
            rss_before = status_mb("self", "VmRSS")
            sampler.start()
            cpu_before = os.times()
            started = time.perf_counter()
            summary = asyncio.run(backfill_files(
                server.url, Keys("bench"), mapping_path, settings.shared_data_dir, [data],
                asyncio.Event(), args.workers, progress=True, rows=progress))
            seconds = time.perf_counter() - started
            cpu = os.times()
            sampler.done.set()
            sampler.join()
            info = redis.Redis.from_url(server.url).info()
    cpu_seconds = (cpu.user + cpu.system + cpu.children_user + cpu.children_system
                   - cpu_before.user - cpu_before.system - cpu_before.children_user
                   - cpu_before.children_system)
    marks = sampler.at(summary.rows)
    own_peak = status_mb("self", "VmHWM")
    print(summary.text())
    print(f"workers          {args.workers}")
    print(f"rows/s           {summary.rows / seconds:,.0f}")
    print(f"wall time        {seconds:.1f} s (target <= {TARGET_SECONDS:.0f} s)")
    print(f"CPU time         {cpu_seconds:.1f} s in this process and its workers "
          f"(load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    print(f"RSS before       {rss_before:.1f} MB")
    print(f"RSS [own, largest worker] at 25/50/75/100% of rows: {marks} MB")
    print(f"peak RSS         own {own_peak:.1f} MB (VmHWM), worker {sampler.worker_peak:.1f} MB")
    print(f"redis memory     {info['used_memory'] / 1e6:.0f} MB "
          f"for {summary.loaded:,} closed calls")
    print(json.dumps({
        "benchmark": "backfill", "rows": summary.rows, "calls": summary.calls,
        "loaded": summary.loaded, "rejected": sum(summary.rejected.values()),
        "workers": args.workers, "seconds": round(seconds, 2),
        "rows_per_s": round(summary.rows / seconds), "cpu_seconds": round(cpu_seconds, 1),
        "rss_mb_before": round(rss_before, 1), "rss_mb_at_percent": marks,
        "peak_rss_mb": round(own_peak, 1), "worker_peak_rss_mb": round(sampler.worker_peak, 1),
        "target_seconds": TARGET_SECONDS, "target_met": seconds <= TARGET_SECONDS}))


if __name__ == "__main__":
    main()
