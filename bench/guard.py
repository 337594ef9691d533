"""What the determinism guard costs per workflow step, on this machine.

    python bench/guard.py [--steps 3000] [--repeat 7]

The same workflow (one no-op activity per step) is defined twice, with the guard on and with
it off (``determinism_warnings=False``), and run both ways in this process:

- replay: ``replay_only`` of a recorded run's events (already read), the guard watching every
  replayed step as ``wfrun replay`` does;
- live: ``execute_workflow`` (each step scheduled, run and fsync'd).

The figure is user CPU time (``getrusage``: the guard spends no system time, and fsync's is
only noise here) per step, guard on minus guard off: the floor is the guard-off run of the
same workload, measured in the same run. Medians of --repeat
runs, each run alternating on and off so that noise from the shared machine hits both.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from workloads import Sequential, Unguarded

import wfrun as workflows
from wfrun.local.engine import replay_only
from wfrun.local.store import RunStore


def cpu(work: Callable[..., object], *args: object) -> float:
    """User CPU seconds of ``work(*args)``: the guard spends no system time, fsync much."""
    start = resource.getrusage(resource.RUSAGE_SELF).ru_utime
    work(*args)
    return resource.getrusage(resource.RUSAGE_SELF).ru_utime - start


def live(flow: type, steps: int, run_id: str) -> None:
    asyncio.run(workflows.execute_workflow(flow, {"steps": steps}, execution_id=run_id))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    steps = args.steps
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        os.environ["WFRUN_HOME"] = tmp
        store = RunStore(Path(tmp))
        times: dict[str, list[float]] = {"live on": [], "live off": []}
        times.update({"replay on": [], "replay off": []})
        for n in range(args.repeat):
            for name, flow in (("on", Sequential), ("off", Unguarded)):
                times[f"live {name}"].append(cpu(live, flow, steps, f"{name}-{n}"))
        for _ in range(args.repeat):
            for name, flow in (("on", Sequential), ("off", Unguarded)):
                definition = flow.__wfrun_workflow__  # type: ignore[attr-defined]
                events = store.read(f"{name}-0").events
                times[f"replay {name}"].append(cpu(replay_only, definition, events))
    version = sys.version.split()[0]
    print(f"python {version}, {steps} steps, user CPU time, medians of {args.repeat} runs")
    for what in ("replay", "live"):
        on = statistics.median(times[f"{what} on"]) / steps * 1e6
        off = statistics.median(times[f"{what} off"]) / steps * 1e6
        print(
            f"{what:6}: guard on {on:6.1f} µs/step, off (floor) {off:6.1f} µs/step: "
            f"guard costs {on - off:5.1f} µs/step  (on runs: "
            f"{', '.join(f'{t / steps * 1e6:.0f}' for t in times[f'{what} on'])}; off: "
            f"{', '.join(f'{t / steps * 1e6:.0f}' for t in times[f'{what} off'])})"
        )


if __name__ == "__main__":
    main()
