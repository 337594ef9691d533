"""What every benchmark shares: medians, the disk's floors measured in the same run, peak memory
of a command, and fabricated histories (long runs and crowded homes, written in seconds)."""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from wfrun.events import (
    FORMAT_VERSION,
    ActivityCompleted,
    ActivityScheduled,
    ActivityStarted,
    WorkflowCompleted,
    WorkflowStarted,
    format_ts,
    serialize,
)

BENCH = Path(__file__).resolve().parent
#: One history line of typical size: what a floor appends, once per durable step.
LINE = (
    b'{"id":4,"ts":"2026-11-24T10:00:00.000000Z","type":"ActivityCompleted","seq":1,'
    b'"attempt":1,"duration":0.000039,"result":1,"crc":"da2eedac"}\n'
)


@dataclass(frozen=True)
class Timing:
    """Seconds of several runs of one measurement."""

    runs: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    def spread(self) -> str:
        return f"{min(self.runs) * 1000:.0f}–{max(self.runs) * 1000:.0f} ms"


def timed(
    repeat: int, action: Callable[[], object], *, before: Callable[[], object] = lambda: None
) -> Timing:
    """Time ``action`` ``repeat`` times (``before`` runs untimed ahead of each)."""
    runs = []
    for _ in range(repeat):
        before()
        start = time.perf_counter()
        action()
        runs.append(time.perf_counter() - start)
    return Timing(tuple(runs))


# -- the disk's floors ----------------------------------------------------------------------


def append_fsync_floor(folder: Path, n: int = 2000) -> float:
    """Seconds per durable append the plain way: write at the end of the file, then fsync."""
    path = folder / "floor-append.bench"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
    try:
        start = time.perf_counter()
        for _ in range(n):
            os.write(fd, LINE)
            os.fsync(fd)
        return (time.perf_counter() - start) / n
    finally:
        os.close(fd)
        path.unlink()


def preallocated_floor(folder: Path, n: int = 2000) -> float:
    """Seconds per durable append into space written ahead: pwrite in place, then fdatasync.

    The space is filled with real zeros and synced first, so no append changes the file's size
    or its extents: the least a durable append can cost on this disk.
    """
    path = folder / "floor-preallocated.bench"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, bytes(len(LINE) * n))
        os.fsync(fd)
        start = time.perf_counter()
        for i in range(n):
            os.pwrite(fd, LINE, i * len(LINE))
            os.fdatasync(fd)
        return (time.perf_counter() - start) / n
    finally:
        os.close(fd)
        path.unlink()


@dataclass(frozen=True)
class Floors:
    """The disk's limits for one-at-a-time durable steps, in seconds per append."""

    append_fsync: float
    preallocated: float


def floors(folder: Path, repeat: int = 3) -> Floors:
    return Floors(
        statistics.median(append_fsync_floor(folder) for _ in range(repeat)),
        statistics.median(preallocated_floor(folder) for _ in range(repeat)),
    )


# -- commands ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    seconds: float
    peak_rss_mb: float


def run_command(
    args: Sequence[str], *, cwd: Path | None = None, env: dict[str, str] | None = None
) -> Measured:
    """Run a command to its end with stdout to /dev/null: its wall time and peak RSS.

    Each command runs in a fresh child of a fresh ``python`` (``measure_child``), so the peak
    RSS is that command's own, not the highest of every child this process has had.
    """
    done = subprocess.run(
        [sys.executable, str(BENCH / "common.py"), *args],
        cwd=cwd,
        env=env,
        check=False,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip())
    seconds, peak = done.stdout.split()
    return Measured(float(seconds), float(peak))


def measure_child(args: Sequence[str]) -> None:
    start = time.perf_counter()
    done = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.decode()[-2000:]}")
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(elapsed, peak_kb / 1024)


def wfrun_command(*args: str) -> list[str]:
    """``wfrun ...`` with this interpreter, as a user's shell would run it."""
    return [str(Path(sys.executable).with_name("wfrun")), *args]


# -- fabricated histories -------------------------------------------------------------------


def sequential_history(run_id: str, steps: int, *, finished: bool = True) -> bytes:
    """The history ``workloads.Sequential`` writes for ``steps`` steps, byte for byte as the
    engine would (same events, same serializer), without running or syncing anything."""
    moment = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    tick = timedelta(microseconds=50)
    ids = iter(range(1, 4 * steps + 3))

    def line(cls: type, **fields: object) -> bytes:
        nonlocal moment
        moment += tick
        return serialize(cls(id=next(ids), ts=format_ts(moment), **fields)) + b"\n"

    out = [
        line(
            WorkflowStarted,
            format=FORMAT_VERSION,
            run_id=run_id,
            workflow="bench_sequential",
            target="workloads:Sequential",
            input={"steps": steps},
            wfrun_version="bench",
            seed=1,
            cwd=str(BENCH),
            max_payload=2 * 1024 * 1024,
            continue_as_new_at=10_000_000,
        )
    ]
    for i in range(steps):
        out.append(line(ActivityScheduled, seq=i + 1, name="noop", input={"i": i}))
        out.append(line(ActivityStarted, seq=i + 1, attempt=1))
        out.append(line(ActivityCompleted, seq=i + 1, attempt=1, duration=0.00004, result=i))
    if finished:
        out.append(line(WorkflowCompleted, result=sum(range(steps))))
    return b"".join(out)


def write_run(home: Path, run_id: str, data: bytes) -> Path:
    runs = home / "runs"
    runs.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(home, 0o700)
    path = runs / f"{run_id}.jsonl"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    return path


if __name__ == "__main__":
    measure_child(sys.argv[1:])
