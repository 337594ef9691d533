"""Sequential durable steps per second, and replay speed, on this machine.

    python bench/sequential_steps.py [--steps 2000] [--repeat 5]

Each step is one no-op activity awaited by the workflow: scheduled, started, completed and
fsync'd before the workflow moves on, exactly as in a real run. "resume" is what a user waits
for after a crash at the very end: read and check the whole history, replay the workflow
against it, and record its completion. "replay" is ``wfrun replay`` (the same, with the
determinism guard on and nothing written). Figures are medians of --repeat runs. Two floors
are measured in the same process, between the runs, so the ratios say how close to the disk's
limit the engine is: the fsync floor (one append of a step's bytes + fsync, how wfrun wrote
before it reserved space) and the preallocated floor (the same bytes written in place in space
reserved by posix_fallocate, + fdatasync: how wfrun writes now, see `wfrun.local.store`).
A third, the least asyncio step (`common.asyncio_step_floor`: a task per activity, three
checksummed lines, one fdatasync and nothing else), says what any asyncio engine pays per step
here, its CPU included: the rest of W1's time is wfrun's own work.
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

from common import append_fsync_floor as fsync_floor
from common import asyncio_step_floor, preallocated_floor
from workloads import Sequential

import wfrun as workflows
from wfrun.local.engine import replay_only
from wfrun.local.store import RunStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        home = Path(tmp)
        live, resume, replay, floors, preallocated, least = [], [], [], [], [], []
        for i in range(args.repeat):
            # Each floor once per run, beside it: the machine's noise falls on both alike.
            floors.append(fsync_floor(home))
            preallocated.append(preallocated_floor(home))
            least.append(asyncio_step_floor(home))
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
        floor = statistics.median(floors)
        prealloc = statistics.median(preallocated)
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
        f"preallocated floor: {1 / prealloc:8.0f} appends/s ({prealloc * 1e6:.0f} us each, "
        f"fallocate + pwrite + fdatasync): wfrun reaches {steps_per_s * prealloc:.0%} of it"
    )
    least_step = statistics.median(least)
    print(
        f"least asyncio step: {1 / least_step:8.0f} steps/s ({least_step * 1e6:.0f} us each, a "
        f"task, 3 lines, fdatasync): wfrun reaches {steps_per_s * least_step:.0%} of it"
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
