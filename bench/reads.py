"""How fast the reading commands are: ``history`` of a long run, and ``list`` of many runs.

    python bench/reads.py [--events 100000] [--runs 10000] [--repeat 5] [--terminal]
                          [--base DIR]

Sets up, in a temporary home, one run of --events events (one no-op activity after another:
scheduled, started, completed) and --runs small completed runs, written directly with the
store's serializer (quick to set up; the same bytes a live run writes). Then runs, each as a
user runs it, in a process of its own:

- ``wfrun history RUN > /dev/null`` (plain rows: stdout is no terminal),
- ``wfrun history RUN --json > /dev/null``,
- the same two with ``--follow`` (the run is completed: it reads what there is, then stops),
- ``wfrun list > /dev/null`` and ``wfrun list --json > /dev/null``,
- with --terminal, ``history RUN`` and ``list`` on a pty (120 columns), drawn and dropped,

``list`` runs without its index (``runs/.list-index``, deleted before each run: every file
parsed) and with it (built by the run before: only files changed since are parsed); the
files are more than two seconds old by then, so that the index may remember them. Each case
is timed with its wall time, its CPU time (user + system: steadier than wall time on a
shared, loaded machine) and its peak RSS (``wait4``'s of that child alone; it includes the
few MB the forked benchmark held before the ``exec``). Figures are medians of --repeat runs,
printed next to the floors measured in the same run: ``cat`` of the history (reading its
bytes), ``python -m wfrun --version`` (starting), ``wfrun list`` of an empty home (starting
and parsing a command's options: what every reading command pays before it reads), and for
``list`` opening and reading both ends of every run file in a plain Python loop.

With ``--base DIR`` (a source tree of wfrun, e.g. ``git archive main | tar -x -C DIR``) every
case also runs on that tree, interleaved run by run: a before/after under the same load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from wfrun.events import Event, WorkflowStarted

TS = "2026-11-28T10:00:00.000000Z"


def _started(run_id: str) -> WorkflowStarted:
    from wfrun.events import FORMAT_VERSION, WorkflowStarted

    return WorkflowStarted(
        id=1,
        ts=TS,
        format=FORMAT_VERSION,
        run_id=run_id,
        workflow="bench_reads",
        target="bench/reads.py:Reads",
        input={"steps": 1},
        wfrun_version="bench",
        seed=1,
        cwd="/tmp",
        max_payload=2 * 1024 * 1024,
    )


def _events(run_id: str, count: int) -> list[Event]:
    """A completed run of ``count`` events (count - 2 must be a multiple of 3)."""
    from wfrun.events import (
        ActivityCompleted,
        ActivityScheduled,
        ActivityStarted,
        WorkflowCompleted,
    )

    events: list[Event] = [_started(run_id)]
    seq = 0
    while len(events) < count - 1:
        seq += 1
        n = len(events) + 1
        events += [
            ActivityScheduled(id=n, ts=TS, seq=seq, name="noop", input={"i": seq}),
            ActivityStarted(id=n + 1, ts=TS, seq=seq, attempt=1),
            ActivityCompleted(id=n + 2, ts=TS, seq=seq, attempt=1, duration=0.0001, result=seq),
        ]
    events.append(WorkflowCompleted(id=len(events) + 1, ts=TS, result=seq))
    return events


def _write_run(runs: Path, run_id: str, count: int) -> int:
    from wfrun.events import serialize

    data = b"".join(serialize(event) + b"\n" for event in _events(run_id, count))
    path = runs / f"{run_id}.jsonl"
    path.write_bytes(data)
    path.chmod(0o600)
    return len(data)


def setup(home: Path, events: int, runs: int) -> int:
    """The home: run ``long`` of ``events`` events, and ``runs`` runs of 5 events."""
    folder = home / "runs"
    folder.mkdir(mode=0o700, parents=True)
    size = _write_run(folder, "long", events - (events - 2) % 3)
    for i in range(runs):
        _write_run(folder, f"r{i:06d}", 5)
    return size


class Sample(NamedTuple):
    """One command's run: wall seconds, CPU seconds (user + system) and peak RSS in MB."""

    wall: float
    cpu: float
    rss: float


def _waited(process: subprocess.Popen[bytes], start: float, argv: list[str]) -> Sample:
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({process.returncode})")
    return Sample(elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def piped(argv: list[str], env: dict[str, str]) -> Sample:
    """One command, its stdout to /dev/null, measured for that child alone (wait4)."""
    with open(os.devnull, "wb") as sink:
        start = time.perf_counter()
        process = subprocess.Popen(argv, stdout=sink, stderr=subprocess.DEVNULL, env=env)
        return _waited(process, start, argv)


def on_a_terminal(argv: list[str], env: dict[str, str]) -> Sample:
    """One command on a terminal (a pty, 120 columns); what it draws is read and dropped."""
    import pty

    main_fd, child_fd = pty.openpty()
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdin=child_fd, stdout=child_fd, stderr=child_fd, env=env)
    os.close(child_fd)
    while True:
        try:
            if not os.read(main_fd, 1 << 16):
                break
        except OSError:  # the terminal closed: the process ended
            break
    os.close(main_fd)
    return _waited(process, start, argv)


def list_floor(runs: Path) -> float:
    """Open every run file, read its first 4 KiB and its last 4 KiB: what ``list`` must do."""
    start = time.perf_counter()
    for name in os.listdir(runs):
        fd = os.open(runs / name, os.O_RDONLY)
        size = os.fstat(fd).st_size
        os.pread(fd, 4096, 0)
        os.pread(fd, 4096, max(0, size - 4096))
        os.close(fd)
    return time.perf_counter() - start


def report(label: str, samples: list[Sample]) -> str:
    wall = statistics.median(s.wall for s in samples)
    cpu = statistics.median(s.cpu for s in samples)
    rss = statistics.median(s.rss for s in samples)
    each = ", ".join(f"{s.wall:.2f}" for s in samples)
    return f"{label:44s} {wall:7.3f} s wall {cpu:7.3f} s cpu {rss:5.0f} MB   ({each})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--terminal", action="store_true", help="also time both on a pty")
    parser.add_argument(
        "--base",
        metavar="DIR",
        help="a source tree of wfrun to compare with (e.g. `git archive` of main), run "
        "interleaved with this one so that both meet the same load",
    )
    parser.add_argument("--setup", metavar="HOME", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.setup:  # in a child: this process stays small, and so do the ones it forks
        setup(Path(args.setup), args.events, args.runs)
        return
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        home = Path(tmp) / "home"
        start = time.perf_counter()
        setup_argv = [sys.executable, __file__, "--setup", str(home)]
        setup_argv += ["--events", str(args.events), "--runs", str(args.runs)]
        subprocess.run(setup_argv, check=True)
        set_up = time.perf_counter()
        path = home / "runs" / "long.jsonl"
        print(
            f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load "
            f"{os.getloadavg()[0]:.1f}; set up {args.events:,} events "
            f"({path.stat().st_size / 1e6:.1f} MB) and {args.runs:,} runs in "
            f"{time.perf_counter() - start:.1f} s; medians of {args.repeat} runs"
        )
        env = {**os.environ, "WFRUN_HOME": str(home), "COLUMNS": "120"}
        trees = {"": env}
        if args.base:
            trees = {"before: ": {**env, "PYTHONPATH": args.base}, "after:  ": env}
        wfrun = [sys.executable, "-m", "wfrun"]
        empty = Path(tmp) / "empty"
        floors = [
            ("floor: cat the history", ["cat", str(path)]),
            ("floor: python -m wfrun --version", [*wfrun, "--version"]),
            # What a reading command costs before it reads anything: starting, parsing its
            # options (typer builds a pydantic adapter per option), finding nothing.
            ("floor: wfrun list of an empty home", [*wfrun, "list", "--home", str(empty)]),
        ]
        for label, argv in floors:
            print(report(label, [piped(argv, env) for _ in range(args.repeat)]))
        index = home / "runs" / ".list-index"

        def no_index() -> None:
            index.unlink(missing_ok=True)

        def keep() -> None:
            pass

        cases = [
            ("history RUN (piped)", [*wfrun, "history", "long"], piped, keep),
            ("history RUN --json (piped)", [*wfrun, "history", "long", "--json"], piped, keep),
            # A completed run: --follow reads what there is, as the two above, and stops.
            ("history RUN --follow (piped)", [*wfrun, "history", "long", "-f"], piped, keep),
            (
                "history RUN --follow --json (piped)",
                [*wfrun, "history", "long", "-f", "--json"],
                piped,
                keep,
            ),
            ("list (piped), no list index", [*wfrun, "list"], piped, no_index),
            ("list (piped), its index built", [*wfrun, "list"], piped, keep),
            ("list --json, its index built", [*wfrun, "list", "--json"], piped, keep),
        ]
        if args.terminal:
            cases += [
                ("history RUN (terminal)", [*wfrun, "history", "long"], on_a_terminal, keep),
                ("list (terminal), its index built", [*wfrun, "list"], on_a_terminal, keep),
            ]
        time.sleep(max(0.0, 2.5 - (time.perf_counter() - set_up)))  # see the docstring
        for label, argv, how, before in cases:
            samples: dict[str, list[Sample]] = {tree: [] for tree in trees}
            for _ in range(args.repeat):  # interleaved: a burst of load hits both alike
                for tree, tree_env in trees.items():
                    before()
                    samples[tree].append(how(argv, tree_env))
            for tree in trees:
                print(report(f"{tree}{label}", samples[tree]))
        list_floors = [list_floor(home / "runs") for _ in range(args.repeat)]
        print(
            f"{'floor: open + read both ends of every run':44s} "
            f"{statistics.median(list_floors):7.3f} s wall (in-process, no startup)"
        )
        print(f"load at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
