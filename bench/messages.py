"""How long a signal takes to reach a live run, and what each message costs, on this machine.

    python bench/messages.py [--repeat 5] [--samples 16] [--cli-samples 5] [--messages 200]

Each repetition starts a run in its own process (``wfrun start``), which stays live waiting for
signals, as a run waiting for a human does; this process then sends it messages:

- latency, API: ``await wfrun.signal_workflow(...)``, one signal at a time, at a random moment
  of the live run's inbox poll (so the poll alone adds 0 to `POLL`, half of it on average).
  "recorded" is when the ``SignalReceived`` line is in the history (the live run writes and
  fsyncs it in one step; a 1 ms watcher sees it), "returned" is when the call returns (the
  sender reads the history every 50 ms until it sees the record, so this one comes in steps);
- latency, CLI: ``wfrun signal`` as a subprocess, the same way (process start included; its
  floor, ``python -c "import wfrun.cli"``, is measured beside it);
- cost: ``--messages`` signals sent back to back without waiting (``resume=False``), then the
  time until the live run has recorded them all: messages/s end to end, ms per API call, and,
  for the floors, an inbox post alone and one write + fsync of a line of the same size.

Figures are medians of the repetitions (each repetition's own figure is the median of its
samples); every floor is measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import wfrun as workflows
from wfrun.local.inbox import POLL, Inbox
from wfrun.local.store import RunStore

TARGET = f"{Path(__file__).resolve()}:Listener"
WFRUN = (sys.executable, "-m", "wfrun")


@workflows.activity
def announce(marker: str) -> None:
    """Says the run is live: the bench sends nothing before."""
    Path(marker).touch()


@workflows.workflow.define(name="bench_listener")
class Listener:
    """Counts pings until ``stop``; live all along (its timeout is within --max-wait)."""

    def __init__(self) -> None:
        self.pings = 0
        self.stopped = False

    @workflows.workflow.entrypoint
    async def run(self, marker: str) -> int:
        await announce(marker)
        await workflows.workflow.wait_condition(lambda: self.stopped, timeout=3600)
        return self.pings

    @workflows.workflow.signal
    def ping(self, n: int) -> None:
        self.pings += 1

    @workflows.workflow.signal
    def stop(self) -> None:
        self.stopped = True


class Watch:
    """Notes when each ``SignalReceived`` line appears in a history file (1 ms resolution)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self.seen: list[float] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        offset, pending = 0, b""
        while not self._done.is_set():
            size = os.stat(self._path).st_size
            if size > offset:
                with open(self._path, "rb") as file:
                    file.seek(offset)
                    pending += file.read(size - offset)
                offset = size
                *lines, pending = pending.split(b"\n")
                now = time.perf_counter()
                self.seen.extend(now for line in lines if b'"type":"SignalReceived"' in line)
            time.sleep(0.001)

    def wait_for(self, count: int, timeout: float = 30.0) -> float:
        """When the ``count``-th signal was recorded."""
        deadline = time.perf_counter() + timeout
        while len(self.seen) < count:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"only {len(self.seen)} of {count} signals were recorded")
            time.sleep(0.001)
        return self.seen[count - 1]

    def close(self) -> None:
        self._done.set()
        self._thread.join()


def start_live_run(home: Path, run_id: str) -> subprocess.Popen[bytes]:
    marker = home / f"{run_id}.live"
    options = ["--run-id", run_id, "--max-wait", "7200", "--home", str(home), "--quiet"]
    process = subprocess.Popen(
        [*WFRUN, "start", TARGET, "--arg", f"marker={marker}", *options],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not marker.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the live run did not start (exit {process.returncode})")
        time.sleep(0.01)
    return process


def one_repetition(
    home: Path, run_id: str, samples: int, cli_samples: int, messages: int
) -> dict[str, float]:
    """Latencies and costs against one live run; the median of each one's samples."""
    process = start_live_run(home, run_id)
    watch = Watch(RunStore(home).path(run_id))
    sent = 0

    def at_a_random_moment() -> None:
        time.sleep(random.uniform(0, POLL))  # else every send meets the poll at the same phase

    async def api() -> tuple[list[float], list[float]]:
        nonlocal sent
        recorded, returned = [], []
        for _ in range(samples):
            at_a_random_moment()
            start = time.perf_counter()
            await workflows.signal_workflow(run_id, "ping", {"n": sent}, home=home)
            returned.append(time.perf_counter() - start)
            sent += 1
            recorded.append(watch.wait_for(sent) - start)
        return recorded, returned

    def cli() -> list[float]:
        nonlocal sent
        recorded = []
        for _ in range(cli_samples):
            at_a_random_moment()
            start = time.perf_counter()
            subprocess.run(
                [*WFRUN, "signal", run_id, "ping", f'{{"n": {sent}}}', "--home", str(home)],
                check=True,
                capture_output=True,
            )
            sent += 1
            recorded.append(watch.wait_for(sent) - start)
        return recorded

    async def burst() -> tuple[float, float]:
        nonlocal sent
        start = time.perf_counter()
        for _ in range(messages):
            await workflows.signal_workflow(run_id, "ping", {"n": sent}, home=home, resume=False)
            sent += 1
        posted = time.perf_counter() - start
        return posted, watch.wait_for(sent) - start

    try:
        api_recorded, api_returned = asyncio.run(api())
        cli_recorded = cli()
        posted, all_recorded = asyncio.run(burst())
        asyncio.run(workflows.signal_workflow(run_id, "stop", home=home))
        process.wait(timeout=60)
    finally:
        watch.close()
        if process.poll() is None:
            process.kill()
            process.wait()
    return {
        "api_recorded": statistics.median(api_recorded),
        "api_returned": statistics.median(api_returned),
        "cli_recorded": statistics.median(cli_recorded),
        "burst_per_s": messages / all_recorded,
        "api_call": posted / messages,
    }


def process_start() -> float:
    """Seconds to start Python and import the command line: the floor of ``wfrun signal``."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import wfrun.cli"], check=True)
    return time.perf_counter() - start


def inbox_post(home: Path, n: int) -> float:
    """Seconds per `Inbox.post` (flock, write, fsync) to an inbox of its own."""
    inbox = Inbox(RunStore(home), "bench-post-only")
    start = time.perf_counter()
    for i in range(n):
        inbox.post("signal", "ping", b'{"n": %d}' % i, "2026-11-24T10:00:00.000000Z")
    return (time.perf_counter() - start) / n


def fsync_floor(directory: Path, n: int) -> float:
    """Seconds per write + fsync of one inbox-sized line."""
    line = b'{"id":"0123456789abcdef","ts":"2026-11-24T10:00:00.000000Z","kind":"signal",'
    line += b'"name":"ping","input":{"n":1},"crc":"00000000"}\n'
    path = directory / "fsync.bench"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    start = time.perf_counter()
    for _ in range(n):
        os.write(fd, line)
        os.fsync(fd)
    elapsed = time.perf_counter() - start
    os.close(fd)
    path.unlink()
    return elapsed / n


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--samples", type=int, default=16, help="API latencies per repetition")
    parser.add_argument("--cli-samples", type=int, default=5, help="CLI latencies per repetition")
    parser.add_argument("--messages", type=int, default=200, help="signals in each burst")
    args = parser.parse_args()
    runs: list[dict[str, float]] = []
    starts, posts, floors = [], [], []
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        home = Path(tmp)
        for i in range(args.repeat):
            runs.append(
                one_repetition(home, f"live{i}", args.samples, args.cli_samples, args.messages)
            )
            starts.append(process_start())
            posts.append(inbox_post(home, args.messages))
            floors.append(fsync_floor(home, args.messages))

    def row(label: str, values: list[float], unit: str, scale: float = 1000.0) -> None:
        each = ", ".join(f"{v * scale:.1f}" for v in values)
        print(f"{label:<42} {statistics.median(values) * scale:9.1f} {unit:<6} ({each})")

    def column(key: str) -> list[float]:
        return [run[key] for run in runs]

    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {args.repeat} runs, "
        f"{args.samples} API and {args.cli_samples} CLI latencies and a {args.messages}-message "
        "burst per run; "
        f"the live run polls its inbox every {POLL * 1000:.0f} ms"
    )
    print(f"{'':<42} {'median':>9} {'unit':<6} (each run)")
    print("signal to a live run, from Python")
    row("  until SignalReceived is recorded", column("api_recorded"), "ms")
    row("  until signal_workflow returns", column("api_returned"), "ms")
    print("signal to a live run, `wfrun signal` process")
    row("  until SignalReceived is recorded", column("cli_recorded"), "ms")
    row("  floor: python + import wfrun.cli", starts, "ms")
    print(f"{args.messages} signals back to back to a live run")
    row("  throughput, sent to all recorded", column("burst_per_s"), "msg/s", 1)
    row("  per message, end to end", [1 / r for r in column("burst_per_s")], "ms")
    row("  per signal_workflow(resume=False) call", column("api_call"), "ms")
    row("  floor: inbox post alone", posts, "ms")
    row("  floor: write + fsync of one line", floors, "ms")


if __name__ == "__main__":
    main()
