"""Many workflows at once in one process (W3): workflows per second as concurrency grows.

    python bench/concurrent_runs.py [--runs 200 2000] [--steps 10] [--repeat 5] [--nofile 1024]

Each of --runs workflows awaits --steps no-op activities one by one; all of them are started
together in one process (``asyncio.gather`` of ``execute_workflow``, distinct execution ids,
one home), as a service that takes many requests at once would. Every run has its own
history file, lock and inbox, and every step is durable before its workflow moves on, so a
workflow costs ``steps + 2`` fsyncs (its creation, each step, its end) plus one of the runs
folder. ``--nofile`` sets this process's soft limit on open files first (the usual default
of ``ulimit -n`` is 1024): N runs at once must not need N descriptors.

Figures are medians of --repeat rounds, each in a fresh home. Next to them, in the same
process: the fsync floor (one write + fsync after another, one file) and the concurrent fsync
floor (as many threads as runs could use, each appending + fsyncing its own file: what the
disk and the ext4 journal allow when syncs overlap and are merged), and the submitted floor
(64 files written in place and fdatasync'd in one ``io_submit``, as wfrun syncs a crowd's
steps on Linux); and the least asyncio crowd (`common.asyncio_crowd_floor`: the smallest
--runs, each creating its file and syncing its start, steps and end, the syncs of a turn of
the loop in one submission, and nothing else an engine does), which says what any asyncio
engine pays here, its CPU included.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import STEP, append_fsync_floor, asyncio_crowd_floor, concurrent_floor, cpu_seconds
from workloads import Sequential

import wfrun as workflows


def submitted_floor(folder: Path, files: int = 64, rounds: int = 60) -> float | None:
    """Durable appends per second when ``files`` files are each appended to in place and all
    fdatasync'd in one submission (`wfrun.local.aio`, as a crowd's syncs are); None without
    native AIO here."""
    try:
        from wfrun.local import aio
    except ImportError:  # a wfrun from before it
        return None
    paths = [folder / f"floor-aio{i}.bench" for i in range(files)]
    fds = [os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600) for path in paths]
    try:
        for fd in fds:
            os.posix_fallocate(fd, 0, len(STEP) * rounds)
        start = time.perf_counter()
        for r in range(rounds):
            for fd in fds:
                os.pwrite(fd, STEP, r * len(STEP))
            done = aio.fsync_all([(fd, True) for fd in fds])
            if done is None or any(done):
                return None
        return files * rounds / (time.perf_counter() - start)
    finally:
        for fd, path in zip(fds, paths, strict=True):
            os.close(fd)
            path.unlink()


async def one_round(home: Path, runs: int, steps: int) -> float:
    start = time.perf_counter()
    results = await asyncio.gather(
        *(
            workflows.execute_workflow(
                Sequential, {"steps": steps}, execution_id=f"w{i}", home=home
            )
            for i in range(runs)
        )
    )
    elapsed = time.perf_counter() - start
    assert results == [sum(range(steps))] * runs
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, nargs="+", default=[200, 2000])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--nofile", type=int, default=1024, help="soft RLIMIT_NOFILE (0: keep)")
    args = parser.parse_args()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if args.nofile:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(args.nofile, hard), hard))
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {args.steps} steps per "
        f"workflow, soft ulimit -n {limit}, medians of {args.repeat} rounds"
    )
    rates: dict[int, float] = {}
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        base = Path(tmp)
        for runs in args.runs:
            times, cpu = [], []
            for r in range(args.repeat):
                home = base / f"n{runs}r{r}"
                before = cpu_seconds()
                try:
                    times.append(asyncio.run(one_round(home, runs, args.steps)))
                except Exception as exc:  # today's EMFILE, say: reported, not hidden
                    print(f"N={runs:5d}: FAILED: {type(exc).__name__}: {exc}")
                    break
                cpu.append((cpu_seconds() - before) / runs)
            if not times:
                continue
            rates[runs] = runs / statistics.median(times)
            print(
                f"N={runs:5d}: {rates[runs]:8.0f} workflows/s  "
                f"({rates[runs] * (args.steps + 2):7.0f} durable appends/s; rounds: "
                f"{', '.join(f'{t:.2f}' for t in times)} s; CPU per workflow "
                f"{statistics.median(cpu) * 1000:.2f} ms, user + sys, every thread)"
            )
        floor = statistics.median(1 / append_fsync_floor(base, 1000) for _ in range(3))
        merged = statistics.median(concurrent_floor(base) for _ in range(3))
        submitted = [submitted_floor(base) for _ in range(3)]
        fewest = min(args.runs)
        try:
            least = statistics.median(
                asyncio_crowd_floor(base, fewest, args.steps) for _ in range(3)
            )
        except OSError as exc:  # a descriptor per run: EMFILE past the limit
            least = None
            print(f"least asyncio crowd: FAILED at N={fewest}: {exc}")
    print(f"fsync floor:            {floor:8.0f} durable appends/s, one file after another")
    print(f"concurrent fsync floor: {merged:8.0f} durable appends/s, 8 threads, 8 files")
    if None in submitted:
        print("submitted fsync floor:  (no Linux native AIO here)")
    else:
        at_once = statistics.median(x for x in submitted if x is not None)
        print(f"submitted fsync floor:  {at_once:8.0f} durable appends/s, 64 files, one io_submit")
    if least is not None:
        print(
            f"least asyncio crowd:    {least:8.0f} workflows/s at N={fewest} (tasks, lines, "
            f"a turn's syncs in one io_submit; nothing else)"
            + (f": wfrun reaches {rates[fewest] / least:.0%} of it" if fewest in rates else "")
        )
    if len(rates) > 1:
        smallest, largest = min(rates), max(rates)
        print(f"N={largest} runs at {rates[largest] / rates[smallest]:.2f}x the N={smallest} rate")


if __name__ == "__main__":
    main()
