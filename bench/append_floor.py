"""Durable appends per second on this disk, by the way space is allocated and synced.

    python bench/append_floor.py [--appends 2000] [--repeat 5] [--line 370] [--only TEXT ...]

The measurement behind `wfrun.local.store`'s choice of how a history grows. Each variant
appends ``--appends`` lines of ``--line`` bytes (one sequential step writes about 370) to a
new file, making each durable before the next:

- ``append+fsync``: today's floor, a write at the end of the file and an fsync (size changes).
- ``append+fdatasync``: the same with fdatasync (it must still write the new size).
- ``fallocate CHUNK+fdatasync``: space reserved CHUNK at a time with posix_fallocate (the file
  grows by CHUNK, unwritten extents), each line written in place, then fdatasync.
- ``zero-fill CHUNK+fdatasync``/``+fsync``: the same, the CHUNK reserved by writing zeros.
- ``... growing+fdatasync``: reservations of 64 KiB, then twice the last up to 1 MiB (as
  wfrun makes them).

Variants run interleaved, one run of each per round, so that noise from other processes
spreads over all of them; figures are medians of --repeat rounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

KIB = 1024
CHUNKS = (64 * KIB, 256 * KIB, 1024 * KIB, 4096 * KIB)


def append(path: Path, line: bytes, n: int, sync: Callable[[int], None]) -> float:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_TRUNC, 0o600)
    start = time.perf_counter()
    for _ in range(n):
        os.write(fd, line)
        sync(fd)
    elapsed = time.perf_counter() - start
    os.close(fd)
    return elapsed / n


def in_place(
    path: Path,
    line: bytes,
    n: int,
    chunk: int,
    zero_fill: bool,
    sync: Callable[[int], None],
    most: int | None = None,
) -> float:
    """Reserve ``chunk`` at a time (doubling up to ``most``, if given), write in place."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    start = time.perf_counter()
    size = allocated = 0
    for _ in range(n):
        if size + len(line) > allocated:
            if zero_fill:
                os.pwrite(fd, bytes(chunk), allocated)
            else:
                os.posix_fallocate(fd, allocated, chunk)
            allocated += chunk
            if most is not None:
                chunk = min(chunk * 2, most)
        os.pwrite(fd, line, size)
        size += len(line)
        sync(fd)
    os.ftruncate(fd, size)  # the trim at close, counted
    elapsed = time.perf_counter() - start
    os.close(fd)
    return elapsed / n


def variants(line: bytes, n: int) -> dict[str, Callable[[Path], float]]:
    found: dict[str, Callable[[Path], float]] = {
        "append+fsync": lambda p: append(p, line, n, os.fsync),
        "append+fdatasync": lambda p: append(p, line, n, os.fdatasync),
    }
    for chunk in CHUNKS:
        name = f"{chunk // KIB} KiB"
        found[f"fallocate {name}+fdatasync"] = lambda p, c=chunk: in_place(
            p, line, n, c, False, os.fdatasync
        )
        found[f"zero-fill {name}+fdatasync"] = lambda p, c=chunk: in_place(
            p, line, n, c, True, os.fdatasync
        )
        found[f"zero-fill {name}+fsync"] = lambda p, c=chunk: in_place(
            p, line, n, c, True, os.fsync
        )
    for zero_fill in (False, True):
        name = "zero-fill" if zero_fill else "fallocate"
        found[f"{name} growing+fdatasync"] = lambda p, z=zero_fill: in_place(
            p, line, n, 64 * KIB, z, os.fdatasync, most=1024 * KIB
        )
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appends", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--line", type=int, default=370)
    parser.add_argument(
        "--only", nargs="*", default=[], help="variants whose names hold one of these texts"
    )
    args = parser.parse_args()
    line = b"x" * (args.line - 1) + b"\n"
    runs = {
        name: run
        for name, run in variants(line, args.appends).items()
        if name == "append+fsync" or not args.only or any(text in name for text in args.only)
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        path = Path(tmp) / "append.bench"
        for _ in range(args.repeat):
            for name, run in runs.items():
                times[name].append(run(path))
                path.unlink()
    floor = statistics.median(times["append+fsync"])
    print(f"{args.appends} durable appends of {args.line} bytes, medians of {args.repeat} rounds")
    for name, each in times.items():
        median = statistics.median(each)
        spread = (max(each) - min(each)) / median
        print(
            f"{name:32} {1 / median:8.0f} appends/s  {median * 1e6:6.0f} us"
            f"  {floor / median:5.2f}x append+fsync  (spread {spread:.0%})"
        )


if __name__ == "__main__":
    main()
