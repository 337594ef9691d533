"""Sequential durable steps per second, and replay speed, on this machine.

    python bench/sequential_steps.py [--steps 2000] [--repeat 5]

Each step is one no-op activity awaited by the workflow: scheduled, started, completed and
fsync'd before the workflow moves on, exactly as in a real run. "resume" is what a user waits
for after a crash at the very end: read and check the whole history, replay the workflow
against it, and record its completion. "replay" is ``wfrun replay`` (the same, with the
determinism guard on and nothing written). Figures are medians of --repeat runs; the fsync
floor (one write + fsync of a history-sized line) is measured in the same process, so the
ratio says how close to the disk's limit the engine is.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import wfrun as workflows
from wfrun.local.engine import replay_only
from wfrun.local.store import RunStore


@workflows.activity
async def noop(i: int) -> int:
    return i


@workflows.workflow.define(name="bench_sequential")
class Sequential:
    @workflows.workflow.entrypoint
    async def run(self, steps: int) -> int:
        total = 0
        for i in range(steps):
            total += await noop(i)
        return total


def fsync_floor(directory: Path, n: int = 2000) -> float:
    """Seconds per durable append of one event line."""
    line = b'{"id":3,"ts":"2026-11-24T10:00:00.000000Z","type":"ActivityCompleted","seq":1}\n'
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        home = Path(tmp)
        live, resume, replay = [], [], []
        for i in range(args.repeat):
            start = time.perf_counter()
            result = asyncio.run(
                workflows.execute_workflow(
                    Sequential, {"steps": args.steps}, execution_id=f"seq{i}", home=home
                )
            )
            live.append(time.perf_counter() - start)
            assert result == sum(range(args.steps))
            history = RunStore(home).read(f"seq{i}")
            definition = Sequential.__wfrun_workflow__  # type: ignore[attr-defined]
            start = time.perf_counter()
            replay_only(definition, history.events)
            replay.append(time.perf_counter() - start)
            path = RunStore(home).path(f"seq{i}")  # as if it crashed before its last event
            path.write_bytes(b"".join(path.read_bytes().splitlines(keepends=True)[:-1]))
            start = time.perf_counter()
            asyncio.run(workflows.resume_workflow(f"seq{i}", home=home))
            resume.append(time.perf_counter() - start)
        floor = statistics.median(fsync_floor(home) for _ in range(3))
        events = len(history.events)
    steps_per_s = args.steps / statistics.median(live)
    replay_per_s = args.steps / statistics.median(replay)
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores, "
        f"{args.steps} steps x {args.repeat} runs"
    )
    print(
        f"live:    {steps_per_s:8.0f} steps/s   (median {statistics.median(live):.3f} s per run; "
        f"runs: {', '.join(f'{t:.3f}' for t in live)})"
    )
    print(
        f"fsync floor: {1 / floor:8.0f} appends/s ({floor * 1e6:.0f} us each): "
        f"wfrun reaches {steps_per_s * floor:.0%} of it"
    )
    print(
        f"resume:  {args.steps / statistics.median(resume):8.0f} steps/s   (the whole "
        f"{events}-event history read, checked and replayed: median "
        f"{statistics.median(resume) * 1000:.1f} ms)"
    )
    print(
        f"replay:  {replay_per_s:8.0f} steps/s   (wfrun replay, guard on: median "
        f"{statistics.median(replay) * 1000:.1f} ms)"
    )
    print(
        f"vs DBOS on SQLite (~400 steps/s): {steps_per_s / 400:.1f}x; "
        f"vs Temporal dev server (~20/s): {steps_per_s / 20:.0f}x"
    )


if __name__ == "__main__":
    main()
