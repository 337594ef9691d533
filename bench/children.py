"""What a child run and a continue-as-new hand-over cost, next to a plain activity step.

    python bench/children.py [--runs 200] [--repeat 5]

"children" starts --runs child runs side by side from one parent (each child: one no-op
activity) and gathers their results: every child is a run of its own, with its own file,
lock, inbox and history. "chain" is one run that continues as new --runs times, one no-op
activity per run: each hand-over ends a history and starts the next. "steps" is the same
number of no-op activities awaited one by one in a single run, the unit both compare with.
Figures are medians of --repeat runs, in process (no CLI start-up).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

import wfrun as workflows


@workflows.activity
async def noop(i: int) -> int:
    return i


@workflows.workflow.define(name="bench_child")
class Child:
    @workflows.workflow.entrypoint
    async def run(self, i: int) -> int:
        return await noop(i)


@workflows.workflow.define(name="bench_parent")
class Parent:
    @workflows.workflow.entrypoint
    async def run(self, runs: int) -> int:
        children = (workflows.workflow.execute_workflow(Child, {"i": i}) for i in range(runs))
        return sum(await asyncio.gather(*children))


@workflows.workflow.define(name="bench_chain")
class Chain:
    @workflows.workflow.entrypoint
    async def run(self, left: int) -> int:
        await noop(left)
        if left > 1:
            workflows.workflow.continue_as_new({"left": left - 1})
        return 0


@workflows.workflow.define(name="bench_steps")
class Steps:
    @workflows.workflow.entrypoint
    async def run(self, runs: int) -> int:
        return sum([await noop(i) for i in range(runs)])


def timed(workflow: type, params: dict[str, int]) -> float:
    with tempfile.TemporaryDirectory() as home:
        start = time.perf_counter()
        asyncio.run(workflows.execute_workflow(workflow, params, home=home))
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    n = args.runs
    cases: dict[str, Callable[[], float]] = {
        "steps": lambda: timed(Steps, {"runs": n}),
        "children": lambda: timed(Parent, {"runs": n}),
        "chain": lambda: timed(Chain, {"left": n}),
    }
    medians = {
        name: statistics.median(case() for _ in range(args.repeat)) for name, case in cases.items()
    }
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {n} each x {args.repeat} runs")
    for name, seconds in medians.items():
        per = seconds / n * 1000
        ratio = per / (medians["steps"] / n * 1000)
        print(f"{name:9} {n / seconds:8.0f}/s   {per:6.2f} ms each   {ratio:4.1f}x a step")


if __name__ == "__main__":
    main()
