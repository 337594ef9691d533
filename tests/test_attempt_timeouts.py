"""One attempt's start_to_close_timeout, told apart from every other way an attempt ends.

The timeout of an ``async def`` activity is a timer that cancels the attempt's task: these
tests pin down that the cancellation it causes, and only that one, becomes a timeout, and that
the task is left as it was found (no cancellation counted against it afterwards).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

import wfrun as workflows
from wfrun.clock import SystemClock
from wfrun.definitions import ActivityDefinition
from wfrun.local.attempts import (
    _SWEEP_AT,
    Heartbeats,
    Outcome,
    _deadlines,
    attempt_until_final,
    run_attempt,
)
from wfrun.runtime import ActivityInfo

LIMIT = timedelta(milliseconds=50)


@workflows.activity(start_to_close_timeout=LIMIT, retry_policy_max_attempts=1)
async def hangs() -> int:
    await asyncio.sleep(3600)
    return 1


@workflows.activity(start_to_close_timeout=LIMIT, retry_policy_max_attempts=1)
async def swallows_the_cancel() -> int:
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        return 7  # it may: the value stands, as with asyncio.timeout
    return 1


@workflows.activity(start_to_close_timeout=LIMIT, retry_policy_max_attempts=1)
async def raises_its_own_timeout() -> int:
    raise TimeoutError("the service timed out")


@workflows.activity(start_to_close_timeout=timedelta(hours=1), retry_policy_max_attempts=1)
async def waits(started: asyncio.Event) -> int:
    started.set()
    await asyncio.sleep(3600)
    return 1


@workflows.activity(start_to_close_timeout=timedelta(hours=1), retry_policy_max_attempts=1)
async def suspends_once() -> int:
    await asyncio.sleep(0)  # an attempt that returns as it starts never needs its deadline
    return 1


seen: list[ActivityInfo] = []


@workflows.activity(retry_policy_max_attempts=2, retry_policy_initial_interval=0.001)
async def records() -> int:
    seen.append(workflows.activity_info())
    if len(seen) == 1:
        raise ConnectionError("once")
    return 1


def definition_of(fn: Any) -> ActivityDefinition:
    return fn.__wfrun_activity__  # type: ignore[no-any-return]


def info(fn: Any) -> ActivityInfo:
    name = definition_of(fn).name
    return ActivityInfo(run_id="r", activity_id=1, name=name, attempt=1, idempotency_key="k")


async def attempt(fn: Any, values: dict[str, Any] | None = None) -> Outcome:
    return await run_attempt(
        definition_of(fn), values or {}, info(fn), max_payload=1 << 20, heartbeats=Heartbeats()
    )


def test_an_attempt_past_its_limit_times_out_and_leaves_its_task_uncancelled() -> None:
    async def main() -> tuple[Outcome, int]:
        outcome = await attempt(hangs)
        task = asyncio.current_task()
        assert task is not None
        return outcome, task.cancelling()

    outcome, cancelling = asyncio.run(main())
    assert outcome.timeout == "start_to_close"
    assert outcome.limit == LIMIT.total_seconds()
    assert cancelling == 0  # the timeout took back the cancellation it made


def test_a_value_returned_after_the_timeout_cancelled_the_attempt_stands() -> None:
    async def main() -> tuple[Outcome, int]:
        outcome = await attempt(swallows_the_cancel)
        task = asyncio.current_task()
        assert task is not None
        return outcome, task.cancelling()

    outcome, cancelling = asyncio.run(main())
    assert outcome.ok
    assert outcome.value == 7
    assert cancelling == 0


def test_an_activity_raising_its_own_timeout_error_fails_rather_than_times_out() -> None:
    outcome = asyncio.run(attempt(raises_its_own_timeout))
    assert outcome.timeout is None
    assert outcome.error is not None
    assert outcome.error.type == "TimeoutError"
    assert outcome.error.message == "the service timed out"


def test_cancelling_the_caller_during_an_attempt_cancels_it_rather_than_timing_it_out() -> None:
    async def main() -> None:
        started = asyncio.Event()
        call = asyncio.ensure_future(attempt(waits, {"started": started}))
        await started.wait()
        call.cancel()
        await call

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(main())


def test_the_first_attempt_gets_the_callers_info_and_a_retry_a_fresh_one() -> None:
    seen.clear()
    given = info(records)

    async def main() -> tuple[int, Outcome]:
        return await attempt_until_final(
            definition_of(records),
            {},
            given,
            max_payload=1 << 20,
            heartbeats=Heartbeats(),
            clock=SystemClock(),
        )

    number, outcome = asyncio.run(main())
    assert (number, outcome.ok) == (2, True)
    assert seen[0] is given
    assert seen[1] is not given
    assert seen[1].attempt == 2
    given.cancel()  # each attempt has a cancel flag of its own
    assert not seen[1].is_cancelled()


def test_a_short_timeout_that_comes_after_a_long_one_expires_on_its_own_time() -> None:
    async def main() -> Outcome:
        started = asyncio.Event()
        long = asyncio.ensure_future(attempt(waits, {"started": started}))  # an hour
        await started.wait()
        try:
            return await attempt(hangs)  # 50 ms: its deadline comes first
        finally:
            long.cancel()
            await asyncio.gather(long, return_exceptions=True)

    assert asyncio.run(main()).timeout == "start_to_close"


def test_attempts_that_ended_leave_no_deadline_behind() -> None:
    async def main() -> int:
        for _ in range(500):
            assert (await attempt(suspends_once)).ok
        return len(_deadlines[asyncio.get_running_loop()]._heap)

    assert asyncio.run(main()) <= _SWEEP_AT + 1
