"""Replay speed and the memory of `resume`/`replay` against history length, on this machine.

    python bench/replay.py [--steps 5000] [--events 100000] [--repeat 5]

Histories are written directly (one no-op activity per step: scheduled, started, completed),
exactly as a live run writes them, so that building a 100,000-event one takes a second.

- "in-process": ``wfrun.testing.replay`` of the --steps history file (read, check, replay,
  guard on), and ``replay_only`` of its events already read (as bench/sequential_steps.py);
  the floor is what any checked read must do at least: a CRC-32 and a JSON decode per line.
- "wfrun replay": the command line, in a subprocess, next to the same command on a one-step
  history (the floor: interpreter start, imports, loading the workflow).
- peak RSS of ``wfrun replay`` and ``wfrun resume`` (the latter on the --events history
  without its last event, as after a crash) in a subprocess, next to the same on a one-step
  history (the floor): flat in history length means the two are close.

Figures are medians of --repeat runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import read_floor, run_command, sequential_history, wfrun_command
from workloads import Sequential

from wfrun.local.engine import replay_only
from wfrun.local.store import RunStore
from wfrun.testing import replay


def write_history(path: Path, steps: int, *, finished: bool = True) -> int:
    """A run of ``steps`` no-op activities, as a live run records it; returns its events."""
    data = sequential_history(path.stem, steps, finished=finished)
    path.write_bytes(data)
    return data.count(b"\n")


def child_run(command: list[str]) -> tuple[float, float]:
    """Seconds and peak RSS (MB) of ``command`` in a fresh process (its own children only)."""
    measured = run_command(command)
    return measured.seconds, measured.peak_rss_mb


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    definition = Sequential.__wfrun_workflow__  # type: ignore[attr-defined]
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        home = Path(tmp)
        runs = home / "runs"
        runs.mkdir()
        write_history(runs / "small.jsonl", args.steps)
        write_history(runs / "one.jsonl", 1)
        big_steps = (args.events - 1) // 3
        write_history(runs / "big.jsonl", big_steps)
        big_events = write_history(home / "big-resume.jsonl", big_steps, finished=False)
        write_history(home / "one-unfinished.jsonl", 1, finished=False)

        in_process, parsed, floor = [], [], []
        events = RunStore(home).read("small").events
        data = (runs / "small.jsonl").read_bytes()
        for _ in range(args.repeat):
            start = time.perf_counter()
            read_floor(data)
            floor.append(time.perf_counter() - start)
            start = time.perf_counter()
            replay(runs / "small.jsonl", Sequential)
            in_process.append(time.perf_counter() - start)
            start = time.perf_counter()
            replay_only(definition, events)
            parsed.append(time.perf_counter() - start)
        del events

        cli, cli_floor = [], []
        rss: dict[str, list[float]] = {"replay": [], "replay1": [], "resume": [], "resume1": []}
        for _ in range(args.repeat):
            seconds, _ = child_run(wfrun_command("replay", "small", "--home", tmp))
            cli.append(seconds)
            seconds, _ = child_run(wfrun_command("replay", "one", "--home", tmp))
            cli_floor.append(seconds)
            rss["replay"].append(child_run(wfrun_command("replay", "big", "--home", tmp))[1])
            rss["replay1"].append(child_run(wfrun_command("replay", "one", "--home", tmp))[1])
        for _ in range(args.repeat):
            shutil.copy(home / "big-resume.jsonl", runs / "big-resume.jsonl")
            shutil.copy(home / "one-unfinished.jsonl", runs / "one-unfinished.jsonl")
            command = wfrun_command("resume", "big-resume", "--home", tmp, "--quiet")
            rss["resume"].append(child_run(command)[1])
            command = wfrun_command("resume", "one-unfinished", "--home", tmp, "--quiet")
            rss["resume1"].append(child_run(command)[1])

    steps = args.steps
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {steps} steps "
        f"({3 * steps + 2} events), medians of {args.repeat} runs"
    )
    print(
        f"in-process replay (testing.replay: read, check, replay): "
        f"{steps / median(in_process):8.0f} steps/s  ({median(in_process) * 1000:.1f} ms; "
        f"runs: {', '.join(f'{t * 1000:.0f}' for t in in_process)} ms)"
    )
    print(
        f"floor (crc32 and orjson.loads of every line, nothing else): "
        f"{steps / median(floor):8.0f} steps/s  ({median(floor) * 1000:.1f} ms)"
    )
    print(
        f"replay_only (events already read):                       "
        f"{steps / median(parsed):8.0f} steps/s  ({median(parsed) * 1000:.1f} ms)"
    )
    replaying = median(cli) - median(cli_floor)
    print(
        f"wfrun replay: {median(cli) * 1000:.0f} ms, floor (one-step history) "
        f"{median(cli_floor) * 1000:.0f} ms: {steps / median(cli):.0f} steps/s overall, "
        f"{steps / replaying if replaying > 0 else float('inf'):.0f} steps/s past the floor"
    )
    for what in ("replay", "resume"):
        print(
            f"peak RSS of wfrun {what}: {median(rss[what]):6.1f} MB at {big_events:,} events, "
            f"floor {median(rss[what + '1']):6.1f} MB at 4 events "
            f"({(median(rss[what]) - median(rss[what + '1'])) * 1024 / big_events:.2f} KB "
            f"per event)"
        )


if __name__ == "__main__":
    main()
