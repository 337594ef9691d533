"""How fast the reading commands are: ``history`` of a long run, and ``list`` of many runs.

    python bench/reads.py [--events 100000] [--runs 10000] [--repeat 5]

Sets up, in a temporary home, one run of --events events (one no-op activity after another:
scheduled, started, completed) and --runs small completed runs, written directly with the
store's serializer (quick to set up; the same bytes a live run writes). Then times, each in a
subprocess as a user runs it, with its peak RSS (``getrusage(RUSAGE_CHILDREN)`` of a fresh
process per command):

- ``wfrun history RUN > /dev/null`` (plain rows: stdout is no terminal),
- ``wfrun history RUN --json > /dev/null``,
- ``wfrun list > /dev/null``,

as medians of --repeat runs, each next to its floor measured in the same run: starting
Python and importing the CLI (what every command pays), reading the bytes (``cat``), and for
``list`` opening and reading the two ends of every run file in a plain Python loop.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wfrun.events import Event, WorkflowStarted

TS = "2026-11-28T10:00:00.000000Z"


def _started(run_id: str) -> WorkflowStarted:
    from wfrun.events import FORMAT_VERSION, WorkflowStarted

    return WorkflowStarted(
        id=1,
        ts=TS,
        format=FORMAT_VERSION,
        run_id=run_id,
        workflow="bench_reads",
        target="bench/reads.py:Reads",
        input={"steps": 1},
        wfrun_version="bench",
        seed=1,
        cwd="/tmp",
        max_payload=2 * 1024 * 1024,
    )


def _events(run_id: str, count: int) -> list[Event]:
    """A completed run of ``count`` events (count - 2 must be a multiple of 3)."""
    from wfrun.events import (
        ActivityCompleted,
        ActivityScheduled,
        ActivityStarted,
        WorkflowCompleted,
    )

    events: list[Event] = [_started(run_id)]
    seq = 0
    while len(events) < count - 1:
        seq += 1
        n = len(events) + 1
        events += [
            ActivityScheduled(id=n, ts=TS, seq=seq, name="noop", input={"i": seq}),
            ActivityStarted(id=n + 1, ts=TS, seq=seq, attempt=1),
            ActivityCompleted(id=n + 2, ts=TS, seq=seq, attempt=1, duration=0.0001, result=seq),
        ]
    events.append(WorkflowCompleted(id=len(events) + 1, ts=TS, result=seq))
    return events


def _write_run(runs: Path, run_id: str, count: int) -> int:
    from wfrun.events import serialize

    data = b"".join(serialize(event) + b"\n" for event in _events(run_id, count))
    path = runs / f"{run_id}.jsonl"
    path.write_bytes(data)
    path.chmod(0o600)
    return len(data)


def setup(home: Path, events: int, runs: int) -> int:
    """The home: run ``long`` of ``events`` events, and ``runs`` runs of 5 events."""
    folder = home / "runs"
    folder.mkdir(mode=0o700, parents=True)
    size = _write_run(folder, "long", events - (events - 2) % 3)
    for i in range(runs):
        _write_run(folder, f"r{i:06d}", 5)
    return size


def timed_own_rss(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Seconds and peak RSS (MB) of one command, measured for that child alone (wait4)."""
    with open(os.devnull, "wb") as sink:
        start = time.perf_counter()
        process = subprocess.Popen(argv, stdout=sink, stderr=subprocess.PIPE, env=env)
        assert process.stderr is not None
        err = process.stderr.read()
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({process.returncode}): {err.decode()}")
    return elapsed, usage.ru_maxrss / 1024


def list_floor(runs: Path) -> float:
    """Open every run file, read its first 4 KiB and its last 4 KiB: what ``list`` must do."""
    start = time.perf_counter()
    for name in os.listdir(runs):
        fd = os.open(runs / name, os.O_RDONLY)
        size = os.fstat(fd).st_size
        os.pread(fd, 4096, 0)
        os.pread(fd, 4096, max(0, size - 4096))
        os.close(fd)
    return time.perf_counter() - start


def median_of(repeat: int, fn: Callable[[], tuple[float, float]]) -> tuple[float, float, str]:
    results = [fn() for _ in range(repeat)]
    seconds = [s for s, _ in results]
    return (
        statistics.median(seconds),
        statistics.median(m for _, m in results),
        ", ".join(f"{s:.2f}" for s in seconds),
    )


def through_a_pty(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Seconds and peak RSS (MB) of one command on a terminal (a pty, 120 columns); what it
    draws is read and dropped."""
    import pty

    main_fd, child_fd = pty.openpty()
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdin=child_fd, stdout=child_fd, stderr=child_fd, env=env)
    os.close(child_fd)
    while True:
        try:
            if not os.read(main_fd, 1 << 16):
                break
        except OSError:  # the terminal closed: the process ended
            break
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    os.close(main_fd)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed on a terminal ({process.returncode})")
    return elapsed, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--terminal", action="store_true", help="also time `history` on a pty")
    parser.add_argument("--setup", metavar="HOME", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.setup:  # in a child: this process stays small, and so do the ones it forks
        setup(Path(args.setup), args.events, args.runs)
        return
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        home = Path(tmp) / "home"
        start = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--setup",
                str(home),
                "--events",
                str(args.events),
                "--runs",
                str(args.runs),
            ],
            check=True,
        )
        path = home / "runs" / "long.jsonl"
        print(
            f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load "
            f"{os.getloadavg()[0]:.1f}; set up {args.events:,} events "
            f"({path.stat().st_size / 1e6:.1f} MB) and {args.runs:,} runs in "
            f"{time.perf_counter() - start:.1f} s; medians of {args.repeat} runs"
        )
        env = {**os.environ, "WFRUN_HOME": str(home), "COLUMNS": "120"}
        wfrun = [sys.executable, "-m", "wfrun"]
        cases = [
            ("floor: python -m wfrun --version", [*wfrun, "--version"]),
            ("floor: cat the history", ["cat", str(path)]),
            ("history RUN (piped)", [*wfrun, "history", "long"]),
            ("history RUN --json (piped)", [*wfrun, "history", "long", "--json"]),
            ("list (piped)", [*wfrun, "list"]),
            ("list --json", [*wfrun, "list", "--json"]),
        ]
        for label, argv in cases:
            seconds, rss, each = median_of(args.repeat, lambda argv=argv: timed_own_rss(argv, env))
            print(f"{label:38s} {seconds:7.3f} s  {rss:6.0f} MB peak   (runs: {each})")
        floors = [list_floor(home / "runs") for _ in range(args.repeat)]
        print(
            f"{'floor: open + read both ends, all runs':38s} {statistics.median(floors):7.3f} s"
            "  (in-process, no startup)"
        )
        if args.terminal:
            for label, argv in [
                ("history RUN (terminal)", [*wfrun, "history", "long"]),
                ("list (terminal)", [*wfrun, "list"]),
            ]:
                seconds, rss, each = median_of(
                    args.repeat, lambda argv=argv: through_a_pty(argv, env)
                )
                print(f"{label:38s} {seconds:7.3f} s  {rss:6.0f} MB peak   (runs: {each})")


if __name__ == "__main__":
    main()
