"""Workflows for the fault tests: a disk filled up, a thread that outlives its run, a fork."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import timedelta
from pathlib import Path

import wfrun as workflows

from flows.steps import log_attempt


@workflows.activity
async def big(n: int) -> str:
    log_attempt(f"big{n}")
    return str(n) * 12_000


@workflows.workflow.define(name="big_results")
class BigResultsWorkflow:
    """``count`` steps of 12 kB results each: a 64 kB disk is full before the fifth."""

    @workflows.workflow.entrypoint
    async def run(self, count: int) -> list[int]:
        return [len(await big(n)) for n in range(1, count + 1)]


@workflows.activity(start_to_close_timeout=timedelta(seconds=60), retry_policy_max_attempts=1)
def held(marker_dir: str) -> str:
    """A thread activity that says it started, then waits until the test releases it."""
    folder = Path(marker_dir)
    count = log_attempt("held")
    (folder / f"started{count}").touch()
    for _ in range(600):
        if (folder / "release").exists():
            return "released"
        time.sleep(0.05)
    return "gave up"


@workflows.workflow.define(name="held")
class HeldWorkflow:
    @workflows.workflow.entrypoint
    async def run(self, marker_dir: str) -> str:
        return await held(marker_dir)


@workflows.activity
async def fork_child(marker_dir: str) -> int:
    """Forks a child that outlives the run (as a careless activity might), then returns."""
    pid = os.fork()
    if pid == 0:  # the child: linger until released, then leave without cleanup
        for fd in (0, 1, 2):  # else whoever reads the run's output waits for the child too
            os.close(fd)
        folder = Path(marker_dir)
        (folder / "child").touch()
        for _ in range(600):
            if (folder / "release").exists():
                break
            time.sleep(0.05)
        os._exit(0)
    return pid


@workflows.workflow.define(name="forks")
class ForkingWorkflow:
    @workflows.workflow.entrypoint
    async def run(self, marker_dir: str) -> int:
        return await fork_child(marker_dir)


@workflows.activity
async def chatty(marker_dir: str) -> str:
    """Prints to stdout, and leaves a process behind that holds stdout and stderr open."""
    import subprocess

    print("hello from the activity")
    subprocess.Popen(["sleep", "30"])  # inherits stdout and stderr, and outlives the run
    return "done"


@workflows.workflow.define(name="chatty")
class ChattyWorkflow:
    @workflows.workflow.entrypoint
    async def run(self, marker_dir: str) -> str:
        return await chatty(marker_dir)


@workflows.activity(start_to_close_timeout=timedelta(seconds=30))
async def beating() -> int:
    for n in range(100):
        workflows.activity_heartbeat(n)
        await asyncio.sleep(0.05)
    return 100


@workflows.workflow.define(name="beating")
class BeatingWorkflow:
    @workflows.workflow.entrypoint
    async def run(self) -> int:
        return await beating()
