"""What every benchmark shares: medians, the disk's floors measured in the same run, peak memory
of a command, and fabricated histories (long runs and crowded homes, written in seconds)."""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from wfrun.events import (
    FORMAT_VERSION,
    ActivityCompleted,
    ActivityScheduled,
    ActivityStarted,
    WorkflowCompleted,
    WorkflowStarted,
    format_ts,
    serialize,
    with_checksum,
)
from wfrun.local.aio import fsync_all

BENCH = Path(__file__).resolve().parent
#: What one sequential step writes before its sync: its three events (scheduled, started,
#: completed), about 370 bytes.
STEP = (
    b'{"id":3,"ts":"2026-11-24T10:00:00.000000Z","type":"ActivityScheduled","seq":1}\n' * 3
    + b"x" * 130
    + b"\n"
)
#: The reservation the preallocated floor makes at a time (wfrun's largest).
CHUNK = 1 << 20


@dataclass(frozen=True)
class Timing:
    """Seconds of several runs of one measurement, and the CPU seconds (user + system, every
    thread of the process) each took."""

    runs: tuple[float, ...]
    cpu: tuple[float, ...] = ()

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def median_cpu(self) -> float:
        return statistics.median(self.cpu)

    def spread(self) -> str:
        return f"{min(self.runs) * 1000:.0f}–{max(self.runs) * 1000:.0f} ms"


def timed(
    repeat: int, action: Callable[[], object], *, before: Callable[[], object] = lambda: None
) -> Timing:
    """Time ``action`` ``repeat`` times (``before`` runs untimed ahead of each)."""
    runs, cpu = [], []
    for _ in range(repeat):
        before()
        start, start_cpu = time.perf_counter(), cpu_seconds()
        action()
        runs.append(time.perf_counter() - start)
        cpu.append(cpu_seconds() - start_cpu)
    return Timing(tuple(runs), tuple(cpu))


def read_floor(data: bytes) -> None:
    """What any checked read of a history's bytes does at least: a CRC-32 and a JSON decode
    of every line, nothing else (the floor of W4, whose replay reads every line so)."""
    for line in data.splitlines():
        zlib.crc32(line)
        orjson.loads(line)


def cpu_seconds() -> float:
    """User + system CPU of this process so far, every thread's."""
    times = os.times()
    return times.user + times.system


# -- the disk's floors ----------------------------------------------------------------------


def append_fsync_floor(folder: Path, n: int = 2000) -> float:
    """Seconds per durable append of one step's bytes the plain way: write at the end, fsync
    (how wfrun wrote before it reserved space)."""
    path = folder / "floor-append.bench"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
    try:
        start = time.perf_counter()
        for _ in range(n):
            os.write(fd, STEP)
            os.fsync(fd)
        return (time.perf_counter() - start) / n
    finally:
        os.close(fd)
        path.unlink()


def preallocated_floor(folder: Path, n: int = 2000) -> float:
    """Seconds per durable append of one step's bytes into reserved space: pwrite in place,
    fdatasync (how wfrun writes now, see `wfrun.local.store`)."""
    path = folder / "floor-preallocated.bench"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        start = time.perf_counter()
        size = allocated = 0
        for _ in range(n):
            if size + len(STEP) > allocated:
                os.posix_fallocate(fd, allocated, CHUNK)
                allocated += CHUNK
            os.pwrite(fd, STEP, size)
            size += len(STEP)
            os.fdatasync(fd)
        os.ftruncate(fd, size)
        return (time.perf_counter() - start) / n
    finally:
        os.close(fd)
        path.unlink()


def concurrent_floor(folder: Path, threads: int = 8, n: int = 400) -> float:
    """Durable appends per second when ``threads`` threads each append + fsync a file of their
    own at once: what the disk and the journal allow when syncs overlap and are merged."""
    paths = [folder / f"floor-thread{i}.bench" for i in range(threads)]
    fds = [os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600) for path in paths]

    def work(fd: int) -> None:
        for _ in range(n):
            os.write(fd, STEP)
            os.fsync(fd)

    workers = [threading.Thread(target=work, args=(fd,)) for fd in fds]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - start
    for fd, path in zip(fds, paths, strict=True):
        os.close(fd)
        path.unlink()
    return threads * n / elapsed


# -- the least asyncio engine ---------------------------------------------------------------
#
# What any engine built on asyncio pays per durable step here, CPU included: a task per
# activity, its three events as checksummed JSON lines written into reserved space, a sync.
# No determinism guard, no validation, no timeouts, retries, messages or recovery. wfrun's
# figures next to these say what its own work costs.

Sync = Callable[[int], Awaitable[object]]


def _signed(event: dict[str, object]) -> bytes:
    return with_checksum(orjson.dumps(event)) + b"\n"


async def _noop(i: int) -> int:
    return i


async def _fdatasync(fd: int) -> None:
    os.fdatasync(fd)


async def _least_steps(fd: int, n: int, sync: Sync = _fdatasync, size: int = 0) -> int:
    """``n`` steps written from ``size`` on, each synced by ``sync``; returns the new size."""
    for i in range(n):
        ts = datetime.now(UTC).isoformat()
        seq = i + 1
        lines = _signed(
            {"id": 3 * i + 2, "ts": ts, "type": "ActivityScheduled", "seq": seq, "input": i}
        ) + _signed({"id": 3 * i + 3, "ts": ts, "type": "ActivityStarted", "seq": seq})
        os.pwrite(fd, lines, size)
        size += len(lines)
        result = await asyncio.get_running_loop().create_task(_noop(i))
        ts = datetime.now(UTC).isoformat()
        line = _signed(
            {"id": 3 * i + 4, "ts": ts, "type": "ActivityCompleted", "seq": seq, "result": result}
        )
        os.pwrite(fd, line, size)
        size += len(line)
        await sync(fd)
    return size


def asyncio_step_floor(folder: Path, n: int = 1000) -> float:
    """Seconds per sequential step of the least asyncio engine (see above): one run, each
    step fdatasync'd in place before the next."""
    path = folder / "floor-asyncio.bench"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.posix_fallocate(fd, 0, CHUNK)
        start = time.perf_counter()
        asyncio.run(_least_steps(fd, n))
        return (time.perf_counter() - start) / n
    finally:
        os.close(fd)
        path.unlink()


class _TurnSyncs:
    """Every sync asked for in one turn of the loop, in one ``io_submit`` off the loop thread
    (`wfrun.local.aio`; threads where the kernel refuses it), as wfrun syncs a crowd."""

    def __init__(self, folder_fd: int) -> None:
        self._loop = asyncio.get_running_loop()
        self._folder_fd = folder_fd
        self._waiting: list[tuple[int, asyncio.Future[None]]] = []
        self._created = False

    def sync(self, fd: int, *, created: bool = False) -> asyncio.Future[None]:
        done = self._loop.create_future()
        if not self._waiting:
            self._loop.call_soon(self._submit)
        self._waiting.append((fd, done))
        self._created |= created
        return done

    def _submit(self) -> None:
        waiting, self._waiting = self._waiting, []
        requests = [(fd, True) for fd, _ in waiting]
        if self._created:  # a new file's name is durable with its folder
            requests.append((self._folder_fd, False))
            self._created = False

        def work() -> None:
            if fsync_all(requests) is None:
                with ThreadPoolExecutor(8) as pool:
                    list(pool.map(os.fsync, (fd for fd, _ in requests)))

        def settle(_: object) -> None:
            for _, done in waiting:
                done.set_result(None)

        self._loop.run_in_executor(None, work).add_done_callback(settle)


async def _least_run(folder: Path, syncs: _TurnSyncs, name: str, steps: int) -> None:
    fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.posix_fallocate(fd, 0, 64 * 1024)
        ts = datetime.now(UTC).isoformat()
        line = _signed({"id": 1, "ts": ts, "type": "WorkflowStarted", "input": steps})
        os.pwrite(fd, line, 0)
        await syncs.sync(fd, created=True)
        size = await _least_steps(fd, steps, syncs.sync, len(line))
        ts = datetime.now(UTC).isoformat()
        line = _signed({"id": 3 * steps + 2, "ts": ts, "type": "WorkflowCompleted"})
        os.pwrite(fd, line, size)
        await syncs.sync(fd)
        os.ftruncate(fd, size + len(line))
    finally:
        os.close(fd)


async def _least_crowd(folder: Path, runs: int, steps: int) -> None:
    folder_fd = os.open(folder, os.O_RDONLY)
    try:
        syncs = _TurnSyncs(folder_fd)
        await asyncio.gather(*(_least_run(folder, syncs, f"r{k}", steps) for k in range(runs)))
    finally:
        os.close(folder_fd)


def asyncio_crowd_floor(folder: Path, runs: int = 200, steps: int = 10) -> float:
    """Runs per second of the least asyncio engine (see above) when ``runs`` runs of ``steps``
    steps start at once in one process (W3): each run creates its file (its name made durable
    with the folder), syncs its start, each step and its end, and every sync of a turn of the
    loop goes to the kernel in one submission."""
    crowd = folder / "floor-crowd.bench"
    crowd.mkdir()
    try:
        start = time.perf_counter()
        asyncio.run(_least_crowd(crowd, runs, steps))
        return runs / (time.perf_counter() - start)
    finally:
        shutil.rmtree(crowd)


@dataclass(frozen=True)
class Floors:
    """The disk's limits: seconds per one-at-a-time durable append, two ways, and durable
    appends per second when eight files are synced at once; and the least asyncio engine's
    seconds per step (`asyncio_step_floor`) and runs per second in a crowd
    (`asyncio_crowd_floor`)."""

    append_fsync: float
    preallocated: float
    concurrent: float
    asyncio_step: float
    #: Runs per second of `asyncio_crowd_floor` (200 runs of 10 steps).
    asyncio_crowd: float


def floors(folder: Path, repeat: int = 3) -> Floors:
    return Floors(
        statistics.median(append_fsync_floor(folder) for _ in range(repeat)),
        statistics.median(preallocated_floor(folder) for _ in range(repeat)),
        statistics.median(concurrent_floor(folder) for _ in range(repeat)),
        statistics.median(asyncio_step_floor(folder) for _ in range(repeat)),
        statistics.median(asyncio_crowd_floor(folder) for _ in range(repeat)),
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


def cache_bytecode_as_installed() -> str:
    """Let the commands measured cache wfrun's bytecode, as a user's Python does; say how.

    ``PYTHONDONTWRITEBYTECODE`` (set on some machines, this one included) makes every command
    compile wfrun's own modules from source again (~0.1 s each time here), while ``pip``
    compiled its dependencies' at install: the reading commands and ``import wfrun`` would be
    timed against a handicap no user has. Dropped for the children, and the cache filled once.
    """
    was_off = os.environ.pop("PYTHONDONTWRITEBYTECODE", None) is not None
    warm = "import wfrun.cli.app, wfrun.local.engine, wfrun.local.stream, wfrun.local.listing"
    subprocess.run([sys.executable, "-c", warm], check=True)
    return "bytecode cached (PYTHONDONTWRITEBYTECODE dropped)" if was_off else "bytecode cached"


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
