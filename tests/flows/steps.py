"""Test workflows whose activities log every attempt to $WFRUN_TEST_LOG/<name>.log.

Counting lines in those files is how the tests prove what really ran, across processes. The
same lines are the markers a crash test waits for before it kills a process (`reached`).
"""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta
from pathlib import Path

import wfrun as workflows

FAST_RETRY = timedelta(milliseconds=10)


def log_attempt(name: str, line: str = "x") -> int:
    """Append a line for this attempt; return how many attempts there have been."""
    path = Path(os.environ["WFRUN_TEST_LOG"]) / f"{name}.log"
    with open(path, "a") as f:
        f.write(f"{line}\n")
    return len(path.read_text().splitlines())


async def reached(name: str) -> None:
    """Log that the body got here (like an attempt), and stay here if $WFRUN_TEST_HOLD says so.

    A crash test gives the process it means to kill ``WFRUN_TEST_HOLD=<name>`` (a comma-separated
    list) and kills it once the line is logged: the body is then in flight, however slow the
    machine. The body stays until the test writes ``<name>.release`` beside the log (or for an
    hour); a process without the variable, such as the resume, goes straight on.
    """
    log_attempt(name)
    if name not in os.environ.get("WFRUN_TEST_HOLD", "").split(","):
        return
    release = Path(os.environ["WFRUN_TEST_LOG"]) / f"{name}.release"
    for _ in range(36_000):
        if release.exists():
            return
        await asyncio.sleep(0.1)


@workflows.activity(retry_policy_initial_interval=FAST_RETRY)
async def step(n: int, delay: float = 0.0) -> int:
    await reached(f"step{n}")
    await asyncio.sleep(delay)
    return n * 10


@workflows.workflow.define(name="steps")
class StepsWorkflow:
    """``count`` sequential steps, each sleeping ``delay`` seconds."""

    @workflows.workflow.entrypoint
    async def run(self, count: int, delay: float = 0.0) -> list[int]:
        return [await step(i, delay) for i in range(1, count + 1)]


@workflows.activity(retry_policy_max_attempts=5, retry_policy_initial_interval=FAST_RETRY)
async def flaky(fail_times: int) -> str:
    attempt = log_attempt("flaky")
    if attempt <= fail_times:
        raise ConnectionError(f"attempt {attempt} failed")
    return f"ok after {attempt}"


@workflows.workflow.define(name="flaky")
class FlakyWorkflow:
    @workflows.workflow.entrypoint
    async def run(self, fail_times: int) -> str:
        return await flaky(fail_times)


@workflows.activity(retry_policy_max_attempts=3, retry_policy_initial_interval=FAST_RETRY)
async def always_fails() -> None:
    attempt = log_attempt("always_fails")
    raise ValueError(f"boom {attempt}")


@workflows.workflow.define(name="exhausted")
class ExhaustedWorkflow:
    @workflows.workflow.entrypoint
    async def run(self) -> None:
        await always_fails()


@workflows.workflow.define(name="caught")
class CaughtWorkflow:
    """Handles the activity's failure and reports what it saw."""

    @workflows.workflow.entrypoint
    async def run(self) -> dict:
        try:
            await always_fails()
        except workflows.ActivityError as exc:
            cause = exc.__cause__
            return {
                "attempts": exc.attempts,
                "retry_state": exc.retry_state,
                "cause_type": getattr(cause, "type", None),
                "cause_message": str(cause),
            }
        return {}


@workflows.activity(retry_policy_max_attempts=5, retry_policy_initial_interval=FAST_RETRY)
async def refuses() -> None:
    log_attempt("refuses")
    raise workflows.ApplicationError("card declined", non_retryable=True)


@workflows.activity(
    retry_policy_max_attempts=5,
    retry_policy_initial_interval=FAST_RETRY,
    retry_policy_non_retryable_errors=["KeyError"],
)
async def lookup() -> None:
    log_attempt("lookup")
    raise KeyError("missing")


@workflows.workflow.define(name="non_retryable")
class NonRetryableWorkflow:
    @workflows.workflow.entrypoint
    async def run(self, which: str) -> None:
        await (refuses() if which == "flag" else lookup())


@workflows.activity(
    start_to_close_timeout=timedelta(milliseconds=200),
    retry_policy_max_attempts=2,
    retry_policy_initial_interval=FAST_RETRY,
)
async def hangs() -> None:
    log_attempt("hangs")
    log_attempt("hangs_story", "started")
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        log_attempt("hangs_story", "cancelled")  # in order with the starts: when it happened
        raise


@workflows.workflow.define(name="hung")
class HungWorkflow:
    @workflows.workflow.entrypoint
    async def run(self) -> None:
        await hangs()


@workflows.workflow.define(name="greeter")
class GreeterWorkflow:
    """Mixed argument types, to exercise --arg parsing."""

    @workflows.workflow.entrypoint
    async def run(self, name: str, times: int = 1, loud: bool = False) -> str:
        greeting = " ".join([f"hello {name}"] * times)
        return greeting.upper() if loud else greeting


@workflows.workflow.define(name="deadline", execution_timeout=timedelta(milliseconds=300))
class DeadlineWorkflow:
    """Steps of 0.2 s against a 0.3 s execution_timeout: the second step is cut off."""

    @workflows.workflow.entrypoint
    async def run(self, count: int) -> list[int]:
        return [await step(i, 0.2) for i in range(1, count + 1)]
